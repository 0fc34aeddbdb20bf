import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { InputError } from '../core/errors.ts';
import type { LoadedSplit, ScoreReport, Task } from '../core/types.ts';
import { type RunRecord, type RunRecordDraft } from '../leaderboard/run-record.ts';
import { openLeaderboard, recordRun } from '../leaderboard/store.ts';
import { removeCheckpoint, type TrainingResult } from '../models/train.ts';
import type { TaskAdapter } from './adapters/index.ts';
import { runRequestSchema, type ResolvedRunRequest } from './run-plan.ts';
import { splitRecordFields } from './split-record.ts';

/**
 * A run folder and its lifecycle: built as `<id>.partial`, renamed to `<id>` when complete, so an
 * interrupted run never looks finished (`--resume` continues the `.partial` folder), and recorded
 * in the leaderboard only then. One layout for `vlbench run`, `vlbench merge-shards` and the sweep
 * worker:
 *
 *   request.json  config.json  curve.json  timings.json  metrics.json
 *   predictions/<split>.<ext>  scores/<split>.json  [encoder/]  [shards/]  [checkpoint*]
 */

export interface SplitResult {
  split: string;
  report: ScoreReport;
  record: RunRecord | null;
}

/** What a run (or a merge of shards, which trains nothing of its own) returns. */
export interface RunOutcome {
  runDir: string;
  name: string;
  backend: string;
  /** The backend as `vlbench run` prints it (library, threads, or why the BLAS kernels were not used); absent for merged shards. */
  backendLine?: string;
  splits: SplitResult[];
  training: TrainingResult | null;
  timings: Record<string, number>;
}

/** A scored evaluation split, as written into the folder. */
export interface ScoredSplit {
  split: LoadedSplit<unknown>;
  report: ScoreReport;
  /** The submission file, in the `.partial` folder. */
  predictionsFile: string;
  /** The floors the score is judged against (adapter.controls), beside it in metrics.json. */
  controls?: Record<string, number>;
}

/** The fields of a record that one run shares across its splits (splitRecordFields adds each split's). */
export type RunRecordFields = Omit<RunRecordDraft, keyof Awaited<ReturnType<typeof splitRecordFields>>>;

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomically(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Where a folder is built until it is complete: `<final>.partial` (run folders, pretrained model folders). */
export function partialFolderOf(finalDir: string): string {
  return `${finalDir}.partial`;
}

/** A file name from a split label ("test/source" → "test_source"). */
export function splitStem(label: string): string {
  return label.replace(/[^A-Za-z0-9._-]+/g, '_');
}

export class RunFolder {
  private constructor(
    readonly runId: string,
    readonly partialDir: string,
    readonly finalDir: string,
  ) {}

  /**
   * A run's folder: a new `<runsDir>/<id>.partial` (the id from the time, task, SPEC, seed and pid,
   * plus `suffix`), or the interrupted `resumeDir`, whose request must be this one. Writes request.json.
   */
  static async open(input: { runsDir: string; request: ResolvedRunRequest; spec: string; suffix: string; resumeDir?: string }): Promise<RunFolder> {
    const runId = input.resumeDir ? basename(input.resumeDir).replace(/\.partial$/, '') : newRunFolderId(input.runsDir, input.request, input.spec, input.suffix);
    const folder = new RunFolder(runId, input.resumeDir ?? partialFolderOf(join(input.runsDir, runId)), join(input.runsDir, runId));
    if (existsSync(folder.finalDir)) throw new InputError('this run folder is already complete', { file: folder.finalDir });
    if (input.resumeDir) await checkSameRequest(join(folder.partialDir, 'request.json'), input.request);
    await mkdir(folder.partialDir, { recursive: true });
    await folder.writeJson('request.json', input.request);
    return folder;
  }

  /** A folder built afresh under a name fixed by the caller (a merge of shards); a finished one is refused with `whyFinished`. */
  static async fresh(runsDir: string, runId: string, whyFinished: string): Promise<RunFolder> {
    const folder = new RunFolder(runId, partialFolderOf(join(runsDir, runId)), join(runsDir, runId));
    if (existsSync(folder.finalDir)) throw new InputError(whyFinished, { file: folder.finalDir });
    await rm(folder.partialDir, { recursive: true, force: true });
    return folder;
  }

  /**
   * A sweep job's folder, named by its run key so that any worker resumes it from its last
   * checkpoint. A run that finished but was never recorded (the store went away) runs again in
   * place: its seed makes the numbers the same, and the old folder stays until the new one is done.
   * Returns the `.partial` folder to resume, with request.json written for a fresh run.
   */
  static async keyed(runsDir: string, key: string, request: unknown): Promise<{ resumeDir: string; hasCheckpoint: boolean }> {
    const finalDir = join(runsDir, key);
    const partialDir = partialFolderOf(finalDir);
    if (existsSync(finalDir)) {
      await rm(partialDir, { recursive: true, force: true });
      await rename(finalDir, partialDir);
    }
    // A fresh run is started as a resumable one: the lifecycle resumes only a folder whose request.json is this very request.
    if (!existsSync(join(partialDir, 'request.json'))) await writeJson(join(partialDir, 'request.json'), runRequestSchema.parse(request));
    return { resumeDir: partialDir, hasCheckpoint: existsSync(join(partialDir, 'checkpoint')) };
  }

  /** A path inside the `.partial` folder. */
  path(...parts: string[]): string {
    return join(this.partialDir, ...parts);
  }

  writeJson(name: string, value: unknown): Promise<void> {
    return writeJson(this.path(name), value);
  }

  /** The official submission file and the per-example scores of one evaluation split. */
  async writeScoredSplit(task: Task, adapter: TaskAdapter, split: LoadedSplit<unknown>, predictions: unknown, report: ScoreReport): Promise<string> {
    const stem = splitStem(split.split);
    const submission = this.path('predictions', `${stem}.${adapter.submissionExtension}`);
    await mkdir(this.path('predictions'), { recursive: true });
    await task.writeSubmission(split, predictions, submission);
    await this.writeJson(join('scores', `${stem}.json`), { split: split.split, metrics: report.metrics, official: report.official, perExample: report.perExample });
    return submission;
  }

  /** metrics.json: each split's metrics, with the floors (e.g. VQA's per-question-type prior) under `controls` where the task has them. */
  writeMetrics(results: readonly ScoredSplit[]): Promise<void> {
    return this.writeJson('metrics.json', Object.fromEntries(results.map((r) => [r.split.split, r.controls ? { ...r.report.metrics, controls: r.controls } : r.report.metrics])));
  }

  /** The checkpoints go, then the folder appears under its final name in one rename. */
  async finish(): Promise<void> {
    for (const checkpoint of ['checkpoint', 'checkpoint-refit']) {
      await removeCheckpoint(this.path(checkpoint));
      await rm(this.path(checkpoint), { recursive: true, force: true });
    }
    await rename(this.partialDir, this.finalDir);
  }

  /**
   * One record per scored split, after `finish`: the folder is complete before anything enters
   * the leaderboard, so a failed write to the database leaves a finished run that `vlbench
   * leaderboard add` can still record. `db` null: nothing is recorded.
   */
  async record(db: string | null, results: readonly ScoredSplit[], fields: RunRecordFields): Promise<SplitResult[]> {
    const splitResults: SplitResult[] = [];
    const store = db ? await openLeaderboard(db, { create: true }) : null;
    try {
      for (const { split, report, predictionsFile } of results) {
        const finalPredictions = predictionsFile.replace(this.partialDir, this.finalDir);
        const record = store ? await recordRun(store, { ...(await splitRecordFields(this.runId, this.finalDir, split, report, finalPredictions)), ...fields }, report.perExample) : null;
        splitResults.push({ split: split.split, report, record });
      }
    } finally {
      await store?.close();
    }
    return splitResults;
  }
}

/**
 * `<time>-<task>-<method>-s<seed>-<pid>[<suffix>]`. The time has one-second resolution and the
 * pid tells processes apart; two runs of the same request in one process within a second (a fast
 * zero-shot run does that) would share the name, so a taken name gets a counter.
 */
function newRunFolderId(runsDir: string, request: ResolvedRunRequest, spec: string, suffix: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '').replace('T', '-');
  const label = `${request.task}-${spec.replace(/\+/g, '_')}${request.trainDomain === 'target' ? '-oracle' : ''}-s${request.seed}`;
  const base = `${stamp}-${label}-${process.pid}`;
  const taken = (id: string) => existsSync(join(runsDir, id)) || existsSync(partialFolderOf(join(runsDir, id)));
  let id = `${base}${suffix}`;
  for (let n = 2; taken(id); n++) id = `${base}-${n}${suffix}`;
  return id;
}

/**
 * A resumed run must be the run that was interrupted: any changed setting (a learning rate, an
 * objective's weight, the seed, the data) would make its checkpoint and its result mean
 * nothing, so it is refused by name. Only where the leaderboard puts the result may differ.
 */
async function checkSameRequest(file: string, request: ResolvedRunRequest): Promise<void> {
  let stored: unknown;
  try {
    stored = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new InputError('not an interrupted run folder (no readable request.json)', { file });
  }
  const previous = runRequestSchema.parse(stored);
  const changed: string[] = [];
  const keys = new Set([...Object.keys(previous), ...Object.keys(request)]);
  for (const key of [...keys].sort()) {
    if (key === 'name') continue;
    const before = (previous as Record<string, unknown>)[key];
    const now = (request as Record<string, unknown>)[key];
    if (key === 'sets') {
      const setKeys = new Set([...Object.keys(before as object), ...Object.keys(now as object)]);
      for (const setKey of [...setKeys].sort()) {
        const a = (before as Record<string, string>)[setKey];
        const b = (now as Record<string, string>)[setKey];
        if (a !== b && setKey !== 'checkpoint_every') changed.push(`--set ${setKey} (${a ?? 'default'} → ${b ?? 'default'})`);
      }
    } else if (JSON.stringify(before) !== JSON.stringify(now)) {
      changed.push(`${key} (${JSON.stringify(before) ?? 'default'} → ${JSON.stringify(now) ?? 'default'})`);
    }
  }
  if (changed.length) throw new InputError(`a resumed run must keep the interrupted run's settings; changed: ${changed.join(', ')}`, { file });
}
