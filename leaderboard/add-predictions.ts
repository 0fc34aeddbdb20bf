import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import type { Task } from '../core/types.ts';
import type { RunRecord, RunRecordDraft } from './run-record.ts';
import { recordRun, type LeaderboardStore } from './store.ts';

/**
 * Brings predictions made elsewhere (a PyTorch model's EvalAI result file, say) onto the
 * board: the task loads the split, reads and validates the result file, and scores it with
 * the official metric, exactly as for a vlbench run.
 */
export interface AddPredictionsOptions {
  task: Task;
  dataDir: string;
  /** Split in the dataset's own terms; defaults to the task's first known split. */
  split?: string;
  predictionsFile: string;
  name: string;
  model?: string;
  method?: string;
  seed?: number | null;
  versions: RunRecord['versions'];
  gitCommit: string | null;
}

export async function addPredictions(store: LeaderboardStore, options: AddPredictionsOptions): Promise<RunRecord> {
  const { task } = options;
  const split = options.split ?? task.splits[0];
  if (split === undefined) throw new InputError(`task ${task.name} names no default split; pass --split`, { field: '--split' });
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
    timings[phase] = Number(process.hrtime.bigint() - start) / 1e9;
    return result;
  };
  const loaded = await timed('load', () => task.load({ dataDir: options.dataDir, split }));
  const predictions = await timed('readPredictions', () => task.readPredictions(loaded, predictionsPath));
  const report = await timed('score', () => task.score(loaded, predictions));

  const draft: RunRecordDraft = {
    name: options.name,
    task: loaded.task,
    taskVersion: loaded.taskVersion,
    split: loaded.split,
    splitFingerprint: loaded.fingerprint,
    metric: report.metric,
    metricVersion: report.metricVersion,
    primaryMetric: report.primary,
    model: { name: options.model ?? 'external', fingerprint: null },
    method: { spec: options.method ?? 'external predictions', hyperparameters: {} },
    seed: options.seed ?? null,
    backend: null,
    versions: options.versions,
    gitCommit: options.gitCommit,
    timings,
    metrics: report.metrics,
    predictions: { path: predictionsPath, sha256: predictionsSha256 },
    perExamplePath: null,
  };
  return recordRun(store, draft, report.perExample.length > 0 ? report.perExample : null);
}
