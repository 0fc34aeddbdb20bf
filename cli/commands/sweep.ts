import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { InputError } from '../../core/errors.ts';
import { checkSweepGrid, planSweep, readGridFile, setValues, type GridFile, type SweepGrid } from '../../harness/sweep/plan.ts';
import { checkQueueReachable, enqueueSweep, openSweepQueue, sweepStatus, DEFAULT_QUEUE_NAME, type SweepStatus } from '../../harness/sweep/queue.ts';
import { checkLeaderboardUsable } from '../../harness/preflight.ts';
import { BACKEND_CHOICES } from '../../models/backends/select.ts';
import { leaderboardDbOption } from '../db-option.ts';
import { parsePositiveInteger, parseSeed } from '../flags.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

/**
 * `vlbench sweep`: expand a grid into runs and enqueue one job per run on the Redis queue, then
 * return; `vlbench worker`s run them. `vlbench sweep status` counts queued / running / done /
 * failed jobs and shows the last errors; `--wait` follows until nothing is queued or running.
 */
interface SweepFlags {
  queue?: string;
  queueName: string;
  db: string;
  data?: string;
  grid?: string;
  tasks?: string;
  methods?: string;
  seeds?: string;
  models?: string;
  epochs?: string;
  set: string[];
  out?: string;
  backend?: string;
  maxTrain?: string;
  limit?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];
const list = (text: string) => text.split(',').map((item) => item.trim()).filter((item) => item !== '');

export function registerSweep(program: Command): void {
  const sweep = program
    .command('sweep')
    .description(COMMAND_SUMMARIES.sweep.description)
    .enablePositionalOptions()
    // Not requiredOption: commander checks a parent's mandatory options for its subcommands too (`sweep status`).
    .option('--queue <url>', 'the Redis queue, redis://HOST:PORT (required)')
    .option('--queue-name <name>', 'queue name (one Redis can hold several)', DEFAULT_QUEUE_NAME)
    .addOption(leaderboardDbOption('the leaderboard the workers record into (postgres://USER@HOST:PORT/DB when workers are on several machines); runs already in it are not enqueued'))
    .option('--data <dir>', 'dataset folder (a SynthScenes folder, or the task\'s official layout), at the same path on every worker')
    .option('--grid <file>', 'a JSON or YAML grid: tasks, methods, seeds, models, set ({key: [values]}), data, epochs, backend; flags given here replace its axes')
    .option('--tasks <list>', 'comma-separated tasks, e.g. vqa,vcr')
    .option('--methods <list>', 'comma-separated method SPECs, e.g. ft,ft+mmd')
    .option('--seeds <list>', 'comma-separated seeds (default 0)')
    .option('--models <list>', 'comma-separated model folders (default: the bundled CLIP)')
    .option('--epochs <n>', 'training epochs of every run')
    .option('--set <key=v1,v2>', 'a run setting and the values to sweep over (repeatable)', collect, [])
    .option('--out <dir>', 'run folders, in a directory every worker sees (a worker\'s own --out wins)')
    .addOption(new Option('--backend <name>', 'tfjs backend of every run').choices(BACKEND_CHOICES))
    .option('--max-train <n>', 'use at most N training examples per run (quick checks)')
    .option('--limit <n>', 'smoke runs: the first N examples of every split each run reads (see vlbench run --limit)')
    .option('--json', 'print the enqueued run keys as JSON')
    .action(async (flags: SweepFlags) => {
      if (flags.queue === undefined) throw new InputError('give the Redis queue the workers pull from, e.g. --queue redis://127.0.0.1:6379', { field: '--queue' });
      const file: GridFile = flags.grid ? await readGridFile(flags.grid) : {};
      const grid = gridFromFlags(flags, file);
      // Everything that can be refused is refused before the splits are read and before anything is enqueued.
      checkSweepGrid(grid);
      await checkQueueReachable(flags.queue, flags.queueName);
      await checkLeaderboardUsable(flags.db);
      const runs = await planSweep(grid);
      const queue = openSweepQueue(flags.queue, flags.queueName);
      try {
        const result = await enqueueSweep(queue, runs, flags.db, flags.out);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ runs: runs.map((r) => ({ key: r.key, label: r.label })), enqueued: result.enqueued.map((r) => r.key), recorded: result.recorded.map((r) => r.key), alreadyQueued: result.alreadyQueued.map((r) => r.key) }, null, 2)}\n`);
        } else {
          process.stdout.write(`sweep of ${runs.length} runs: ${result.enqueued.length} enqueued, ${result.alreadyQueued.length} already queued or running, ${result.recorded.length} already recorded\n`);
          for (const run of result.enqueued) process.stdout.write(`  ${run.key.slice(0, 12)}  ${run.label}\n`);
        }
      } finally {
        await queue.close();
      }
    });

  sweep
    .command('status')
    .description('jobs queued / running / done / failed on the queue, with the last errors; --wait follows (a progress bar on a terminal) until nothing is queued or running')
    .requiredOption('--queue <url>', 'the Redis queue, redis://HOST:PORT')
    .option('--queue-name <name>', 'queue name', DEFAULT_QUEUE_NAME)
    .option('--wait', 'return only when nothing is queued or running')
    .option('--poll <seconds>', 'with --wait: seconds between looks at the queue', '1')
    .option('--json', 'print the status as JSON')
    .action(async (flags: { queue: string; queueName: string; wait?: boolean; poll: string; json?: boolean }) => {
      const pollMs = parsePositiveInteger('--poll', flags.poll) * 1000;
      await checkQueueReachable(flags.queue, flags.queueName);
      const queue = openSweepQueue(flags.queue, flags.queueName);
      try {
        let status = await sweepStatus(queue);
        if (flags.wait) status = await waitUntilIdle(queue, status, pollMs);
        process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
        // A sweep with failed runs is not a success for a script waiting on it.
        if (flags.wait && status.failed > 0) process.exitCode = 1;
      } finally {
        await queue.close();
      }
    });
}

function gridFromFlags(flags: SweepFlags, file: GridFile): SweepGrid {
  const tasks = flags.tasks !== undefined ? list(flags.tasks) : file.tasks;
  const methods = flags.methods !== undefined ? list(flags.methods) : file.methods;
  const data = flags.data ?? file.data;
  if (!tasks?.length) throw new InputError('give the tasks to sweep (--tasks vqa,vcr, or tasks: in --grid)', { field: '--tasks' });
  if (!methods?.length) throw new InputError('give the methods to sweep (--methods ft,ft+mmd, or methods: in --grid)', { field: '--methods' });
  if (data === undefined) throw new InputError('give the dataset folder (--data DIR, or data: in --grid)', { field: '--data' });
  const seeds = flags.seeds !== undefined ? list(flags.seeds).map((seed) => parseSeed('--seeds', seed)) : file.seeds ?? [0];
  const sets: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(file.set ?? {})) sets[key] = setValues(value);
  const fromFlags: Record<string, string[]> = {};
  for (const item of flags.set) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InputError(`expected key=value or key=v1,v2, got ${JSON.stringify(item)}`, { field: '--set' });
    const key = item.slice(0, eq).trim();
    if (Object.hasOwn(fromFlags, key)) throw new InputError(`"${key}" is set twice (sweep several values as ${key}=v1,v2)`, { field: '--set' });
    fromFlags[key] = setValues(item.slice(eq + 1));
  }
  return {
    tasks,
    methods,
    seeds,
    models: flags.models !== undefined ? list(flags.models) : file.models ?? [undefined],
    sets: { ...sets, ...fromFlags },
    common: {
      dataDir: data,
      epochs: flags.epochs !== undefined ? parsePositiveInteger('--epochs', flags.epochs) : file.epochs,
      backend: (flags.backend ?? file.backend) as SweepGrid['common']['backend'],
      maxTrainExamples: flags.maxTrain !== undefined ? parsePositiveInteger('--max-train', flags.maxTrain) : file.maxTrainExamples,
      limit: flags.limit !== undefined ? parsePositiveInteger('--limit', flags.limit) : file.limit,
    },
  };
}

async function waitUntilIdle(queue: ReturnType<typeof openSweepQueue>, first: SweepStatus, pollMs: number): Promise<SweepStatus> {
  const bar =
    process.stderr.isTTY && !process.env.CI
      ? new cliProgress.SingleBar({ stream: process.stderr, format: 'sweep [{bar}] {value}/{total} finished | {running} running | {failed} failed', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
      : null;
  let status = first;
  const finished = (s: SweepStatus) => s.done + s.failed;
  const total = (s: SweepStatus) => s.queued + s.running + s.done + s.failed;
  bar?.start(total(status), finished(status), { running: status.running, failed: status.failed });
  while (status.queued + status.running > 0) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    status = await sweepStatus(queue);
    bar?.setTotal(total(status));
    bar?.update(finished(status), { running: status.running, failed: status.failed });
  }
  bar?.stop();
  return status;
}

function formatStatus(status: SweepStatus): string {
  const lines = [`queued ${status.queued}, running ${status.running}, done ${status.done}, failed ${status.failed}`];
  for (const failure of status.failures) lines.push(`  failed ${failure.key.slice(0, 12)} ${failure.label} after ${failure.attempts} attempts: ${failure.error.split('\n')[0]}`);
  return lines.join('\n') + '\n';
}
