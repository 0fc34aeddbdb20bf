import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { InputError } from '../../core/errors.ts';
import { openLeaderboard, recordedRunIdsWithPrefix } from '../../leaderboard/store.ts';
import { withoutPassword } from '../../leaderboard/postgres-store.ts';
import { RunWorker, type RunSummary } from '../run-pool.ts';
import { RunFolder } from '../run-folder.ts';
import { recordIdPrefix, type SweepJobData } from './plan.ts';
import { DEFAULT_QUEUE_NAME, redisConnection } from './queue.ts';
import { blasThreadsPerWorker } from '../../models/backends/wasm-blas.ts';

/**
 * A sweep worker: pulls runs from the queue and executes each in a child process (the run
 * pool's RunWorker, kept for the next job), so this process's event loop stays free to renew the job's lock while tfjs
 * computes. A worker killed outright stops renewing; when the lock expires another worker's
 * stalled-job check takes the run back, and because the run folder is named by the run key in
 * a folder every worker sees, the run continues from its last checkpoint there.
 *
 * Faults, and what each does to the job:
 * - the store cannot be reached: the attempt fails before any work (or, after the run, before
 *   anything is recorded) and is retried with backoff; the finished run folder is kept;
 * - the run is bad input (unknown method, missing data): failed at once, no retries;
 * - the run is already recorded (a second delivery, a second enqueue): done, without running;
 * - Redis goes away: the worker says so once, reconnects with BullMQ's backoff, says when it is
 *   back, and stops its runs and gives up after `queueLostLimitMs` (their jobs are taken again
 *   from their checkpoints once Redis returns and their locks expire).
 */
export interface SweepWorkerOptions {
  queueUrl: string;
  queueName?: string;
  /** The leaderboard every worker records into: a postgres:// URL (or a SQLite file on a shared disk, one machine). */
  db: string;
  /**
   * Run folders; must be one folder all workers see, or a re-delivered run starts over.
   * Default: the sweep's --out, then runs/.
   */
  runsDir?: string;
  cacheDir?: string;
  /** Runs at once (one child process each). */
  concurrency?: number;
  /** How long a job's lock lasts without renewal: the time a killed worker's run waits before another takes it. */
  lockDurationMs?: number;
  log?: (line: string) => void;
  /**
   * How long the queue may stay unreachable (Redis stopped, the network gone) before the worker
   * gives up: it stops its runs and calls `onQueueLost`. Default {@link QUEUE_LOST_LIMIT_MS}; 0: never.
   */
  queueLostLimitMs?: number;
  /** The queue did not come back within `queueLostLimitMs`; the caller closes the worker and says so. */
  onQueueLost?: (error: Error) => void;
}

/** A minute: Redis restarting (or failing over) comes back well within it, and a worker whose queue is gone for good says so instead of retrying forever. */
export const QUEUE_LOST_LIMIT_MS = 60_000;

/** What a finished job returns (BullMQ stores it as the job's return value). */
export interface SweepJobResult {
  key: string;
  recordIds: string[];
  /** True when the run was found already recorded and nothing ran. */
  alreadyRecorded: boolean;
  resumedFromStep: number | null;
  worker: string;
  summary: RunSummary | null;
}

export function startSweepWorker(options: SweepWorkerOptions): Worker<SweepJobData, SweepJobResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const workerName = `${hostname()}:${process.pid}`;
  const lockDuration = options.lockDurationMs ?? 30_000;
  const worker = new Worker<SweepJobData, SweepJobResult>(options.queueName ?? DEFAULT_QUEUE_NAME, (job) => processJob(job), {
    connection: redisConnection(options.queueUrl),
    concurrency: options.concurrency ?? 1,
    lockDuration,
    // Check for other workers' expired locks at the same pace the locks expire.
    stalledInterval: Math.max(1_000, Math.round(lockDuration / 2)),
    // A run that stalls this often (kills, machine losses) is failed rather than retried forever.
    maxStalledCount: 3,
  });

  // Child processes are kept between jobs, as the run pool keeps them: starting one (tsx, tfjs)
  // costs seconds, more than a small run. A child that died is replaced.
  const idleChildren: RunWorker[] = [];
  const busyChildren = new Set<RunWorker>();
  const takeChild = () => {
    for (let child = idleChildren.pop(); child; child = idleChildren.pop()) if (child.alive) return child;
    // Jobs running side by side share the cores: each child gets its share of BLAS threads.
    return new RunWorker(blasThreadsPerWorker(options.concurrency ?? 1));
  };

  async function recordedIds(key: string): Promise<string[]> {
    const store = await openLeaderboard(options.db, { create: true });
    try {
      return await recordedRunIdsWithPrefix(store, recordIdPrefix(key));
    } finally {
      await store.close();
    }
  }

  async function processJob(job: Job<SweepJobData, SweepJobResult>): Promise<SweepJobResult> {
    const { key, label, request } = job.data;
    const runsDir = resolve(options.runsDir ?? job.data.runsDir ?? 'runs');
    const done = (recordIds: string[], summary: RunSummary | null, alreadyRecorded: boolean): SweepJobResult => ({ key, recordIds, alreadyRecorded, resumedFromStep: summary?.resumedFromStep ?? null, worker: workerName, summary });
    // Asking the store first: an unreachable store fails this attempt before any work is done.
    const before = await retryableUnlessInput(() => recordedIds(key));
    if (before.length > 0) {
      log(`${label}: already recorded (${before.length} records), nothing to run`);
      return done(before, null, true);
    }
    const { resumeDir, hasCheckpoint } = await RunFolder.keyed(runsDir, key, request);
    log(`${label}: starting (attempt ${job.attemptsMade + 1}${hasCheckpoint ? ', resuming from its checkpoint' : ''})`);
    const child = takeChild();
    let summary: RunSummary;
    busyChildren.add(child);
    try {
      summary = await child.run({ request, hooks: { db: options.db, runsDir, cacheDir: options.cacheDir, resumeDir } });
    } catch (error) {
      // A run that failed may have left the child's tfjs in any state: the next one gets a fresh child.
      child.stop();
      const failure = error as Error;
      if (failure.name === 'RunAlreadyRecordedError') {
        // Another delivery of the same run recorded it first: the run is done, once.
        return done(await recordedIds(key), null, true);
      }
      if (failure instanceof InputError && failure.name !== 'StoreUnreachableError') throw new UnrecoverableError(failure.message);
      throw failure;
    } finally {
      busyChildren.delete(child);
    }
    if (child.alive) idleChildren.push(child);
    const recordIds = summary.splits.map((split) => split.recordId).filter((id): id is string => id !== null);
    log(`${label}: done${summary.resumedFromStep !== null ? ` (resumed from step ${summary.resumedFromStep})` : ''}: ${summary.splits.map((s) => `${s.split} ${s.primary} ${s.metrics[s.primary].toFixed(2)}`).join(', ')}`);
    return done(recordIds, summary, false);
  }

  worker.on('failed', (job, error) => {
    if (job) log(`${job.data.label}: attempt ${job.attemptsMade} failed: ${error.message.split('\n')[0]}`);
  });
  // A queue that goes away is said once, not at every reconnection attempt (ioredis retries with
  // BullMQ's backoff, 1 s growing to 20 s); a queue that stays away past the limit ends the worker.
  const lostLimit = options.queueLostLimitMs ?? QUEUE_LOST_LIMIT_MS;
  let lostSince: number | null = null;
  let lastError: Error | undefined;
  let giveUp: NodeJS.Timeout | undefined;
  const lost = (reason: string) => {
    if (lostSince !== null) return;
    lostSince = Date.now();
    log(`queue: lost ${withoutPassword(options.queueUrl)} (${reason}); reconnecting${lostLimit > 0 ? `, for up to ${lostLimit / 1000} s` : ''}`);
    if (lostLimit <= 0) return;
    giveUp = setTimeout(() => {
      log(`queue: ${withoutPassword(options.queueUrl)} did not come back in ${lostLimit / 1000} s; stopping (running jobs go back to the queue when it does)`);
      for (const child of [...busyChildren, ...idleChildren]) child.stop();
      options.onQueueLost?.(lastError ?? new Error('the connection closed'));
    }, lostLimit);
  };
  // BullMQ's event for a connection that closed while the worker was not closing it.
  worker.on('ioredis:close', () => lost('the connection closed'));
  worker.on('error', (error) => {
    if (!isConnectionError(error)) return log(`queue: ${error.message}`);
    lastError = error;
    lost(error.message);
  });
  worker.on('ready', () => {
    if (lostSince === null) return;
    log(`queue: ${withoutPassword(options.queueUrl)} is back after ${((Date.now() - lostSince) / 1000).toFixed(1)} s`);
    clearTimeout(giveUp);
    lostSince = null;
    lastError = undefined;
  });
  worker.on('closed', () => {
    clearTimeout(giveUp);
    for (const child of idleChildren.splice(0)) child.stop();
  });
  return worker;
}

/** Errors of the way to Redis (as ioredis reports them), as against errors Redis answered with. */
function isConnectionError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return (code !== undefined && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'].includes(code)) || /Connection is closed|connect ETIMEDOUT|Socket closed unexpectedly/i.test(error.message);
}

/** Store trouble is worth another attempt later; bad input (a foreign database, say) is not. */
async function retryableUnlessInput<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof InputError && (error as Error).name !== 'StoreUnreachableError') throw new UnrecoverableError(error.message);
    throw error;
  }
}
