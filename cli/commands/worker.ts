import { Command } from 'commander';
import { QUEUE_LOST_LIMIT_MS, startSweepWorker } from '../../harness/sweep/worker.ts';
import { InputError } from '../../core/errors.ts';
import { withoutPassword } from '../../leaderboard/postgres-store.ts';
import { checkQueueReachable, DEFAULT_QUEUE_NAME } from '../../harness/sweep/queue.ts';
import { checkLeaderboardUsable, checkWritableFolder } from '../../harness/preflight.ts';
import { leaderboardDbOption } from '../db-option.ts';
import { parsePositiveInteger } from '../flags.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

/**
 * `vlbench worker`: pull sweep runs from the Redis queue until stopped (Ctrl-C or SIGTERM lets
 * the running jobs finish; a second signal stops at once, and the runs go back to the queue when
 * their locks expire). Start any number, on any machine that sees the run folders.
 */
export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(COMMAND_SUMMARIES.worker.description)
    .requiredOption('--queue <url>', 'the Redis queue, redis://HOST:PORT')
    .option('--queue-name <name>', 'queue name', DEFAULT_QUEUE_NAME)
    .addOption(leaderboardDbOption('the shared leaderboard: postgres://USER@HOST:PORT/DB (a SQLite path works for workers on one machine)'))
    .option('--out <dir>', 'run folders, in a directory every worker sees (default: the sweep\'s --out, then runs/)')
    .option('--cache <dir>', 'feature cache folder (default: <run folders>/.cache)')
    .option('--concurrency <n>', 'runs at once on this machine (one child process each)', '1')
    .option('--lock-seconds <n>', 'job lock lifetime: how long a killed worker\'s run waits before another worker takes it', '30')
    .option('--queue-lost-seconds <n>', 'how long to keep reconnecting to a Redis queue that went away before stopping (exit 2)', String(QUEUE_LOST_LIMIT_MS / 1000))
    .action(async (flags: { queue: string; queueName: string; db: string; out?: string; cache?: string; concurrency: string; lockSeconds: string; queueLostSeconds: string }) => {
      const concurrency = parsePositiveInteger('--concurrency', flags.concurrency);
      const lockDurationMs = parsePositiveInteger('--lock-seconds', flags.lockSeconds) * 1000;
      const queueLostLimitMs = parsePositiveInteger('--queue-lost-seconds', flags.queueLostSeconds) * 1000;
      // A worker that cannot reach its queue or its leaderboard says so and stops, instead of waiting for runs it could never take or record.
      await checkQueueReachable(flags.queue, flags.queueName);
      await checkLeaderboardUsable(flags.db);
      if (flags.out !== undefined) await checkWritableFolder(flags.out, '--out');
      let queueLost: ((error: Error) => void) | undefined;
      const worker = startSweepWorker({
        queueUrl: flags.queue,
        queueName: flags.queueName,
        db: flags.db,
        runsDir: flags.out,
        cacheDir: flags.cache,
        concurrency,
        lockDurationMs,
        queueLostLimitMs,
        onQueueLost: (error) => queueLost?.(error),
      });
      await worker.waitUntilReady();
      process.stderr.write(`worker ${process.pid}: waiting for runs on ${flags.queue} (${flags.queueName})\n`);
      await new Promise<void>((resolve, reject) => {
        queueLost = (error) => {
          // Closed without waiting for Redis (which is gone): the connections stop reconnecting and the process can end.
          const closing = worker.close(true).catch(() => undefined);
          const bounded = new Promise((done) => setTimeout(done, 5_000).unref());
          void Promise.race([closing, bounded]).then(() =>
            reject(new InputError(`the Redis queue went away and did not come back in ${queueLostLimitMs / 1000} s (${error.message}); the worker stopped`, { file: withoutPassword(flags.queue) })),
          );
        };
        let stopping = false;
        const stop = () => {
          if (stopping) process.exit(130);
          stopping = true;
          process.stderr.write('worker: finishing the running jobs (signal again to stop now)\n');
          void worker.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        const forget = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        };
        worker.once('closed', forget);
      });
    });
}
