import { basename, dirname, join, resolve } from 'node:path';
import { fieldError, InputError } from '../../core/errors.ts';
import type { LoadedSplit, LoadOptions, ScoreOptions, ScoreReport, Task } from '../../core/types.ts';
import { fingerprintSplit, isObject, parseJson, readBytes } from '../split-files.ts';
import { checkAnswerResults, readAnswerResults, writeAnswerResults, type ResultKey } from '../vqa-like/results.ts';
import { scoreVqaLike, type VqaLikeScoring } from '../vqa-like/score.ts';

/**
 * VizWiz-VQA (Gurari et al. 2018): questions blind people asked about their own photos, ten
 * crowd answers each, answer types yes/no, number, other and unanswerable. One annotations file
 * per split, `Annotations/<split>.json`, a list of {image, question, answers: [{answer,
 * answer_confidence}], answer_type, answerable} (test: image and question only); images in
 * `<split>/`. Result files are `[{"image": str, "answer": str}]`; the metric is VQA's accuracy
 * (VizWiz's evaluator derives from VQA's: ten answers, leave one out, min(1, matches / 3)),
 * overall and per answer type, with the current normalisation or `--legacy-normalization`.
 */
export const VIZWIZ_TASK_VERSION = 'vizwiz-vqa/1';
export const VIZWIZ_METRIC_VERSION = '1';

export interface VizwizExample {
  /** The image name: one question per image, so it is the example's id and the result file's key. */
  id: string;
  image: string;
  /** `<imagesDir>/<image>`; resolved, not checked for existence. */
  imagePath: string;
  question: string;
  /** The crowd answers, raw, in file order; empty on the test split. */
  answers: string[];
  /** Each answer's answer_confidence ("yes", "maybe", "no"). */
  answerConfidences: string[];
  answerType?: string;
  /** Whether the question can be answered from the image (VizWiz's answerability task). */
  answerable?: boolean;
}

/** image name → predicted answer, as the result file keys it. */
export type VizwizPredictions = ReadonlyMap<string, string>;

export const VIZWIZ_RESULT_KEY: ResultKey<VizwizExample, string> = { field: 'image', type: 'string', noun: 'images', of: (example) => example.image };

const VIZWIZ_SCORING: VqaLikeScoring<VizwizExample, string> = {
  metric: { current: 'vizwiz-accuracy', legacy: 'vizwiz-accuracy-legacy' },
  metricVersion: VIZWIZ_METRIC_VERSION,
  key: VIZWIZ_RESULT_KEY,
  answersOf: (example) => example.answers,
  answerTypeOf: (example) => example.answerType!,
  exampleIdOf: (example) => example.id,
  imageOf: (example) => example.image,
  testServer: 'the VizWiz evaluation server',
};

/** Loads `files.annotations`, or `<dataDir>/Annotations/<split>.json`; images in `imagesDir`, else `<dataDir>/<split>/`. */
export async function loadVizwizSplit(options: LoadOptions): Promise<LoadedSplit<VizwizExample>> {
  if (options.files?.annotations === undefined && options.dataDir === undefined) throw new InputError('VizWiz: name the annotations file or the dataset folder', { field: 'annotations' });
  const file = resolve(options.files?.annotations ?? join(options.dataDir!, 'Annotations', `${options.split}.json`));
  const split = options.split || basename(file, '.json');
  const imagesDir = resolve(options.imagesDir ?? join(options.dataDir ?? dirname(dirname(file)), split));
  const bytes = await readBytes(file, 'annotations');
  const json = parseJson(bytes, file);
  if (!Array.isArray(json)) throw fieldError(file, undefined, '(file)', 'a JSON list of questions', json);
  const seen = new Set<string>();
  const examples = json.map((record, index) => {
    const example = readQuestion(record, index, file, imagesDir);
    if (seen.has(example.image)) throw new InputError(`image ${JSON.stringify(example.image)} is asked about twice; VizWiz keys results by image`, { file, record: index, field: 'image' });
    seen.add(example.image);
    return example;
  });
  return { task: 'vizwiz', taskVersion: VIZWIZ_TASK_VERSION, split: options.splitLabel ?? split, fingerprint: fingerprintSplit([bytes], examples.map((e) => e.image)), files: [file], examples };
}

function readQuestion(record: unknown, index: number, file: string, imagesDir: string): VizwizExample {
  if (!isObject(record)) throw fieldError(file, index, '(question)', 'an object', record);
  const { image, question, answers, answer_type: answerType, answerable } = record;
  if (typeof image !== 'string' || image === '' || /[/\\]/.test(image)) throw fieldError(file, index, 'image', 'an image file name', image);
  if (typeof question !== 'string') throw fieldError(file, index, 'question', 'a string', question);
  if (answers !== undefined && !Array.isArray(answers)) throw fieldError(file, index, 'answers', 'a list of {answer, answer_confidence}', answers);
  const parsed = (answers ?? []).map((entry: unknown, i: number) => {
    if (!isObject(entry) || typeof entry.answer !== 'string') throw fieldError(file, index, `answers[${i}].answer`, 'a string', isObject(entry) ? entry.answer : entry);
    return { answer: entry.answer, confidence: typeof entry.answer_confidence === 'string' ? entry.answer_confidence : '' };
  });
  if (parsed.length > 0 && typeof answerType !== 'string') throw fieldError(file, index, 'answer_type', 'a string (yes/no, number, other, unanswerable)', answerType);
  if (answerable !== undefined && answerable !== 0 && answerable !== 1 && typeof answerable !== 'boolean') throw fieldError(file, index, 'answerable', '0 or 1', answerable);
  return {
    id: image,
    image,
    imagePath: join(imagesDir, image),
    question,
    answers: parsed.map((a) => a.answer),
    answerConfidences: parsed.map((a) => a.confidence),
    ...(typeof answerType === 'string' ? { answerType } : {}),
    ...(answerable !== undefined ? { answerable: Boolean(answerable) } : {}),
  };
}

/** scoreVqaLike with VizWiz's fields: {overall, perAnswerType}, ×100, rounded as the official evaluator. */
export function scoreVizwiz(split: LoadedSplit<VizwizExample>, predictions: VizwizPredictions, options: ScoreOptions = {}): ScoreReport {
  return scoreVqaLike(split, predictions, options, VIZWIZ_SCORING);
}

export const vizwizTask: Task<VizwizExample, VizwizPredictions> = {
  name: 'vizwiz',
  scoreOptions: ['legacyNormalization'],
  version: VIZWIZ_TASK_VERSION,
  description: 'VizWiz-VQA: VQA accuracy per answer type (yes/no, number, other, unanswerable); result JSON keyed by image',
  splits: ['train', 'val', 'test'],
  load: loadVizwizSplit,
  readPredictions: (split, file) => readAnswerResults(split, file, VIZWIZ_RESULT_KEY),
  score: scoreVizwiz,
  async writeSubmission(split, predictions, file) {
    checkAnswerResults(split, predictions, file, VIZWIZ_RESULT_KEY);
    await writeAnswerResults(split, predictions, file, VIZWIZ_RESULT_KEY);
  },
};
