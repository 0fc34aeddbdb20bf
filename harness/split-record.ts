import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RunRecordDraft } from '../leaderboard/run-record.ts';
import type { LoadedSplit, ScoreReport } from '../core/types.ts';

/**
 * The part of a leaderboard record that one scored split fixes, the same for a run and for
 * merged shards: what was scored (task version, split, fingerprint, metric), the metrics, and
 * the submission file with its hash. A run folder named by a sweep's run key (64 hex digits,
 * harness/sweep/plan.ts) gives its records the ids `<key>-<split>`, so a re-delivered job can
 * never record the run twice.
 */
export async function splitRecordFields(
  runId: string,
  runDir: string,
  split: LoadedSplit<unknown>,
  report: ScoreReport,
  predictionsFile: string,
): Promise<Pick<RunRecordDraft, 'id' | 'taskVersion' | 'split' | 'splitFingerprint' | 'limit' | 'metric' | 'metricVersion' | 'primaryMetric' | 'metrics' | 'predictions' | 'perExamplePath'>> {
  return {
    id: /^[0-9a-f]{64}$/.test(runId) ? `${runId}-${split.split.replace(/[^A-Za-z0-9._-]+/g, '_')}` : undefined,
    taskVersion: split.taskVersion,
    split: split.split,
    splitFingerprint: split.fingerprint,
    limit: split.limit ?? null,
    metric: report.metric,
    metricVersion: report.metricVersion,
    primaryMetric: report.primary,
    metrics: report.metrics,
    predictions: { path: predictionsFile, sha256: createHash('sha256').update(await readFile(predictionsFile)).digest('hex') },
    perExamplePath: join(runDir, 'scores', `${basename(predictionsFile).replace(/\.[^.]+$/, '')}.json`),
  };
}
