import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import type * as tf from '@tensorflow/tfjs';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { InputError } from '../core/errors.ts';
import type { BackendName, LoadedSplit } from '../core/types.ts';
import { recordedScoring } from '../leaderboard/run-record.ts';
import { choiceOfBackend, selectBackend } from '../models/backends/select.ts';
import { getTask } from '../tasks/registry.ts';
import { getAdapter, type PreparedModel, type TaskAdapter } from './adapters/index.ts';
import { exampleIdOf } from './adapters/prediction-rows.ts';
import { limitSplit, resolveRunData } from './run-data.ts';
import { checkLeaderboardUsable } from './preflight.ts';
import { runNameOfRequest, shardSpecSchema, type ResolvedRunRequest, type ShardSpec } from './run-plan.ts';
import { RunFolder, splitStem, type RunOutcome, type ScoredSplit } from './run-folder.ts';

export { shardSpecSchema, type ShardSpec };

/**
 * Sharded evaluation (issue 14): `vlbench run --shard k/n` trains as usual, then predicts only
 * the k-th of n contiguous slices of each evaluation split's examples (sorted by id) and writes
 * per-example rows to `shards/<split>.json` instead of scoring; `vlbench merge-shards` checks
 * that the shards come from one model and cover every example exactly once, joins the rows
 * into the whole split's predictions and scores them with the task's own scorer, so a merged
 * run's metrics are the unsharded run's, never an average of shard scores.
 *
 * Every shard trains the whole model itself: training is deterministic for a seed and backend,
 * so the shards' models are the same model. That is checked, not assumed: each shard records a
 * fingerprint of its trained weights, and the merge refuses shards whose fingerprints differ.
 */

export const SHARD_FILE_FORMAT = 'vlbench-evaluation-shard/1';

/** Suffix of a shard run's folder name; the merged run's folder is the first shard's name without it. */
export function shardFolderSuffix(shard: ShardSpec): string {
  return `-shard${shard.number}of${shard.count}`;
}

/**
 * The id order slices are cut in: numeric when every id is a whole number (VQA question ids,
 * Karpathy imgids), by UTF-16 code units otherwise; the same on every machine and locale.
 */
export function sortExampleIds(ids: readonly string[]): string[] {
  const numeric = ids.every((id) => /^\d+$/.test(id));
  return [...ids].sort(numeric ? (a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0) : (a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The ids of shard k of n: [⌊(k−1)N/n⌋, ⌊kN/n⌋) of the sorted ids, so the n slices tile the split. */
export function shardSlice(sortedIds: readonly string[], shard: ShardSpec): string[] {
  const n = sortedIds.length;
  return sortedIds.slice(Math.floor(((shard.number - 1) * n) / shard.count), Math.floor((shard.number * n) / shard.count));
}

const shardFileSchema = z.object({
  format: z.literal(SHARD_FILE_FORMAT),
  task: z.string(),
  taskVersion: z.string(),
  split: z.string(),
  splitFingerprint: z.string(),
  // The same rule as --shard: a shard 3/2 holds rows no slice of 2 has, whatever its rows say.
  shard: shardSpecSchema,
  /** The run request without its shard (its folders are where the shard ran; the fingerprints say what they held). */
  request: z.looseObject({ task: z.string(), dataDir: z.string(), method: z.string(), seed: z.number().int(), scoring: z.object({ legacyNormalization: z.boolean().optional(), folds: z.number().int().positive().optional() }) }),
  model: z.object({ encoderFingerprint: z.string(), trainedFingerprint: z.string() }),
  execution: z.object({ backend: z.string(), device: z.string().optional(), dtype: z.string(), batchSize: z.number() }),
  exampleCount: z.number().int().nonnegative(),
  rows: z.array(z.object({ id: z.string(), prediction: z.unknown() })),
});
type ShardFile = z.infer<typeof shardFileSchema>;

/** What a merge returns: a run's outcome without training of its own. */
export type MergeOutcome = RunOutcome & { training: null };

export interface ShardWriteContext {
  runDir: string;
  request: ResolvedRunRequest;
  shard: ShardSpec;
  adapter: TaskAdapter;
  model: PreparedModel;
  splits: readonly LoadedSplit<unknown>[];
  encoderFingerprint: string;
  execution: { backend: BackendName; device?: string; dtype: string; batchSize: number };
  log: (line: string) => void;
}

/** A shard run's evaluation: predicts its slice of each split and writes `shards/<split>.json`. */
export async function writeEvaluationShards(context: ShardWriteContext): Promise<void> {
  const { adapter, model, shard } = context;
  if (!adapter.predictionRows) throw new InputError(`--shard: ${adapter.task} has no per-example prediction rows to shard by; run it unsharded`, { field: '--shard' });
  const trainedFingerprint = fingerprintTrainedModel(context.encoderFingerprint, model);
  const { shard: _omitted, ...request } = context.request;
  for (const split of context.splits) {
    const byId = new Map(split.examples.map((example) => [exampleIdOf(example), example]));
    const ids = shardSlice(sortExampleIds([...byId.keys()]), shard);
    const slice: LoadedSplit<unknown> = { ...split, examples: ids.map((id) => byId.get(id)) };
    const rows = adapter.predictionRows.rows(model, slice);
    const file: ShardFile = {
      format: SHARD_FILE_FORMAT,
      task: split.task,
      taskVersion: split.taskVersion,
      split: split.split,
      splitFingerprint: split.fingerprint,
      shard,
      request,
      model: { encoderFingerprint: context.encoderFingerprint, trainedFingerprint },
      execution: context.execution,
      exampleCount: split.examples.length,
      rows: ids.map((id) => ({ id, prediction: rows.get(id) })),
    };
    await writeFileAtomically(join(context.runDir, 'shards', `${splitStem(split.split)}.json`), `${JSON.stringify(file)}\n`);
    context.log(`${split.split}: shard ${shard.number}/${shard.count} predicted ${ids.length} of ${split.examples.length} examples (score with vlbench merge-shards)`);
  }
}

/**
 * sha256 over the encoder's fingerprint and every trained variable (name, shape, float32
 * bytes, in name order): equal only when the shards' trained models are bit for bit the same.
 * Zero-shot has no trained variables, so its fingerprint is the encoder's alone.
 */
function fingerprintTrainedModel(encoderFingerprint: string, model: PreparedModel): string {
  const hash = createHash('sha256').update(encoderFingerprint);
  const variables = [...(model.problem?.variables ?? new Map<string, tf.Variable>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, variable] of variables) {
    const values = variable.dataSync() as Float32Array;
    hash.update(`\n${name} ${variable.shape.join('x')}\n`).update(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest('hex');
}

export interface MergeOptions {
  /** Where the leaderboard lives; recording is skipped when null. */
  db: string | null;
  /** Folder the merged run folder goes into (default: the first shard folder's parent). */
  runsDir?: string;
  /** Dataset folder, where it is not the shards' own (`--data`, e.g. another machine's mount). */
  dataDir?: string;
  log?: (line: string) => void;
}

/** Request keys that say where a shard ran, not what it ran: their contents are compared through the split and model fingerprints. */
const LOCATION_KEYS = new Set(['dataDir', 'modelDir', 'imagesDir', 'targetDir']);

interface ShardInput {
  dir: string;
  file: string;
  content: ShardFile;
}

/**
 * `vlbench merge-shards DIR...`: one complete run folder (predictions in the official format,
 * scores, metrics) from shard run folders, recorded like a normal run with
 * `execution.shardCount`. Refused, naming files and ids, unless the shards agree and cover
 * every example of every split exactly once.
 */
export async function mergeShards(dirsInput: readonly string[], options: MergeOptions): Promise<MergeOutcome> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = performance.now();
  if (dirsInput.length === 0) throw new InputError('merge-shards needs the shard run folders (vlbench run --shard k/n writes one each)');
  const dirs = dirsInput.map((dir) => resolve(dir));
  const repeated = dirs.find((dir, i) => dirs.indexOf(dir) !== i);
  if (repeated) throw new InputError('this shard folder is given twice', { file: repeated });
  // The leaderboard answers before the merge writes its run folder, as for a run (harness/preflight.ts).
  if (options.db) await checkLeaderboardUsable(options.db);

  const inputs: ShardInput[] = [];
  const configs = new Map<string, RunConfig>();
  for (const dir of dirs) {
    configs.set(dir, await readRunConfig(dir));
    const folder = join(dir, 'shards');
    const names = existsSync(folder) ? (await readdir(folder)).filter((name) => name.endsWith('.json')).sort() : [];
    if (names.length === 0) throw new InputError('not a shard run folder (no shards/*.json; was it run with --shard k/n?)', { file: dir });
    for (const name of names) inputs.push({ dir, file: join(folder, name), content: await readShardFile(join(folder, name)) });
  }
  const reference = inputs[0];
  for (const input of inputs.slice(1)) checkSameRun(reference, input);
  const { count } = reference.content.shard;

  const request = reference.content.request as ResolvedRunRequest;
  const task = getTask(reference.content.task);
  const adapter = getAdapter(reference.content.task);
  if (!adapter.predictionRows) throw new InputError(`${task.name} has no per-example prediction rows to merge`, { file: reference.file });
  if (adapter.predictionRows.joinComputes) await selectShardBackend(reference);

  const data = await resolveRunData({ ...request, task: task.name, dataDir: options.dataDir ?? request.dataDir } as Parameters<typeof resolveRunData>[0]);
  const splits = new Map<string, LoadedSplit<unknown>>();
  for (const loadOptions of data.evaluations) {
    const split = limitSplit(await task.load(loadOptions), request.limit);
    splits.set(split.split, split);
  }

  const byLabel = new Map<string, ShardInput[]>();
  for (const input of inputs) byLabel.set(input.content.split, [...(byLabel.get(input.content.split) ?? []), input]);
  for (const label of splits.keys()) if (!byLabel.has(label)) throw new InputError(`no shard holds evaluation split "${label}" (the shards hold ${[...byLabel.keys()].join(', ')})`, { file: dirs.join(', ') });

  // The merged run is named after shard 1's folder (whichever order the folders are given in).
  const firstDir = inputs.find((input) => input.content.shard.number === 1)?.dir ?? dirs[0];
  const runsDir = resolve(options.runsDir ?? resolve(firstDir, '..'));
  const firstName = basename(firstDir);
  const runId = /-shard\d+of\d+$/.test(firstName) ? firstName.replace(/-shard\d+of\d+$/, '') : `${firstName}-merged`;
  const folder = await RunFolder.fresh(runsDir, runId, 'these shards are already merged into this run folder (remove it to merge again)');

  const results: ScoredSplit[] = [];
  // The floors beside each split (metrics.json's controls) come from the training split, as in the unsharded run.
  const train = adapter.controls && data.train ? limitSplit(await task.load(data.train), request.limit) : undefined;
  for (const [label, split] of splits) {
    const shardInputs = byLabel.get(label)!;
    checkShardNumbers(label, shardInputs, count);
    if (shardInputs[0].content.splitFingerprint !== split.fingerprint) {
      throw new InputError(`split "${label}" changed since the shards ran: fingerprint ${split.fingerprint.slice(0, 12)} now, ${shardInputs[0].content.splitFingerprint.slice(0, 12)} in the shards`, { file: shardInputs[0].file, field: 'splitFingerprint' });
    }
    const rows = coveredRows(label, split, shardInputs);
    let predictions: unknown;
    try {
      predictions = adapter.predictionRows.join(split, rows);
    } catch (error) {
      throw new InputError(`rows of split "${label}" do not fit its examples: ${(error as Error).message}`, { file: shardInputs.map((s) => s.file).join(', ') });
    }
    const report = task.score(split, predictions, request.scoring);
    const predictionsFile = await folder.writeScoredSplit(task, adapter, split, predictions, report);
    results.push({ split, report, predictionsFile, controls: train && adapter.controls ? adapter.controls(train, split, predictions) : undefined });
    log(`${label}: ${report.primary} = ${report.metrics[report.primary].toFixed(2)} (${count} shards, ${split.examples.length} examples)`);
  }

  // Training ran once per shard (the same model each time): its timings are summed, as compute spent.
  const timings: Record<string, number> = {};
  for (const dir of dirs) for (const [phase, seconds] of Object.entries(configs.get(dir)!.timings)) timings[phase] = (timings[phase] ?? 0) + seconds;
  const config = configs.get(firstDir)!;
  // Every shard saved the same tuned encoder (the trained fingerprints agree): the merged run holds shard 1's, as the unsharded run holds its own.
  const tunedEncoder = config.config.tunedEncoder;
  if (tunedEncoder) await cp(join(firstDir, tunedEncoder.folder), folder.path(tunedEncoder.folder), { recursive: true });
  timings.merge = (performance.now() - started) / 1000;
  await folder.writeJson('request.json', request);
  await folder.writeJson('config.json', { ...config.config, request, shards: { count, folders: dirs } });
  await folder.writeJson('curve.json', config.curve);
  await folder.writeMetrics(results);
  await folder.writeJson('timings.json', timings);
  await folder.finish();

  const { execution } = reference.content;
  const hyperparameters = config.config.hyperparameters;
  const method = (hyperparameters as { method?: string }).method ?? String(request.method);
  const name = runNameOfRequest(request);
  const splitResults = await folder.record(options.db, results, {
    name,
    task: task.name,
    model: { name: basename(String(request.modelDir ?? config.config.model?.folder ?? 'model')), fingerprint: reference.content.model.encoderFingerprint, ...(tunedEncoder ? { tunedFingerprint: tunedEncoder.fingerprint } : {}) },
    method: { spec: method, hyperparameters: JSON.parse(JSON.stringify(hyperparameters)) },
    seed: request.seed,
    backend: execution.backend as BackendName,
    scoring: recordedScoring(request.scoring),
    execution: { ...(execution.device ? { device: execution.device } : {}), dtype: execution.dtype as 'float32', batchSize: execution.batchSize, shardCount: count },
    versions: config.config.versions as never,
    gitCommit: (config.config.gitCommit as string | null) ?? null,
    timings,
    curve: config.curve.length ? (config.curve as never) : undefined,
  });
  return { runDir: folder.finalDir, name, backend: execution.backend, splits: splitResults, training: null, timings };
}

interface RunConfig {
  config: { hyperparameters: Record<string, unknown>; model?: { folder?: string }; tunedEncoder?: { folder: string; fingerprint: string }; versions?: unknown; gitCommit?: unknown; [key: string]: unknown };
  curve: unknown[];
  timings: Record<string, number>;
}

async function readRunConfig(dir: string): Promise<RunConfig> {
  const read = async (name: string) => {
    const file = join(dir, name);
    try {
      return JSON.parse(await readFile(file, 'utf8')) as unknown;
    } catch {
      throw new InputError(`not a finished shard run folder (no readable ${name})`, { file });
    }
  };
  const config = (await read('config.json')) as RunConfig['config'];
  if (typeof config !== 'object' || config === null || typeof config.hyperparameters !== 'object') throw new InputError('expected a run configuration with hyperparameters', { file: join(dir, 'config.json'), field: 'hyperparameters' });
  const tuned = config.tunedEncoder;
  if (tuned !== undefined && (typeof tuned?.fingerprint !== 'string' || typeof tuned.folder !== 'string' || tuned.folder !== basename(tuned.folder) || !existsSync(join(dir, tuned.folder)))) {
    throw new InputError('expected the tuned encoder as {folder, fingerprint}, its folder inside the shard run folder', { file: join(dir, 'config.json'), field: 'tunedEncoder' });
  }
  const curve = await read('curve.json');
  const timings = await read('timings.json');
  return { config, curve: Array.isArray(curve) ? curve : [], timings: (timings ?? {}) as Record<string, number> };
}

async function readShardFile(file: string): Promise<ShardFile> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InputError(`not a readable shard file (${(error as Error).message})`, { file });
  }
  const parsed = shardFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`not a vlbench shard file: ${issue.message}`, { file, field: issue.path.join('.') });
  }
  return parsed.data;
}

/** The shards must be slices of one run: same request (but where it ran), same trained model, same execution. */
function checkSameRun(reference: ShardInput, other: ShardInput): void {
  const a = reference.content;
  const b = other.content;
  const refuse = (field: string, left: unknown, right: unknown, why: string) => {
    throw new InputError(`shards of different runs cannot be merged: ${field} is ${JSON.stringify(left)} in ${reference.file} but ${JSON.stringify(right)} in ${other.file}${why ? ` (${why})` : ''}`, { field });
  };
  for (const key of [...new Set([...Object.keys(a.request), ...Object.keys(b.request)])].sort()) {
    if (LOCATION_KEYS.has(key)) continue;
    if (canonicalJson(a.request[key]) !== canonicalJson(b.request[key])) refuse(`request.${key}`, a.request[key], b.request[key], '');
  }
  if (a.model.encoderFingerprint !== b.model.encoderFingerprint) refuse('model.encoderFingerprint', a.model.encoderFingerprint, b.model.encoderFingerprint, 'different encoder checkpoints');
  if (a.shard.count !== b.shard.count) refuse('shard.count', a.shard.count, b.shard.count, 'each example belongs to one slice of one shard count');
  for (const key of ['backend', 'device', 'dtype', 'batchSize'] as const) {
    if (a.execution[key] !== b.execution[key]) refuse(`execution.${key}`, a.execution[key], b.execution[key], 'a run records one execution');
  }
  if (a.model.trainedFingerprint !== b.model.trainedFingerprint) {
    refuse('model.trainedFingerprint', a.model.trainedFingerprint, b.model.trainedFingerprint, 'the same request trained different weights: training was not deterministic here, so these predictions are not of one model');
  }
  if (a.split === b.split && a.splitFingerprint !== b.splitFingerprint) refuse(`splitFingerprint of "${a.split}"`, a.splitFingerprint, b.splitFingerprint, 'the shards read different data');
}

function checkShardNumbers(label: string, inputs: readonly ShardInput[], count: number): void {
  const files = new Map<number, string[]>();
  for (const input of inputs) files.set(input.content.shard.number, [...(files.get(input.content.shard.number) ?? []), input.file]);
  for (const [number, list] of files) if (list.length > 1) throw new InputError(`split "${label}": shard ${number}/${count} is given ${list.length} times (${list.join(', ')}); each shard must be merged once`, { field: 'shard.number' });
  // A missing shard is named by the coverage check, with the ids its examples would have had.
}

/** Every example of the split exactly once across the shards, or an error naming the missing, duplicated and unknown ids and their files. */
function coveredRows(label: string, split: LoadedSplit<unknown>, inputs: readonly ShardInput[]): Map<string, unknown> {
  const expected = new Set(split.examples.map(exampleIdOf));
  const seen = new Map<string, string[]>();
  const rows = new Map<string, unknown>();
  for (const input of inputs) {
    for (const row of input.content.rows) {
      seen.set(row.id, [...(seen.get(row.id) ?? []), input.file]);
      rows.set(row.id, row.prediction);
    }
  }
  const missing = sortExampleIds([...expected].filter((id) => !seen.has(id)));
  const duplicated = [...seen].filter(([, files]) => files.length > 1);
  const unknown = [...seen.keys()].filter((id) => !expected.has(id));
  if (missing.length === 0 && duplicated.length === 0 && unknown.length === 0) return rows;
  const count = inputs[0].content.shard.count;
  const present = [...new Set(inputs.map((input) => input.content.shard.number))].sort((a, b) => a - b);
  const absent = Array.from({ length: count }, (_, i) => i + 1).filter((number) => !present.includes(number));
  const problems: string[] = [];
  if (missing.length) problems.push(`${missing.length} of ${expected.size} examples are in no shard: ${listSome(missing)}${absent.length ? ` (shard${absent.length > 1 ? 's' : ''} ${absent.map((n) => `${n}/${count}`).join(', ')} not given)` : ''}`);
  if (duplicated.length) problems.push(`${duplicated.length} examples are in more than one shard: ${listSome(duplicated.map(([id, files]) => `${id} (${files.join(', ')})`))}`);
  if (unknown.length) problems.push(`${unknown.length} ids are not examples of the split: ${listSome(unknown)} (${[...new Set(unknown.flatMap((id) => seen.get(id)!))].join(', ')})`);
  throw new InputError(`split "${label}" cannot be scored: ${problems.join('; ')}; every example must be predicted exactly once`, { file: inputs.map((input) => input.file).join(', ') });
}

/** Retrieval ranks at merge: on the backend the shards computed their embeddings on, or not at all. */
async function selectShardBackend(reference: ShardInput): Promise<void> {
  const ran = reference.content.execution.backend as BackendName;
  const choice = choiceOfBackend(ran);
  if (!choice) throw new InputError(`the shards ran on ${ran}, which is no tfjs backend this merge can rank on`, { file: reference.file, field: 'execution.backend' });
  const selected = await selectBackend(choice);
  if (selected.name !== ran) throw new InputError(`the shards ran on ${ran}, and this merge ranks their embeddings on the same backend; here it is ${selected.name}`, { file: reference.file, field: 'execution.backend' });
}

function listSome(items: readonly string[], shown = 10): string {
  return items.length > shown ? `${items.slice(0, shown).join(', ')} and ${items.length - shown} more` : items.join(', ');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(',')}}`;
  return JSON.stringify(value) ?? 'undefined';
}
