import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { blasThreadsPerWorker } from '../models/backends/wasm-blas.ts';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { InputError } from '../core/errors.ts';
import type { RunHooks, RunOutcome, RunRequest } from './run.ts';

/**
 * Runs many `vlbench run`s at once, one per core, in child processes. The tfjs wasm backend
 * computes on one thread, so a comparison of 14 methods on a 2-core machine finishes in
 * about half the time when two runs train side by side. Processes rather than worker
 * threads: tfjs keeps one global engine per process, and tsx's loader is applied to
 * child processes but not to worker threads.
 *
 * Runs sharing one leaderboard database is safe (the store takes an IMMEDIATE transaction per
 * write); runs sharing one feature cache are too (entries are written to a temporary file
 * and renamed), but two runs that miss the cache at once both encode, so `warmFirst` runs the
 * first job of each data folder before that folder's other jobs (it fills the cache for them).
 * Jobs on different folders share no cache entries, so their first jobs start side by side:
 * the demo's VQA folder and its VCR folder warm at once instead of one core waiting.
 */
export interface PoolJob {
  request: RunRequest;
  /** resumeDir: a sweep names the run folder by its run key and resumes it wherever the job lands. */
  hooks: Pick<RunHooks, 'db' | 'runsDir' | 'cacheDir' | 'resumeDir'>;
}

/** What a run reports back across the process boundary (the parts comparisons need). */
export interface RunSummary {
  runDir: string;
  name: string;
  backend: string;
  backendLine?: string;
  splits: { split: string; primary: string; metrics: Record<string, number>; recordId: string | null }[];
  trainingSeconds: number | null;
  /** The training step the run resumed from (a re-delivered sweep job), null when it started fresh. */
  resumedFromStep: number | null;
  timings: Record<string, number>;
}

export function summarizeOutcome(outcome: RunOutcome): RunSummary {
  return {
    runDir: outcome.runDir,
    name: outcome.name,
    backend: outcome.backend,
    ...(outcome.backendLine ? { backendLine: outcome.backendLine } : {}),
    splits: outcome.splits.map((s) => ({ split: s.split, primary: s.report.primary, metrics: s.report.metrics, recordId: s.record?.id ?? null })),
    trainingSeconds: outcome.training?.seconds ?? null,
    resumedFromStep: outcome.training?.resumedFromStep ?? null,
    timings: outcome.timings,
  };
}

/** Messages between the pool and a worker (harness/run-worker.ts). */
export type WorkerReply = { ok: true; summary: RunSummary } | { ok: false; message: string; inputError: boolean; errorName: string };

export interface PoolOptions {
  /** Runs at once; default: the machine's cores. */
  concurrency?: number;
  /** Run the first job of each data folder before the folder's other jobs start (it fills the shared feature cache). */
  warmFirst?: boolean;
  /** Called as each job finishes, in finishing order. */
  onFinish?: (index: number, summary: RunSummary) => void;
  /** Called as each job starts. */
  onStart?: (index: number) => void;
}

export function defaultConcurrency(): number {
  return Math.max(1, availableParallelism());
}

// Compiled (dist/), this module is a .js file and so is its worker, which node runs as it is;
// from the sources the worker is TypeScript and needs tsx's loader.
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER_FILE = fileURLToPath(new URL(FROM_SOURCES ? './run-worker.ts' : './run-worker.js', import.meta.url));
const WORKER_EXEC_ARGV = FROM_SOURCES ? ['--import', import.meta.resolve('tsx')] : [];
/** Lines of a worker's stderr kept for the error message when it dies. */
const STDERR_LINES_KEPT = 30;

/**
 * One child process that runs jobs one at a time. The run pool keeps a few; a sweep worker
 * starts one per job, so the queue's lock is renewed by a parent whose event loop is never
 * blocked by tfjs.
 */
export class RunWorker {
  private readonly child: ChildProcess;
  private stderrTail: string[] = [];

  /** blasThreads: the BLAS threads this worker may use (cores / workers), unless VLBENCH_BLAS_THREADS says otherwise. */
  constructor(blasThreads?: number) {
    const env = blasThreads && !process.env.VLBENCH_BLAS_THREADS ? { ...process.env, VLBENCH_BLAS_THREADS: String(blasThreads) } : process.env;
    // tsx by absolute URL: `--import tsx` would resolve from the user's working directory.
    this.child = fork(WORKER_FILE, [], { execArgv: WORKER_EXEC_ARGV, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced', env });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderrTail.push(...chunk.split('\n').filter(Boolean));
      if (this.stderrTail.length > STDERR_LINES_KEPT) this.stderrTail = this.stderrTail.slice(-STDERR_LINES_KEPT);
    });
  }

  run(job: PoolJob): Promise<RunSummary> {
    this.stderrTail = [];
    return new Promise((resolve, reject) => {
      const onMessage = (reply: WorkerReply) => {
        cleanup();
        if (reply.ok) resolve(reply.summary);
        else reject(failure(reply));
      };
      const onExit = (code: number | null, signal: string | null) => {
        cleanup();
        reject(new Error(`the run of ${job.request.task} ${job.request.method} (seed ${job.request.seed}) died (${signal ?? `exit code ${code}`}):\n${this.stderrTail.join('\n')}`));
      };
      const cleanup = () => {
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
      };
      this.child.on('message', onMessage);
      this.child.on('exit', onExit);
      this.child.send(job);
    });
  }

  /** False once the child has exited (killed, crashed): it takes no more jobs. */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  stop(): void {
    if (this.alive) this.child.kill();
  }
}

/** The child's error, rebuilt on this side: an InputError stays one, and keeps its name (StoreUnreachableError, …). */
function failure(reply: Extract<WorkerReply, { ok: false }>): Error {
  const error = reply.inputError ? new InputError(reply.message) : new Error(reply.message);
  error.name = reply.errorName;
  return error;
}

/** Runs every job, at most `concurrency` at once; resolves to the summaries in job order. A failed job fails the pool (after the running ones are stopped). */
export async function runPool(jobs: readonly PoolJob[], options: PoolOptions = {}): Promise<RunSummary[]> {
  const concurrency = Math.max(1, options.concurrency ?? defaultConcurrency());
  const idle: RunWorker[] = [];
  const all: RunWorker[] = [];
  const summaries: RunSummary[] = new Array(jobs.length);
  const startWorker = () => {
    // Workers side by side share the cores: BLAS threads per worker keep the machine from oversubscribing.
    const worker = new RunWorker(blasThreadsPerWorker(Math.min(concurrency, jobs.length)));
    all.push(worker);
    return worker;
  };
  const runJob = async (index: number) => {
    const worker = idle.pop() ?? startWorker();
    options.onStart?.(index);
    const summary = await worker.run(jobs[index]);
    idle.push(worker);
    summaries[index] = summary;
    options.onFinish?.(index, summary);
  };
  try {
    const limit = pLimit(concurrency);
    if (!options.warmFirst) {
      await Promise.all(jobs.map((_, index) => limit(() => runJob(index))));
      return summaries;
    }
    const byFolder = new Map<string, number[]>();
    jobs.forEach((job, index) => byFolder.set(job.request.dataDir, [...(byFolder.get(job.request.dataDir) ?? []), index]));
    // Every folder's first job is queued before any other job, so the warm-ups start first.
    await Promise.all(
      [...byFolder.values()].map(async ([warm, ...rest]) => {
        await limit(() => runJob(warm));
        await Promise.all(rest.map((index) => limit(() => runJob(index))));
      }),
    );
    return summaries;
  } finally {
    for (const worker of all) worker.stop();
  }
}
