import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VqaClassifier } from '../../models/heads/vqa-classifier.ts';
import { softScoreBceLoss, softScoreTargets, type SoftTarget } from '../../models/objectives/soft-score-bce.ts';
import type { SceneGraph } from '../../models/objectives/scene-graph.ts';
import { AnswerProcessingCache, vqaSoftScore } from '../../tasks/vqa/accuracy.ts';
import type { GqaExample, GqaSceneGraph } from '../../tasks/gqa/index.ts';
import type { VqaExample } from '../../tasks/vqa/load.ts';
import { buildAnswerVocabulary } from '../../tasks/vqa/vocabulary.ts';
import type { SeededRandom } from '../../core/random.ts';
import { FusionTraining, type FusionTaskHead, type FusionRows } from '../../models/fine-tuning/fusion-training.ts';
import { methodNeeds } from '../../models/objectives/index.ts';
import { loadGqaSplit } from '../../tasks/gqa/index.ts';
import { synthPaths } from '../../tasks/synth/index.ts';
import { InputError } from '../../core/errors.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { RelationalFusion } from '../../models/heads/relational-fusion.ts';
import { QuestionWordTable } from '../../models/heads/question-words.ts';
import type { Fusion } from '../../models/heads/fusion.ts';
import { regionKey, type FeatureTable } from '../../models/features.ts';
import { regionBoxes, type ImageBoxes } from './object-regions.ts';
import { createFusion, limitTraining, unsupportedForProblem, validationScore, type AdapterContext, type AdapterDefaults, type TaskAdapter } from './adapter.ts';
import { priorPredictions, questionTypePrior } from '../../tasks/vqa/priors.ts';
import { scoreVqa } from '../../tasks/vqa/score.ts';
import { gqaGraphVocabulary, gqaSceneGraph, vocabularySizes } from './scene-graphs.ts';
import { keyedPredictionRows } from './prediction-rows.ts';

/**
 * VQA v2 and GQA as answer classification over a vocabulary built from the training
 * answers: VQA trains on the official soft scores of each question's ten answers, GQA on
 * its one answer (score 1). Predictions are the argmax answer string, in each task's
 * official result format.
 */
export type AnswerExample = { kind: 'vqa'; example: VqaExample } | { kind: 'gqa'; example: GqaExample };

export function answerExamples(task: 'vqa' | 'gqa', examples: readonly unknown[]): AnswerExample[] {
  return examples.map((example) => (task === 'vqa' ? { kind: 'vqa', example: example as VqaExample } : { kind: 'gqa', example: example as GqaExample }));
}

/** The usual VQA v2 recipe keeps answers seen ≥ 9 times; on small data (SynthScenes, tests) that drops real answers, so below 50k questions the default is 1. */
export function defaultMinAnswerCount(trainQuestions: number): number {
  return trainQuestions >= 50_000 ? 9 : 1;
}

/**
 * VQA: the official vocabulary rule (normalised multiple_choice_answer, min count). GQA is
 * scored by exact match without normalisation, so its vocabulary keeps the raw answers
 * (normalising would turn "t-shirt" into "t shirt" and never match).
 */
export function answerVocabulary(train: readonly AnswerExample[], minCount: number): string[] {
  if (train.every((e) => e.kind === 'vqa')) return buildAnswerVocabulary(train.map((e) => e.example as VqaExample), minCount);
  const counts = new Map<string, number>();
  for (const e of train) if (e.kind === 'gqa' && e.example.answer !== undefined) counts.set(e.example.answer, (counts.get(e.example.answer) ?? 0) + 1);
  return [...counts]
    .filter(([, count]) => count >= minCount)
    .sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : a > b ? 1 : 0))
    .map(([answer]) => answer);
}

/** Soft targets of each example over the vocabulary (answers outside it contribute nothing). */
export function answerTargets(examples: readonly AnswerExample[], vocabulary: readonly string[]): SoftTarget[][] {
  const cache = new AnswerProcessingCache();
  const indexOf = new Map(vocabulary.map((answer, i) => [answer, i]));
  return examples.map((e) => {
    if (e.kind === 'gqa') {
      const index = e.example.answer === undefined ? undefined : indexOf.get(e.example.answer);
      return index === undefined ? [] : [{ answer: index, score: 1 }];
    }
    const targets: SoftTarget[] = [];
    for (const candidate of new Set(e.example.answers.map((a) => cache.normalize(a)))) {
      const index = indexOf.get(candidate);
      if (index !== undefined) targets.push({ answer: index, score: vqaSoftScore(e.example.answers, candidate, cache) });
    }
    return targets;
  });
}

export function exampleText(e: AnswerExample): string {
  return e.example.question;
}

export function exampleImage(e: AnswerExample): string {
  return e.example.imagePath;
}

/** The GQA scene graph of an example's image: GQA carries it; SynthScenes VQA finds it by image file name. */
export function exampleGraphSource(e: AnswerExample, graphsByImageId: ReadonlyMap<string, GqaSceneGraph>): GqaSceneGraph | undefined {
  if (e.kind === 'gqa') return e.example.sceneGraph ?? graphsByImageId.get(e.example.imageId);
  return graphsByImageId.get(basename(e.example.imagePath).replace(/\.jpg$/i, ''));
}

export class AnswerHead implements FusionTaskHead {
  readonly classifier: VqaClassifier;
  private targets?: tf.Tensor2D;

  constructor(inputDim: number, readonly vocabulary: readonly string[], random: SeededRandom) {
    this.classifier = new VqaClassifier({ inputDim, answers: vocabulary.length }, random.fork('answer-classifier'));
  }

  /** Sets the batch's targets; the loss reads them. */
  useTargets(targets: readonly (readonly SoftTarget[])[]): void {
    this.targets?.dispose();
    this.targets = softScoreTargets(targets, this.vocabulary.length);
  }

  logits(pooled: tf.Tensor2D): tf.Tensor2D {
    return this.classifier.apply(pooled);
  }

  loss(logits: tf.Tensor2D): tf.Scalar {
    if (!this.targets) throw new Error('AnswerHead: no targets set for this batch');
    return softScoreBceLoss(logits, this.targets);
  }

  namedVariables(): Map<string, tf.Variable> {
    return this.classifier.namedVariables();
  }

  dispose(): void {
    this.targets?.dispose();
    this.classifier.dispose();
  }
}

export function answerRows(examples: readonly AnswerExample[], graphs?: readonly SceneGraph[], boxes?: ImageBoxes, cropped = false): FusionRows {
  return {
    imageKeys: examples.map(exampleImage),
    textKeys: examples.map(exampleText),
    graphs: graphs ? [...graphs] : undefined,
    boxes: boxes && examples.map((e) => boxes.boxesOf(exampleImage(e))),
    regionKeys: boxes && cropped ? examples.map((e) => boxes.pixelBoxesOf(exampleImage(e)).map((box) => regionKey(exampleImage(e), box))) : undefined,
  };
}

/** The image id detections are keyed by (COCO's `image_id`): VQA's number, GQA's name. */
export function exampleImageId(e: AnswerExample): string {
  return String(e.example.imageId);
}

/** At most this many boxes per image become object tokens (the highest-scoring): the pair term costs the square of the count. */
export const MAX_REGIONS = 10;

/**
 * The relational fusion (VQA's and GQA's default), its word table and the rows' boxes: over
 * `--regions` boxes when the run has them, else over the grid's cells.
 */
async function relationalParts(context: AdapterContext, trainExamples: readonly AnswerExample[]): Promise<{ fusion: Fusion; words?: QuestionWordTable; boxes?: ImageBoxes; regionTable?: FeatureTable }> {
  const { images, texts, head } = context;
  const words = texts.textTokenIds ? new QuestionWordTable(trainExamples.map(exampleText), texts.textTokenIds) : undefined;
  let boxes: ImageBoxes | undefined;
  if (context.regions) {
    const all = [trainExamples, ...[context.splits.validation, ...context.splits.evaluations].filter((s) => s !== null).map((s) => answerExamples(context.task.name as 'vqa' | 'gqa', s!.examples))].flat();
    const gridSide = Math.round(Math.sqrt(images.tokenCount - 1));
    boxes = await regionBoxes(context.regions, all.map((e) => ({ imageId: exampleImageId(e), imagePath: exampleImage(e) })), context.preprocessing, { maxRegions: MAX_REGIONS, fallbackGrid: gridSide });
    context.log?.(`regions: ${context.regions.file} (${context.regions.count} detections; ${boxes.fallbackImages} image(s) without a box fall back to the ${gridSide}×${gridSide} grid's cells; ${boxes.unusedDetections} detection(s) of images outside this run ignored)`);
  }
  const regionTable = boxes && context.encodeRegions ? await context.encodeRegions(boxes.pixelBoxes) : undefined;
  const fusion = new RelationalFusion(
    { imageDim: images.tokenDim, textDim: texts.tokenDim, regionDim: regionTable?.tokenDim, imageTokens: images.tokenCount, hidden: head.fusion.hidden, layers: head.fusion.layers, heads: head.fusion.heads, words: words?.size ?? 0 },
    context.random.fork('fusion'),
  );
  return { fusion, words, boxes, regionTable };
}

/** argmax over the vocabulary; ties go to the more frequent answer (lower index). */
export function argmaxAnswer(logits: Float32Array, vocabulary: readonly string[]): string {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return vocabulary[best];
}

/**
 * VQA's and GQA's defaults: the relational fusion (object tokens, a question read-out, count and
 * pair terms; bench/vqa-gates.ts is its gate), 2 layers of 4 heads, dropout 0.1, trained 40
 * epochs at batch 128 and lr 3e-3: on perfect object tokens it reached 63.4 at 5,000 SynthScenes
 * questions × 30 epochs and 82.1 at 10,000 × 40 (source validation), still rising.
 */
export const ANSWER_DEFAULTS = { epochs: 40, batchSize: 128, learningRate: 0.003, fusion: { kind: 'relational', layers: 2, heads: 4, dropout: 0.1 } } as const satisfies AdapterDefaults;

/**
 * The floor beside a split's score (metrics.json's `controls`): the per-question-type prior of
 * the training split (VQA: its question types, GQA: its detailed types), overall and per type,
 * and the model's own score per type, so "beats the prior" is read off one file.
 */
export function answerControls(kind: 'vqa' | 'gqa', train: LoadedSplit<unknown>, split: LoadedSplit<unknown>, predictions: ReadonlyMap<number | string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  if (kind === 'vqa') {
    const examples = split.examples as VqaExample[];
    const prior = priorPredictions(examples, questionTypePrior(train.examples as VqaExample[]));
    const model = scoreVqa(split as LoadedSplit<VqaExample>, predictions as ReadonlyMap<number, string>).official as { perQuestionType: Record<string, number> };
    const floor = scoreVqa(split as LoadedSplit<VqaExample>, prior).official as { overall: number; perQuestionType: Record<string, number> };
    out['prior/overall'] = floor.overall;
    for (const [type, accuracy] of Object.entries(model.perQuestionType)) {
      out[`questionType/${type}`] = accuracy;
      out[`prior/questionType/${type}`] = floor.perQuestionType[type];
    }
    return out;
  }
  // GQA is exact match: accuracy per detailed type, and the type's most frequent training answer.
  const typeOf = (e: GqaExample) => e.types?.detailed ?? '';
  const counts = new Map<string, Map<string, number>>();
  for (const e of train.examples as GqaExample[]) {
    if (e.answer === undefined) continue;
    const byAnswer = counts.get(typeOf(e)) ?? new Map<string, number>();
    byAnswer.set(e.answer, (byAnswer.get(e.answer) ?? 0) + 1);
    counts.set(typeOf(e), byAnswer);
  }
  const priorOf = (type: string) => [...(counts.get(type) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
  const sums = new Map<string, { model: number; prior: number; n: number }>();
  for (const e of split.examples as GqaExample[]) {
    if (e.answer === undefined) continue;
    for (const type of ['overall', typeOf(e)]) {
      const entry = sums.get(type) ?? { model: 0, prior: 0, n: 0 };
      entry.model += predictions.get(e.questionId) === e.answer ? 1 : 0;
      entry.prior += priorOf(typeOf(e)) === e.answer ? 1 : 0;
      entry.n += 1;
      sums.set(type, entry);
    }
  }
  for (const [type, { model, prior, n }] of sums) {
    if (type === 'overall') out['prior/overall'] = (100 * prior) / n;
    else {
      out[`questionType/${type}`] = (100 * model) / n;
      out[`prior/questionType/${type}`] = (100 * prior) / n;
    }
  }
  return out;
}

/** The VQA v2 and GQA adapters: answer classification on the fusion's pooled rows. */
function answerAdapter(kind: 'vqa' | 'gqa'): TaskAdapter {
  return {
    task: kind,
    problemKind: 'fusion',
    submissionExtension: 'json',
    tunesEncoder: true,
    takesRegions: true,
    takesTargetQuestions: true,
    defaults: ANSWER_DEFAULTS,
    controls: (train, split, predictions) => answerControls(kind, train, split, predictions as ReadonlyMap<number | string, string>),
    unsupportedMethod: (method) => unsupportedForProblem(method, kind, 'fusion', false),
    imagesOf: (split) => answerExamples(kind, split.examples).map(exampleImage),
    textsOf: (split) => answerExamples(kind, split.examples).map(exampleText),
    predictionRows: keyedPredictionRows((example) => (example as VqaExample | GqaExample).questionId),
    async loadSceneGraphs(train, trainOptions, synthRoot) {
      // GQA examples carry their graphs; SynthScenes VQA reads the GQA scene-graph file of the same split.
      const graphs = new Map<string, GqaSceneGraph>();
      if (kind === 'gqa') {
        for (const example of train.examples as GqaExample[]) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
      } else if (synthRoot) {
        const subtype = trainOptions.split;
        const gqa = await loadGqaSplit({ split: subtype, files: { questions: synthPaths.gqaQuestions(synthRoot, subtype), sceneGraphs: synthPaths.gqaSceneGraphs(synthRoot, subtype) }, imagesDir: join(synthPaths.imagesRoot(synthRoot), subtype) });
        for (const example of gqa.examples) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
      }
      return graphs;
    },
    async build(context) {
      const { method, splits, preprocessing, random } = context;
      const trainExamples = limitTraining(answerExamples(kind, splits.train!.examples), context.maxTrainExamples);
      const minCount = context.head.answersMinCount ?? defaultMinAnswerCount(trainExamples.length);
      const vocabulary = answerVocabulary(trainExamples, minCount);
      if (vocabulary.length === 0) throw new InputError(`no answer is seen ${minCount} times in the training split; lower --set answers.min_count`);
      const targets = answerTargets(trainExamples, vocabulary);
      const graphVocabulary = methodNeeds(method).sceneGraphs ? gqaGraphVocabulary(splits.graphs.values()) : undefined;
      const graphs = graphVocabulary
        ? trainExamples.map((e) => {
            const source = exampleGraphSource(e, splits.graphs);
            return source ? gqaSceneGraph(source, graphVocabulary, preprocessing) : { objects: [] };
          })
        : undefined;
      const relational = context.head.fusion.kind === 'relational' ? await relationalParts(context, trainExamples) : undefined;
      const fusion: Fusion = relational?.fusion ?? createFusion(context);
      const boxes = relational?.boxes;
      const cropped = relational?.regionTable !== undefined;
      const { encoder } = context;
      const composed = new FusionTraining({ method, images: context.images, texts: context.texts, fusion, words: relational?.words, regionTable: relational?.regionTable, dropout: relational ? context.head.fusion.dropout : undefined, sceneGraphSizes: graphVocabulary ? vocabularySizes(graphVocabulary) : undefined, targetImageKeys: [...context.targetImages], targetRows: context.splits.targetQuestions ? answerRows(answerExamples(kind, context.splits.targetQuestions.examples)) : undefined, random, encoder });
      const head = new AnswerHead(fusion.hidden, vocabulary, random);
      const variables = new Map([...composed.namedVariables(), ...head.namedVariables(), ...(encoder?.namedVariables() ?? [])]);
      const predict = (split: LoadedSplit<unknown>) => {
        const examples = answerExamples(kind, split.examples);
        const logits = composed.predictLogits(answerRows(examples, undefined, boxes, cropped), head, 1);
        return new Map(examples.map((e, i) => [e.example.questionId, argmaxAnswer(logits[i], vocabulary)] as [number | string, string]));
      };
      return {
        problem: {
          variables,
          exampleCount: trainExamples.length,
          computeGradients: (batch, stepContext) => {
            head.useTargets(batch.map((i) => targets[i]));
            return composed.step(answerRows(batch.map((i) => trainExamples[i]), graphs ? batch.map((i) => graphs[i]) : undefined, boxes, cropped), head, variables, stepContext);
          },
          validate: validationScore(context, predict),
          variableOptions: encoder?.variableOptions(),
        },
        predict,
        dispose: () => (composed.dispose(), head.dispose(), fusion.dispose()),
        hyperparameters: {
          answers: { minCount, vocabularySize: vocabulary.length },
          ...(relational ? { questionWords: relational.words?.size ?? 0 } : {}),
          ...(context.regions ? { regions: { file: basename(context.regions.file), fingerprint: context.regions.fingerprint, maxPerImage: MAX_REGIONS, features: relational?.regionTable ? 'crop' : 'pool' } } : {}),
        },
      };
    },
  };
}

export const vqaAdapter = answerAdapter('vqa');
export const gqaAdapter = answerAdapter('gqa');
