import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import type { LoadedSplit, LoadOptions, ScoreOptions, Task } from '../core/types.ts';
import { recordedScoring, type RunExecution, type RunRecord, type RunRecordDraft } from './run-record.ts';
import { recordRun, type LeaderboardStore } from './store.ts';

/**
 * Brings predictions made elsewhere (a PyTorch model's EvalAI result file, say) onto the
 * board: the task loads the split, reads and validates the result file, and scores it with
 * the official metric, exactly as for a vlbench run.
 */
export interface AddPredictionsOptions {
  task: Task;
  /**
   * The split the predictions are for, or the splits they may be for: with several, the one
   * whose examples the predictions file fits exactly is scored (the task's own reader decides),
   * and none or more than one is an error that lists them. The CLI builds these from --data
   * and --split (a SynthScenes folder gives its splits as `vlbench run` records them).
   */
  splits: readonly SplitCandidate[];
  /** Shown in errors: the dataset folder the candidates come from. */
  dataDir: string;
  predictionsFile: string;
  name: string;
  model?: string;
  method?: string;
  seed?: number | null;
  /** Scoring options (VQA legacy normalisation, retrieval folds); recorded in the run's comparability key. */
  scoring?: ScoreOptions;
  /** What the predictions were computed on, when the submitter says. */
  execution?: RunExecution;
  versions: RunRecord['versions'];
  gitCommit: string | null;
}

export interface SplitCandidate {
  /** The split as the leaderboard records it, e.g. "val2014", "test/source". */
  label: string;
  load: LoadOptions;
}

export async function addPredictions(store: LeaderboardStore, options: AddPredictionsOptions): Promise<RunRecord> {
  const { task } = options;
  if (options.splits.length === 0) throw new InputError(`task ${task.name} names no split to score; pass --split`, { field: '--split' });
  const predictionsPath = resolve(options.predictionsFile);
  try {
    if (!statSync(predictionsPath).isFile()) throw new Error('not a file');
  } catch {
    throw new InputError('expected a predictions file', { file: options.predictionsFile });
  }

  // Hashed before scoring, so the recorded hash is of the bytes that were scored.
  const predictionsSha256 = createHash('sha256').update(readFileSync(predictionsPath)).digest('hex');
  const timings: Record<string, number> = {};
  const timed = async <T>(phase: string, work: () => Promise<T> | T): Promise<T> => {
    const start = process.hrtime.bigint();
    const result = await work();
    timings[phase] = (timings[phase] ?? 0) + Number(process.hrtime.bigint() - start) / 1e9;
    return result;
  };
  const { loaded, predictions } = await splitOfPredictions(task, options.splits, predictionsPath, options.dataDir, timed);
  const report = await timed('score', () => task.score(loaded, predictions, options.scoring ?? {}));

  const draft: RunRecordDraft = {
    name: options.name,
    task: loaded.task,
    taskVersion: loaded.taskVersion,
    split: loaded.split,
    splitFingerprint: loaded.fingerprint,
    metric: report.metric,
    metricVersion: report.metricVersion,
    primaryMetric: report.primary,
    scoring: recordedScoring(options.scoring),
    model: { name: options.model ?? 'external', fingerprint: null },
    method: { spec: options.method ?? 'external predictions', hyperparameters: {} },
    seed: options.seed ?? null,
    backend: null,
    ...(options.execution && Object.keys(options.execution).length > 0 ? { execution: options.execution } : {}),
    versions: options.versions,
    gitCommit: options.gitCommit,
    timings,
    metrics: report.metrics,
    predictions: { path: predictionsPath, sha256: predictionsSha256 },
    perExamplePath: null,
  };
  return recordRun(store, draft, report.perExample.length > 0 ? report.perExample : null);
}

/**
 * Loads the candidate splits and keeps the one the predictions file fits. A single candidate
 * is loaded and read as is, so its errors reach the user unchanged. With several, a candidate
 * whose files are missing or whose examples the file does not cover is set aside with the
 * reason, and those reasons are the error when none fits.
 */
async function splitOfPredictions(
  task: Task,
  candidates: readonly SplitCandidate[],
  predictionsPath: string,
  dataDir: string,
  timed: <T>(phase: string, work: () => Promise<T> | T) => Promise<T>,
): Promise<{ loaded: LoadedSplit<unknown>; predictions: unknown }> {
  const load = (candidate: SplitCandidate) => timed('load', () => task.load(candidate.load));
  const read = (loaded: LoadedSplit<unknown>) => timed('readPredictions', () => task.readPredictions(loaded, predictionsPath));
  if (candidates.length === 1) {
    const loaded = await load(candidates[0]);
    return { loaded, predictions: await read(loaded) };
  }
  const fits: { candidate: SplitCandidate; loaded: LoadedSplit<unknown>; predictions: unknown }[] = [];
  const misfits: string[] = [];
  for (const candidate of candidates) {
    try {
      const loaded = await load(candidate);
      fits.push({ candidate, loaded, predictions: await read(loaded) });
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      misfits.push(`${candidate.label} (${error.message})`);
    }
  }
  if (fits.length === 1) return fits[0];
  if (fits.length === 0) {
    throw new InputError(`the predictions fit none of the ${task.name} splits tried: ${misfits.join('; ')}`, { file: predictionsPath, field: '--split' });
  }
  throw new InputError(
    `the predictions fit ${fits.length} splits of ${dataDir} (${fits.map((fit) => fit.candidate.label).join(', ')}); pass --split with the one they were made for`,
    { file: predictionsPath, field: '--split' },
  );
}
