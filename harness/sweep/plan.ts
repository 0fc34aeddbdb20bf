import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { gitCommit } from '../../core/environment.ts';
import { InputError } from '../../core/errors.ts';
import { VLBENCH_VERSION } from '../../core/version.ts';
import { canonicalJson } from '../../leaderboard/run-record.ts';
import { fingerprintModelFolder } from '../../models/encoders/aligned-encoder.ts';
import { bundledModelDir } from '../../models/encoders/bundled.ts';
import { getTask } from '../../tasks/registry.ts';
import { resolveRunData } from '../run-data.ts';
import { RUN_TASKS } from '../adapters/index.ts';
import { runRequestSchema, type RunRequest } from '../run-plan.ts';
import { parseRunSettings } from '../run-settings.ts';
import { getAdapter } from '../adapters/index.ts';
import { checkTaskLossSettings } from '../preflight.ts';
import { parseMethodSpec } from '../../models/objectives/index.ts';

/**
 * A sweep: the runs of a grid (tasks × methods × seeds × models × every combination of `--set`
 * values), each named by a run key that depends only on what decides its numbers:
 *
 *   sha256(task, method, seed, model fingerprint, split fingerprints, settings, code version)
 *
 * The key is the BullMQ job id (enqueueing a run that is queued, running or done is a no-op),
 * the run folder's name (`<key>.partial` while it runs, so a re-delivered job resumes from its
 * checkpoint on whichever machine picks it up) and the prefix of the run's leaderboard record
 * ids (`<key>-<split>`, so a run is never recorded twice). Paths do not enter the key: the same
 * data and weights mounted elsewhere are the same run.
 */
export interface SweepGrid {
  tasks: string[];
  methods: string[];
  seeds: number[];
  /** Model folders; [undefined] means the bundled model. */
  models: (string | undefined)[];
  /** Each `--set` key with the values to sweep over (one value = a fixed setting). */
  sets: Record<string, string[]>;
  /** Settings shared by every run of the sweep (data folder, epochs, backend, …). */
  common: SweepCommon;
}

/** The run settings a sweep shares across its grid: the run request's own fields, so the two cannot drift. */
export const sweepCommonSchema = runRequestSchema
  .pick({ dataDir: true, epochs: true, split: true, trainSplit: true, validationSplit: true, selectOnEvaluation: true, imagesDir: true, targetDir: true, trainDomain: true, maxTrainExamples: true, limit: true })
  .extend({ backend: runRequestSchema.shape.backend.optional() })
  .strict();
export type SweepCommon = z.infer<typeof sweepCommonSchema>;

export interface PlannedRun {
  key: string;
  /** Shown in `sweep status` and the worker's log: task, method, seed, model and swept settings. */
  label: string;
  request: RunRequest;
}

/** What a job carries: everything a worker needs, nothing that depends on the enqueueing machine but paths. */
export interface SweepJobData {
  key: string;
  label: string;
  request: RunRequest;
  /** The sweep's `--out`: where run folders go unless the worker names its own (the same folder mounted elsewhere). */
  runsDir?: string;
}

/** A grid file (JSON or YAML): the same axes as the flags, e.g. `tasks: [vqa]`, `set: {lr: [1e-3, 3e-4]}`. */
const gridFileSchema = z
  .object({
    tasks: z.array(z.string().min(1)).min(1).optional(),
    methods: z.array(z.string().min(1)).min(1).optional(),
    seeds: z.array(z.number().int().min(0)).min(1).optional(),
    models: z.array(z.string().min(1)).min(1).optional(),
    set: z.record(z.string(), z.union([z.array(z.union([z.string(), z.number()])).min(1), z.string(), z.number()])).optional(),
    data: z.string().min(1).optional(),
    epochs: z.number().int().positive().optional(),
    backend: runRequestSchema.shape.backend.optional(),
    maxTrainExamples: z.number().int().positive().optional(),
    limit: z.number().int().positive().optional(),
  })
  .strict();
export type GridFile = z.infer<typeof gridFileSchema>;

export async function readGridFile(path: string): Promise<GridFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new InputError('cannot read the sweep grid file', { file: path });
  }
  let value: unknown;
  try {
    value = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new InputError(`not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(error as Error).message}`, { file: path });
  }
  const parsed = gridFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`${issue.message}; a grid file has tasks, methods, seeds, models, set, data, epochs, backend, maxTrainExamples, limit`, { file: path, field: issue.path.join('.') || undefined });
  }
  return parsed.data;
}

/** `--set k=v1,v2` values of one key, as the grid sweeps them. */
export function setValues(value: string | number | (string | number)[]): string[] {
  const list = Array.isArray(value) ? value.map(String) : String(value).split(',');
  return list.map((item) => item.trim()).filter((item) => item !== '');
}

/** The cartesian product of the grid, in a fixed order (task, method, model, settings, seed). */
export function expandGrid(grid: SweepGrid): { task: string; method: string; seed: number; modelDir: string | undefined; sets: Record<string, string> }[] {
  for (const task of grid.tasks) {
    if (!(RUN_TASKS as readonly string[]).includes(task)) throw new InputError(`unknown task ${JSON.stringify(task)}; a sweep runs ${RUN_TASKS.join(', ')}`, { field: '--tasks' });
  }
  let settings: Record<string, string>[] = [{}];
  for (const [key, values] of Object.entries(grid.sets).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (values.length === 0) throw new InputError(`no value for "${key}"`, { field: '--set' });
    settings = settings.flatMap((partial) => values.map((value) => ({ ...partial, [key]: value })));
  }
  const runs = [];
  for (const task of grid.tasks) for (const method of grid.methods) for (const modelDir of grid.models) for (const sets of settings) for (const seed of grid.seeds) runs.push({ task, method, seed, modelDir, sets });
  return runs;
}

/**
 * The code a run is computed with: a different vlbench (or commit) may compute different numbers,
 * so it is part of the run key. VLBENCH_CODE_VERSION replaces it (a release tag for workers
 * installed without .git, or a pinned value while a sweep spans commits known not to change results).
 */
export const CODE_VERSION_ENV_VARIABLE = 'VLBENCH_CODE_VERSION';
export function codeVersion(): string {
  const pinned = process.env[CODE_VERSION_ENV_VARIABLE];
  if (pinned !== undefined && pinned.trim() !== '') return pinned.trim();
  return `${VLBENCH_VERSION}+${gitCommit() ?? 'unknown'}`;
}

/**
 * Refuses a grid any of whose runs `vlbench run` would refuse for its method or settings (an
 * unknown objective, `lr=abc`, a setting of a loss the task does not train, a method the task
 * cannot run), naming the run: otherwise the sweep is enqueued and every such run fails later, on
 * a worker, one attempt after another. Reads no data and reaches no server.
 */
export function checkSweepGrid(grid: SweepGrid): void {
  const seen = new Set<string>();
  for (const run of expandGrid(grid)) {
    const point = canonicalJson({ task: run.task, method: run.method, sets: run.sets });
    if (seen.has(point)) continue;
    seen.add(point);
    try {
      const method = parseMethodSpec(run.method, run.sets);
      parseRunSettings(method.otherSettings);
      const unsupported = getAdapter(run.task).unsupportedMethod(method);
      if (unsupported) throw new InputError(unsupported);
      checkTaskLossSettings(run.task, method, run.sets);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const settings = Object.entries(run.sets).map(([key, value]) => ` ${key}=${value}`).join('');
      throw new InputError(`nothing enqueued: the run ${run.task} ${run.method}${settings} would be refused: ${error.message}`);
    }
  }
}

/** Resolves the grid into runs with their keys; loads each task's evaluation splits once, to fingerprint them. */
export async function planSweep(grid: SweepGrid): Promise<PlannedRun[]> {
  checkSweepGrid(grid);
  const common = sweepCommonSchema.parse(grid.common);
  const dataDir = resolve(common.dataDir);
  const version = codeVersion();
  const modelFingerprints = new Map<string, string>();
  const splitFingerprints = new Map<string, { split: string; fingerprint: string }[]>();
  const planned: PlannedRun[] = [];
  const seen = new Set<string>();
  for (const run of expandGrid(grid)) {
    const modelDir = resolve(run.modelDir ?? bundledModelDir());
    if (!modelFingerprints.has(modelDir)) modelFingerprints.set(modelDir, await modelFingerprint(modelDir));
    if (!splitFingerprints.has(run.task)) splitFingerprints.set(run.task, await evaluationFingerprints(run.task, dataDir, common));
    const { dataDir: _path, imagesDir: _images, targetDir: _target, ...settings } = common;
    const request = runRequestSchema.parse({
      ...common,
      dataDir,
      imagesDir: common.imagesDir && resolve(common.imagesDir),
      targetDir: common.targetDir && resolve(common.targetDir),
      task: run.task,
      method: run.method,
      seed: run.seed,
      modelDir,
      sets: run.sets,
    });
    const key = createHash('sha256')
      .update(
        canonicalJson({
          task: run.task,
          method: run.method,
          seed: run.seed,
          model: modelFingerprints.get(modelDir),
          splits: splitFingerprints.get(run.task),
          settings: { ...settings, sets: run.sets },
          code: version,
        }),
      )
      .digest('hex');
    // The same run reached twice through the grid (e.g. a model folder named twice) is one run.
    if (seen.has(key)) continue;
    seen.add(key);
    const swept = Object.entries(run.sets).filter(([name]) => (grid.sets[name]?.length ?? 0) > 1);
    const label = [run.task, run.method, `seed ${run.seed}`, ...(grid.models.length > 1 ? [modelDir] : []), ...swept.map(([name, value]) => `${name}=${value}`)].join(' ');
    planned.push({ key, label, request });
  }
  return planned;
}

async function modelFingerprint(modelDir: string): Promise<string> {
  if (!existsSync(join(modelDir, 'config.json'))) throw new InputError('not a model folder (no config.json)', { file: modelDir });
  // The engine a run would pick by the folder's contents (load-encoder.ts): safetensors means tfjs.
  return fingerprintModelFolder(modelDir, existsSync(join(modelDir, 'model.safetensors')) ? 'tfjs' : 'onnx');
}

async function evaluationFingerprints(task: string, dataDir: string, common: SweepCommon): Promise<{ split: string; fingerprint: string }[]> {
  const data = await resolveRunData({ task, dataDir, split: common.split, trainSplit: common.trainSplit, validationSplit: common.validationSplit, selectOnEvaluation: common.selectOnEvaluation, imagesDir: common.imagesDir, targetDir: common.targetDir, trainDomain: common.trainDomain });
  const loader = getTask(task);
  const fingerprints = [];
  for (const options of data.evaluations) {
    const loaded = await loader.load(options);
    fingerprints.push({ split: loaded.split, fingerprint: loaded.fingerprint });
  }
  return fingerprints;
}

/** Leaderboard record ids of a run: `<key>-<split>`; every id of one run starts with this. */
export function recordIdPrefix(key: string): string {
  return `${key}-`;
}
