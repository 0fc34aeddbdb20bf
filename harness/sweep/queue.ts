import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { InputError } from '../../core/errors.ts';
import { openLeaderboard, recordedRunIdsWithPrefix } from '../../leaderboard/store.ts';
import { withoutPassword } from '../../leaderboard/postgres-store.ts';
import { CONNECT_BUDGET_MS, withConnectRetries } from '../../core/connect-retries.ts';
import { recordIdPrefix, type PlannedRun, type SweepJobData } from './plan.ts';

/**
 * The sweep queue on Redis (BullMQ). One queue holds the runs of every sweep; a job's id is its
 * run key, which BullMQ refuses to add twice while the job exists (waiting, running, done or
 * failed), and the leaderboard is asked first, so a run that is already recorded is never
 * queued again, even after Redis lost everything.
 */
export const DEFAULT_QUEUE_NAME = 'vlbench-runs';

/** Attempts per run and the backoff between them: a worker that died or could not reach the store gets the run again later. */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 4,
  backoff: { type: 'exponential', delay: 5_000 },
  // Kept, so that `sweep status` can count them and a second enqueue is a no-op; the last error stays readable.
  removeOnComplete: false,
  removeOnFail: false,
};

/** redis://[user:password@]host:port[/db] → the connection options BullMQ hands to its Redis client. */
export function redisConnection(url: string): ConnectionOptions & { host: string; port: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InputError(`expected a redis://HOST:PORT URL, got ${JSON.stringify(url)}`, { field: '--queue' });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new InputError(`expected a redis:// URL, got ${JSON.stringify(url)}`, { field: '--queue' });
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new InputError(`expected a Redis database number after the port, got ${JSON.stringify(db)}`, { field: '--queue' });
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db !== '' ? { db: Number(db) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    // BullMQ's workers need commands to wait through a Redis restart instead of failing after 20 retries.
    maxRetriesPerRequest: null,
  };
}

/** The Redis queue a sweep, `sweep status` or a worker needs: answers within the budget, or an InputError naming the URL and what went wrong. */
export async function checkQueueReachable(queueUrl: string, queueName = DEFAULT_QUEUE_NAME, budgetMs?: number): Promise<void> {
  // A malformed URL is refused here, by name, before any connection.
  const connection = redisConnection(queueUrl);
  const unreachable = (reason: string) => new InputError(`cannot reach the Redis queue: ${reason}`, { file: withoutPassword(queueUrl) });
  const queue = await withConnectRetries({
    attempt: async () => {
      // One connection attempt, no reconnecting: the retries are counted here, not by ioredis.
      const once = { ...connection, retryStrategy: () => null, connectTimeout: Math.min(budgetMs ?? CONNECT_BUDGET_MS, CONNECT_BUDGET_MS) } as ConnectionOptions;
      const probe = new Queue(queueName, { connection: once });
      probe.on('error', () => undefined);
      try {
        await probe.waitUntilReady();
        return probe;
      } catch (error) {
        await probe.close().catch(() => undefined);
        throw error;
      }
    },
    // A refused login stays refused; anything on the way to the server may pass.
    transient: (error) => !/NOAUTH|WRONGPASS|ERR AUTH|invalid password/i.test(String((error as Error)?.message)),
    timedOut: (seconds) => unreachable(`no answer in ${seconds} s`),
    discard: (probe) => probe.close().catch(() => undefined),
    budgetMs,
  }).catch((error: unknown) => {
    if (error instanceof InputError) throw error;
    const { code, message } = error as { code?: string; message?: string };
    throw unreachable(`${message ?? String(error)}${code && !String(message).includes(code) ? ` (${code})` : ''}`);
  });
  await queue.close().catch(() => undefined);
}

export function openSweepQueue(queueUrl: string, name = DEFAULT_QUEUE_NAME): Queue<SweepJobData> {
  return new Queue<SweepJobData>(name, { connection: redisConnection(queueUrl) });
}

export interface EnqueueResult {
  /** Runs added to the queue now. */
  enqueued: PlannedRun[];
  /** Runs already in the leaderboard: not queued again. */
  recorded: PlannedRun[];
  /** Runs whose job already exists (queued, running, done or failed): BullMQ kept the existing one. */
  alreadyQueued: PlannedRun[];
}

/**
 * Enqueues every planned run that has no result in the leaderboard. Running it again with the
 * same grid is harmless, and is how a sweep is reconciled after Redis lost its data: the runs
 * recorded are skipped, the others are queued again.
 */
export async function enqueueSweep(queue: Queue<SweepJobData>, runs: readonly PlannedRun[], db: string, runsDir?: string): Promise<EnqueueResult> {
  const store = await openLeaderboard(db, { create: true });
  const result: EnqueueResult = { enqueued: [], recorded: [], alreadyQueued: [] };
  try {
    for (const run of runs) {
      if ((await recordedRunIdsWithPrefix(store, recordIdPrefix(run.key))).length > 0) result.recorded.push(run);
    }
  } finally {
    await store.close();
  }
  const recorded = new Set(result.recorded.map((run) => run.key));
  for (const run of runs) {
    if (recorded.has(run.key)) continue;
    const existing = await queue.getJob(run.key);
    if (existing) {
      // A run that failed every attempt stays failed until asked: re-enqueueing retries it.
      if (await existing.isFailed()) {
        await existing.retry('failed');
        result.enqueued.push(run);
      } else {
        result.alreadyQueued.push(run);
      }
      continue;
    }
    await queue.add(run.label, { key: run.key, label: run.label, request: run.request, ...(runsDir !== undefined ? { runsDir } : {}) }, { ...JOB_OPTIONS, jobId: run.key });
    result.enqueued.push(run);
  }
  return result;
}

export interface SweepStatus {
  queued: number;
  running: number;
  done: number;
  failed: number;
  /** Failed runs, most recent first, with the error of their last attempt. */
  failures: { key: string; label: string; attempts: number; error: string }[];
}

export async function sweepStatus(queue: Queue<SweepJobData>, failuresShown = 5): Promise<SweepStatus> {
  const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized', 'paused', 'waiting-children', 'active', 'completed', 'failed');
  const failed = await queue.getFailed(0, failuresShown - 1);
  return {
    // Delayed jobs are runs waiting out their retry backoff: still to do.
    queued: (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0) + (counts.paused ?? 0) + (counts['waiting-children'] ?? 0),
    running: counts.active ?? 0,
    done: counts.completed ?? 0,
    failed: counts.failed ?? 0,
    failures: failed.map((job) => ({ key: String(job.id), label: job.data.label, attempts: job.attemptsMade, error: job.failedReason ?? '' })),
  };
}
