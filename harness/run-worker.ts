// A child process of the run pool (harness/run-pool.ts): takes one run at a time over IPC,
// executes it, replies with its summary, and waits for the next until the pool stops it.
import { InputError } from '../core/errors.ts';
import { executeRun } from './run.ts';
import { summarizeOutcome, type PoolJob, type WorkerReply } from './run-pool.ts';

if (!process.send) {
  process.stderr.write('harness/run-worker.ts is started by the run pool, not by hand\n');
  process.exit(2);
}

// The pool is gone (Ctrl-C, a crash): stop now. A run cut short leaves only its `.partial` folder.
process.on('disconnect', () => process.exit(1));

process.on('message', async (job: PoolJob) => {
  let reply: WorkerReply;
  try {
    const outcome = await executeRun(job.request, { ...job.hooks, log: (line) => process.stderr.write(`${line}\n`) });
    reply = { ok: true, summary: summarizeOutcome(outcome) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    reply = { ok: false, message, inputError: error instanceof InputError, errorName: error instanceof Error ? error.name : 'Error' };
  }
  process.send!(reply);
});
