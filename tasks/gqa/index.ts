import { readdir, stat } from 'node:fs/promises';
import { decodeUtf8 } from '../../core/utf8.ts';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError, describeValue, fieldError, listSome } from '../../core/errors.ts';
import type { ExampleScore, LoadOptions, LoadedSplit, ScoreReport, Task } from '../../core/types.ts';
import { pythonRound } from '../vqa/accuracy.ts';
import { fingerprintSplit, isObject, parseJson, readBytes } from '../split-files.ts';
import { writeFileAtomically } from '../../core/atomic-write.ts';
import { synthPaths } from '../synth/layout.ts';
import { GQA_TASK_VERSION, isStringArray, readQuestion, type GqaExample, type GqaObject, type GqaSceneGraph } from './example.ts';
import { isHubDatasetFolder } from '../hub-snapshot.ts';

// What an example is, shared with the parquet loader (hub-parquet.ts), which this file hands Hub folders to.
export { GQA_TASK_VERSION, readQuestion, type GqaExample, type GqaObject, type GqaSceneGraph } from './example.ts';

/**
 * GQA (Hudson & Manning): questions, scene graphs, choices, and the metrics of the official
 * eval.py: accuracy over balanced questions (exact string match, no normalisation), binary vs open
 * (open = types.structural "query"), validity and plausibility (choices file), consistency
 * (entailed questions of correctly answered ones), distribution (chi-square), and accuracy per
 * structural type, semantic type, reasoning steps and question length.
 */

export const GQA_METRIC_VERSION = '1';

/** questionId → predicted answer. */
export type GqaPredictions = ReadonlyMap<string, string>;

const QUESTION_FILE_SUFFIXES = ['_balanced_questions.json', '_all_questions.json', '_questions.json'];

/**
 * Loads a GQA split: the questions file (or its chunk folder `<name>/<name>_N.json`), found in
 * `dataDir` as `<split>_balanced_questions.json`, `<split>_all_questions.json` or
 * `<split>_questions.json`, or given as `files.questions`; optionally `<split>_choices.json`
 * (`files.choices`) and `<split>_sceneGraphs.json` (`files.sceneGraphs`). Images are
 * `<imagesDir>/<imageId>.jpg`, imagesDir defaulting to the `images` folder beside the questions.
 *
 * Every question of the file becomes an example, in file order; the scorer keeps the balanced ones
 * (`isBalanced`), as eval.py does. The fingerprint covers the questions files and the image ids.
 */
export async function loadGqaSplit(options: LoadOptions): Promise<LoadedSplit<GqaExample>> {
  // A Hub dataset folder (lmms-lab/GQA's parquet configs, or a cache folder of it) instead of the official JSON.
  if (options.files?.questions === undefined && options.dataDir !== undefined && (await isHubDatasetFolder(options.dataDir))) {
    const { loadGqaHubSplit } = await import('./hub-parquet.ts');
    return loadGqaHubSplit({ ...options, dataDir: options.dataDir });
  }
  if (options.revision !== undefined) throw new InputError('--revision picks a snapshot of a Hugging Face dataset folder; this is not one', { file: options.dataDir, field: '--revision' });
  const questionsPath = options.files?.questions !== undefined ? resolve(options.files.questions) : await discover(options, QUESTION_FILE_SUFFIXES, true);
  const questionsSource = await readJsonOrChunks(questionsPath!, 'questions');
  const splitName = options.split || splitFromFileName(questionsPath!);
  const imagesDir = resolve(options.imagesDir ?? join(options.dataDir ?? dirname(questionsPath!), 'images'));

  const examples: GqaExample[] = [];
  for (const [questionId, record] of questionsSource.entries) {
    examples.push(readQuestion(record, questionId, questionsSource.fileOf(questionId), imagesDir));
  }
  const files = [...questionsSource.files];

  const choicesPath = options.files?.choices !== undefined ? resolve(options.files.choices) : await discover(options, ['_choices.json'], false);
  if (choicesPath !== undefined) {
    const choices = await readJsonOrChunks(choicesPath, 'choices');
    const byId = new Map(choices.entries);
    const missing: string[] = [];
    for (const example of examples) {
      const entry = byId.get(example.questionId);
      if (entry === undefined) {
        if (example.isBalanced) missing.push(example.questionId);
        continue;
      }
      example.choices = readChoices(entry, example.questionId, choices.fileOf(example.questionId));
    }
    if (missing.length > 0) throw new InputError(`balanced questions without choices: ${listSome(missing)}`, { file: choicesPath });
    files.push(...choices.files);
  }

  const sceneGraphsPath = options.files?.sceneGraphs !== undefined ? resolve(options.files.sceneGraphs) : await discover(options, ['_sceneGraphs.json'], false);
  if (sceneGraphsPath !== undefined) {
    const graphs = await readJsonOrChunks(sceneGraphsPath, 'scene graphs');
    const byImage = new Map<string, GqaSceneGraph>();
    for (const [imageId, record] of graphs.entries) byImage.set(imageId, readSceneGraph(record, imageId, graphs.fileOf(imageId)));
    const missing = new Set<string>();
    for (const example of examples) {
      example.sceneGraph = byImage.get(example.imageId);
      if (example.sceneGraph === undefined) missing.add(example.imageId);
    }
    if (missing.size > 0) throw new InputError(`images of the questions without a scene graph: ${listSome([...missing])}`, { file: sceneGraphsPath });
    files.push(...graphs.files);
  }

  return {
    task: 'gqa',
    taskVersion: GQA_TASK_VERSION,
    split: options.splitLabel ?? splitName,
    fingerprint: fingerprintSplit(questionsSource.contents, examples.map((example) => example.imageId)),
    files,
    examples,
  };
}

function readChoices(record: unknown, questionId: string, file: string): { valid: string[]; plausible: string[] } {
  if (!isObject(record)) throw fieldError(file, questionId, '(choices)', 'an object {valid, plausible}', record);
  const valid = record.valid;
  const plausible = record.plausible;
  if (!isStringArray(valid)) throw fieldError(file, questionId, 'valid', 'an array of strings', valid);
  if (!isStringArray(plausible)) throw fieldError(file, questionId, 'plausible', 'an array of strings', plausible);
  return { valid, plausible };
}

function readSceneGraph(record: unknown, imageId: string, file: string): GqaSceneGraph {
  if (!isObject(record)) throw fieldError(file, imageId, '(scene graph)', 'an object {width, height, objects}', record);
  for (const field of ['width', 'height'] as const) {
    if (typeof record[field] !== 'number' || !((record[field] as number) > 0)) throw fieldError(file, imageId, field, 'a positive number', record[field]);
  }
  if (!isObject(record.objects)) throw fieldError(file, imageId, 'objects', 'an object {objectId: object}', record.objects);
  const objects: Record<string, GqaObject> = Object.create(null);
  for (const [objectId, object] of Object.entries(record.objects)) {
    const at = `objects.${objectId}`;
    if (!isObject(object)) throw fieldError(file, imageId, at, 'an object', object);
    if (typeof object.name !== 'string') throw fieldError(file, imageId, `${at}.name`, 'a string', object.name);
    for (const field of ['x', 'y', 'w', 'h'] as const) {
      if (typeof object[field] !== 'number' || !Number.isFinite(object[field])) throw fieldError(file, imageId, `${at}.${field}`, 'a number (pixels)', object[field]);
    }
    const attributes = object.attributes ?? [];
    if (!isStringArray(attributes)) throw fieldError(file, imageId, `${at}.attributes`, 'an array of strings', attributes);
    const relationsValue = object.relations ?? [];
    if (!Array.isArray(relationsValue)) throw fieldError(file, imageId, `${at}.relations`, 'an array of {name, object}', relationsValue);
    const relations = relationsValue.map((relation, index) => {
      if (!isObject(relation) || typeof relation.name !== 'string' || typeof relation.object !== 'string') {
        throw fieldError(file, imageId, `${at}.relations[${index}]`, 'an object {name: string, object: string}', relation);
      }
      if (!Object.hasOwn(record.objects as object, relation.object)) {
        throw fieldError(file, imageId, `${at}.relations[${index}].object`, 'the id of an object of this image', relation.object);
      }
      return { name: relation.name, object: relation.object };
    });
    objects[objectId] = { name: object.name, x: object.x as number, y: object.y as number, w: object.w as number, h: object.h as number, attributes, relations };
  }
  return { width: record.width as number, height: record.height as number, objects };
}

// ---------------------------------------------------------------------------------------------
// Predictions

/** Reads `[{"questionId": str, "prediction": str}]` and checks it covers the split's questions exactly. */
export async function readGqaPredictions(split: LoadedSplit<GqaExample>, file: string): Promise<Map<string, string>> {
  const json = parseJson(await readBytes(file, 'predictions'), file);
  if (!Array.isArray(json)) throw new InputError(`expected a JSON array of {"questionId": str, "prediction": str}, got ${describeValue(json)}`, { file });
  const predictions = new Map<string, string>();
  const bad: string[] = [];
  const duplicates: string[] = [];
  json.forEach((record, index) => {
    if (!isObject(record)) return void bad.push(`[${index}] is ${describeValue(record)}, not an object`);
    if (typeof record.questionId !== 'string') return void bad.push(`[${index}].questionId is ${describeValue(record.questionId)}, not a string`);
    if (typeof record.prediction !== 'string') return void bad.push(`[${index}] (questionId ${record.questionId}).prediction is ${describeValue(record.prediction)}, not a string`);
    if (predictions.has(record.questionId)) duplicates.push(record.questionId);
    else predictions.set(record.questionId, record.prediction);
  });
  if (bad.length > 0) throw new InputError(`${bad.length} malformed prediction record${bad.length === 1 ? '' : 's'}${bad.length > 5 ? ' (first 5)' : ''}: ${bad.slice(0, 5).join('; ')}`, { file });
  if (duplicates.length > 0) throw new InputError(`questionIds predicted more than once: ${listSome(duplicates)}`, { file, field: 'questionId' });
  checkGqaPredictions(split, predictions, file);
  return predictions;
}

export function checkGqaPredictions(split: LoadedSplit<GqaExample>, predictions: GqaPredictions, file: string): void {
  const missing = split.examples.filter((example) => !predictions.has(example.questionId)).map((example) => example.questionId);
  const known = new Set(split.examples.map((example) => example.questionId));
  const extra = [...predictions.keys()].filter((questionId) => !known.has(questionId));
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`${listSome(missing)} questionIds of split "${split.split}" have no prediction`);
  if (extra.length > 0) problems.push(`${listSome(extra)} questionIds are not in split "${split.split}"`);
  if (problems.length > 0) throw new InputError(`${problems.join('; ')}; nothing is scored on a subset`, { file, field: 'questionId' });
}

/** Writes the official predictions JSON in the split's order, after checking it covers the split; atomic. */
export async function writeGqaPredictions(split: LoadedSplit<GqaExample>, predictions: GqaPredictions, file: string): Promise<void> {
  checkGqaPredictions(split, predictions, file);
  const records = split.examples.map((example) => ({ questionId: example.questionId, prediction: predictions.get(example.questionId)! }));
  await writeFileAtomically(file, JSON.stringify(records));
}

// ---------------------------------------------------------------------------------------------
// Scoring

/** What `vlbench score --task gqa` prints: percentages rounded to 2 decimals as eval.py prints them ("{:.2f}"). */
export interface GqaOfficialReport {
  accuracy: number;
  binary: number;
  open: number;
  /** Only when every balanced question's entailed questions are in the split. */
  consistency?: number;
  /** Only with a choices file. */
  validity?: number;
  plausibility?: number;
  /** Chi-square between gold and predicted answer distributions per global group, /100; lower is better. Only when questions carry groups. */
  distribution?: number;
  accuracyPerStructuralType: Record<string, number>;
  accuracyPerSemanticType: Record<string, number>;
  accuracyPerSteps?: Record<string, number>;
  accuracyPerLength: Record<string, number>;
}

/** eval.py's avg(): 0 for an empty list, else sum / n (×100 comes after). */
function average(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

function percent(values: readonly number[]): number {
  return pythonRound(average(values) * 100, 2);
}

/** Python str.split(): runs of whitespace, no empty words. */
function wordCount(text: string): number {
  return text.split(/[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/).filter((word) => word !== '').length;
}

export function scoreGqa(split: LoadedSplit<GqaExample>, predictions: GqaPredictions): ScoreReport {
  checkGqaPredictions(split, predictions, 'predictions');
  const balanced = split.examples.filter((example) => example.isBalanced);
  if (balanced.length === 0) throw new InputError(`split "${split.split}" has no balanced questions to score`, { file: split.files[0] });
  const byId = new Map(split.examples.map((example) => [example.questionId, example]));
  for (const example of balanced) {
    if (example.answer === undefined) throw new InputError('balanced question without an answer (a test split?): it cannot be scored here', { file: split.files[0], record: example.questionId, field: 'answer' });
    if (example.types?.structural === undefined) throw fieldError(split.files[0], example.questionId, 'types.structural', 'a string', undefined);
  }
  const withChoices = balanced.every((example) => example.choices !== undefined);
  const withSteps = balanced.every((example) => example.steps !== undefined);
  const consistencyComputable = balanced.every((example) =>
    example.entailed.every((entailedId) => entailedId === example.questionId || byId.get(entailedId)?.answer !== undefined),
  );

  const accuracy: number[] = [];
  const binary: number[] = [];
  const open: number[] = [];
  const validity: number[] = [];
  const plausibility: number[] = [];
  const consistency: number[] = [];
  const perStructural = new Map<string, number[]>();
  const perSemantic = new Map<string, number[]>();
  const perSteps = new Map<number, number[]>();
  const perLength = new Map<number, number[]>();
  const goldDistribution = new Map<string, Map<string, number>>();
  const predictedDistribution = new Map<string, Map<string, number>>();
  const perExample: ExampleScore[] = [];

  for (const example of balanced) {
    const gold = example.answer!;
    const predicted = predictions.get(example.questionId)!;
    const correct = predicted === gold;
    const score = correct ? 1 : 0;
    accuracy.push(score);
    perExample.push({ id: example.id, score: score * 100, image: example.imageId });
    push(perLength, wordCount(example.question), score);
    if (withSteps) push(perSteps, example.steps!, score);
    push(perStructural, example.types!.structural!, score);
    push(perSemantic, example.types!.semantic ?? 'unknown', score);
    (example.types!.structural === 'query' ? open : binary).push(score);
    if (withChoices) {
      // eval.py's belongs(): questions about what two objects have in common accept any of these.
      const common = example.types!.detailed?.includes('Common') ?? false;
      validity.push(common ? (['color', 'material', 'shape'].includes(predicted) ? 1 : 0) : example.choices!.valid.includes(predicted) ? 1 : 0);
      plausibility.push(common ? (['color', 'material', 'shape'].includes(predicted) ? 1 : 0) : example.choices!.plausible.includes(predicted) ? 1 : 0);
    }
    if (example.globalGroup) {
      increment(goldDistribution, example.globalGroup, gold);
      increment(predictedDistribution, example.globalGroup, predicted);
    }
    if (consistencyComputable && correct) {
      const inferred = example.entailed.filter((entailedId) => entailedId !== example.questionId);
      if (inferred.length > 0) {
        consistency.push(average(inferred.map((entailedId) => (predictions.get(entailedId) === byId.get(entailedId)!.answer ? 1 : 0))));
      }
    }
  }

  const official: GqaOfficialReport = {
    accuracy: percent(accuracy),
    binary: percent(binary),
    open: percent(open),
    accuracyPerStructuralType: averagesByKey(perStructural),
    accuracyPerSemanticType: averagesByKey(perSemantic),
    accuracyPerLength: averagesByKey(perLength),
  };
  if (consistencyComputable) official.consistency = percent(consistency);
  if (withChoices) {
    official.validity = percent(validity);
    official.plausibility = percent(plausibility);
  }
  const distribution = chiSquare(goldDistribution, predictedDistribution);
  if (distribution !== undefined) official.distribution = pythonRound(distribution / 100, 2);
  if (withSteps) official.accuracyPerSteps = averagesByKey(perSteps);

  const metrics: Record<string, number> = { accuracy: official.accuracy, binary: official.binary, open: official.open };
  for (const key of ['consistency', 'validity', 'plausibility', 'distribution'] as const) {
    if (official[key] !== undefined) metrics[key] = official[key]!;
  }
  return { metric: 'gqa-accuracy', metricVersion: GQA_METRIC_VERSION, primary: 'accuracy', metrics, official, perExample };
}

/** eval.py's chiSquare: per group Σ (o−e)²/e over the gold answers, averaged with the group sizes as weights. */
function chiSquare(gold: Map<string, Map<string, number>>, predicted: Map<string, Map<string, number>>): number | undefined {
  let sumScore = 0;
  let sumOverall = 0;
  for (const [group, answers] of gold) {
    let score = 0;
    let overall = 0;
    for (const [answer, expected] of answers) {
      const observed = predicted.get(group)?.get(answer) ?? 0;
      score += (observed - expected) ** 2 / expected;
      overall += expected;
    }
    sumScore += score * overall;
    sumOverall += overall;
  }
  return sumOverall === 0 ? undefined : sumScore / sumOverall;
}

function push<K>(groups: Map<K, number[]>, key: K, value: number): void {
  const list = groups.get(key);
  if (list) list.push(value);
  else groups.set(key, [value]);
}

function increment(groups: Map<string, Map<string, number>>, group: string, answer: string): void {
  let counts = groups.get(group);
  if (!counts) groups.set(group, (counts = new Map()));
  counts.set(answer, (counts.get(answer) ?? 0) + 1);
}

/** Keys sorted as eval.py prints them (numbers numerically, strings by code unit). */
function averagesByKey<K extends string | number>(groups: Map<K, number[]>): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  const keys = [...groups.keys()].sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
  for (const key of keys) out[String(key)] = percent(groups.get(key)!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Files

interface JsonObjectSource {
  /** Top-level entries in file order (chunks in numeric order). */
  entries: [string, unknown][];
  files: string[];
  contents: Buffer[];
  fileOf(key: string): string;
}

/**
 * eval.py's loadFile: the JSON file itself, or, when it is absent, the folder `<name>/` with the
 * chunks `<name>_N.json` (read here in numeric order; a key in two chunks is an error, not an
 * overwrite). The path may also name the folder.
 */
async function readJsonOrChunks(path: string, what: string): Promise<JsonObjectSource> {
  let chunkFolder: string | undefined;
  let single: string | undefined;
  if (await isKind(path, 'file')) single = path;
  else if (await isKind(path, 'directory')) chunkFolder = path;
  else if (path.endsWith('.json') && (await isKind(path.slice(0, -'.json'.length), 'directory'))) chunkFolder = path.slice(0, -'.json'.length);
  else throw new InputError(`no ${what} file, nor a folder of chunks <name>/<name>_N.json`, { file: path });

  const parts: string[] = [];
  if (single !== undefined) parts.push(single);
  else {
    const name = basename(chunkFolder!);
    const pattern = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d+)\\.json$`);
    const chunks = (await readdir(chunkFolder!))
      .map((entry) => ({ entry, match: pattern.exec(entry) }))
      .filter((chunk) => chunk.match !== null)
      .sort((a, b) => Number(a.match![1]) - Number(b.match![1]));
    if (chunks.length === 0) throw new InputError(`no chunks named ${name}_N.json in the folder`, { file: chunkFolder });
    for (const chunk of chunks) parts.push(join(chunkFolder!, chunk.entry));
  }

  const entries: [string, unknown][] = [];
  const owner = new Map<string, string>();
  const contents: Buffer[] = [];
  for (const file of parts) {
    const bytes = await readBytes(file, what);
    contents.push(bytes);
    const text = decodeUtf8(bytes, { file });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new InputError(`not valid JSON: ${(error as Error).message}`, { file });
    }
    if (!isObject(json)) throw new InputError(`expected a JSON object keyed by id, got ${describeValue(json)}`, { file });
    for (const key of keysInFileOrder(text, json, file)) {
      if (owner.has(key)) throw new InputError(`id appears twice (also in ${owner.get(key)})`, { file, record: key });
      owner.set(key, file);
      entries.push([key, json[key]]);
    }
  }
  return { entries, files: parts, contents, fileOf: (key) => owner.get(key) ?? parts[0] };
}

/**
 * JavaScript objects list integer-like keys ("201307251") first, in numeric order, so the file's
 * order (the order eval.py walks, which changes sums in their last bits) is read from the text.
 */
function keysInFileOrder(text: string, json: Record<string, unknown>, file: string): string[] {
  const keys = Object.keys(json);
  if (!keys.some((key) => /^(0|[1-9]\d*)$/.test(key))) return keys;
  const ordered: string[] = [];
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x22) {
      const start = i;
      for (i++; i < text.length; i++) {
        const inner = text.charCodeAt(i);
        if (inner === 0x5c) i++;
        else if (inner === 0x22) break;
      }
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        // A key written twice: JSON.parse keeps the last value, and so does Python; report it.
        if (seen.has(key)) throw new InputError('id appears twice', { file, record: key });
        seen.add(key);
        ordered.push(key);
        expectKey = false;
      }
    } else if (code === 0x7b || code === 0x5b) {
      depth++;
      if (depth === 1) expectKey = code === 0x7b;
    } else if (code === 0x7d || code === 0x5d) {
      depth--;
    } else if (code === 0x2c && depth === 1) {
      expectKey = true;
    }
  }
  return ordered;
}

async function discover(options: LoadOptions, suffixes: readonly string[], required: boolean): Promise<string | undefined> {
  if (options.dataDir === undefined || !options.split) {
    if (required) throw new InputError('GQA needs a dataset folder and split name (dataDir + split), or the questions file (files.questions)');
    return undefined;
  }
  for (const suffix of suffixes) {
    const file = join(options.dataDir, `${options.split}${suffix}`);
    if ((await isKind(file, 'file')) || (await isKind(file.slice(0, -'.json'.length), 'directory'))) return resolve(file);
  }
  if (required) {
    throw new InputError(`no questions for split "${options.split}": looked for ${suffixes.map((suffix) => options.split + suffix).join(', ')} (or their chunk folders)`, {
      file: options.dataDir,
    });
  }
  return undefined;
}

function splitFromFileName(path: string): string {
  const name = basename(path);
  for (const suffix of QUESTION_FILE_SUFFIXES) {
    if (name.endsWith(suffix)) return name.slice(0, -suffix.length);
    const folderSuffix = suffix.slice(0, -'.json'.length);
    if (name.endsWith(folderSuffix)) return name.slice(0, -folderSuffix.length);
  }
  return name.replace(/\.json$/, '');
}

async function isKind(path: string, kind: 'file' | 'directory'): Promise<boolean> {
  try {
    const info = await stat(path);
    return kind === 'file' ? info.isFile() : info.isDirectory();
  } catch {
    return false;
  }
}


/** GQA: accuracy over balanced questions, binary/open, validity, plausibility, consistency, distribution. */
export const gqaTask: Task<GqaExample, GqaPredictions> = {
  name: 'gqa',
  version: GQA_TASK_VERSION,
  description: 'GQA: exact-match accuracy on balanced questions, binary/open, validity, plausibility, consistency (official eval.py)',
  splits: ['train', 'val', 'testdev', 'test', 'challenge', 'submission'],
  load: loadGqaSplit,
  readPredictions: readGqaPredictions,
  score: (split, predictions) => scoreGqa(split, predictions),
  writeSubmission: writeGqaPredictions,
  synthScenes: ({ root, subtype }) => ({ split: subtype, files: { questions: synthPaths.gqaQuestions(root, subtype), sceneGraphs: synthPaths.gqaSceneGraphs(root, subtype) }, imagesDir: join(synthPaths.imagesRoot(root), subtype) }),
};
