import { exampleScores, listRuns, recordedRunIds, recordRun, RunAlreadyRecordedError, type LeaderboardStore } from './store.ts';

/**
 * Copies every run of one store into another, record and per-example scores, keyed by run id:
 * runs already in the target are left as they are, so copying twice (or copying both ways)
 * never duplicates a run. Each run goes in through `recordRun`, in its own transaction, with its
 * id and time unchanged, so the target validates it as if it had been recorded there.
 */
export interface CopyResult {
  copied: string[];
  /** Already in the target (same id): left untouched. */
  skipped: string[];
  /** Per-example score rows written. */
  exampleRows: number;
}

export async function copyRuns(from: LeaderboardStore, to: LeaderboardStore, options: { task?: string; onRun?: (id: string, copied: boolean) => void } = {}): Promise<CopyResult> {
  const runs = await listRuns(from, { task: options.task });
  const present = await recordedRunIds(to, runs.map((run) => run.record.id));
  const result: CopyResult = { copied: [], skipped: [], exampleRows: 0 };
  // Oldest first, so the target's recording order (and "latest run of a name") matches the source's.
  for (const { record, exampleCount } of runs) {
    if (present.has(record.id)) {
      result.skipped.push(record.id);
      options.onRun?.(record.id, false);
      continue;
    }
    const scores = exampleCount > 0 ? await exampleScores(from, record.id) : null;
    const { recordVersion: _version, ...draft } = record;
    try {
      await recordRun(to, draft, scores);
    } catch (error) {
      // Another process copied or recorded it in the meantime: still not a duplicate.
      if (!(error instanceof RunAlreadyRecordedError)) throw error;
      result.skipped.push(record.id);
      options.onRun?.(record.id, false);
      continue;
    }
    result.copied.push(record.id);
    result.exampleRows += scores?.length ?? 0;
    options.onRun?.(record.id, true);
  }
  return result;
}
