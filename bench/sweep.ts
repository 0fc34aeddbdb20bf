// Sweep throughput on this machine: the same tiny runs directly (the run pool, as `vlbench demo`
// runs them) and through the queue (Redis + `vlbench worker` logic + PostgreSQL), with 1 and 2
// workers; the queue's overhead per job is (queue time − direct time) / runs at the same parallelism.
// Starts its own PostgreSQL and Redis (test/scaleout/servers.ts), in temporary folders.
//   npx tsx bench/sweep.ts [--runs 6] [--epochs 1]
// Prints one JSON line of measurements.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseBenchArguments } from './command-line.ts';
import { runPool } from '../harness/run-pool.ts';
import { planSweep } from '../harness/sweep/plan.ts';
import { enqueueSweep, openSweepQueue, sweepStatus } from '../harness/sweep/queue.ts';
import { startSweepWorker } from '../harness/sweep/worker.ts';
import { listRuns, openLeaderboard } from '../leaderboard/store.ts';
import { generateSynthScenes } from '../tasks/synth/index.ts';
import { missingServers, startPostgres, startRedis } from '../test/scaleout/servers.ts';

const { values } = parseBenchArguments('npx tsx bench/sweep.ts [--runs 6] [--epochs 1]', { runs: { type: 'string', default: '6' }, epochs: { type: 'string', default: '1' } });
const runCount = Number(values.runs);
const missing = missingServers();
if (missing) {
  console.error(`bench/sweep: ${missing}`);
  process.exit(2);
}
const folder = await mkdtemp(join(os.tmpdir(), 'vlbench-bench-sweep-'));
const data = join(folder, 'synth');
const model = new URL('../test/fixtures/clip-tiny', import.meta.url).pathname;
const [postgres, redis] = await Promise.all([startPostgres(), startRedis(), generateSynthScenes({ outDir: data, images: 16, seed: 5, size: 32 })]);
const grid = { tasks: ['vqa'], methods: ['ft'], seeds: Array.from({ length: runCount }, (_, i) => i), models: [model], sets: {}, common: { dataDir: data, epochs: Number(values.epochs), backend: 'wasm' as const } };

async function direct(label: string, concurrency: number): Promise<number> {
  const db = await postgres.createDatabase(`direct_${label}`);
  const runs = await planSweep(grid);
  const start = performance.now();
  await runPool(runs.map((run) => ({ request: run.request, hooks: { db, runsDir: join(folder, `direct-${label}`) } })), { concurrency });
  return (performance.now() - start) / 1000;
}

async function queued(label: string, workers: number): Promise<number> {
  const db = await postgres.createDatabase(`queued_${label}`);
  const queueName = `bench-${label}`;
  const runsDir = join(folder, `queued-${label}`);
  const queue = openSweepQueue(redis.url, queueName);
  const started = Array.from({ length: workers }, () => startSweepWorker({ queueUrl: redis.url, queueName, db, runsDir, log: () => undefined }));
  await Promise.all(started.map((worker) => worker.waitUntilReady()));
  const start = performance.now();
  await enqueueSweep(queue, await planSweep(grid), db, runsDir);
  for (;;) {
    const status = await sweepStatus(queue);
    if (status.failed > 0) throw new Error(`a run failed: ${status.failures[0]?.error}`);
    if (status.done === runCount) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const seconds = (performance.now() - start) / 1000;
  await Promise.all(started.map((worker) => worker.close()));
  await queue.close();
  const store = await openLeaderboard(db, { create: false });
  const recorded = (await listRuns(store)).length;
  await store.close();
  if (recorded !== 2 * runCount) throw new Error(`expected ${2 * runCount} records, found ${recorded}`);
  return seconds;
}

try {
  // Each mode has its own database, queue and run folders (so its own feature cache to fill). One
  // untimed pass first: the first processes of a session pay for cold file caches and tfjs's wasm compile.
  await direct('warmup', 1);
  const direct1 = await direct('one', 1);
  const queued1 = await queued('one', 1);
  const direct2 = await direct('two', 2);
  const queued2 = await queued('two', 2);
  console.log(
    JSON.stringify({
      machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model.trim()}`,
      runs: runCount,
      epochs: Number(values.epochs),
      directSeconds: { oneProcess: round(direct1), twoProcesses: round(direct2) },
      queuedSeconds: { oneWorker: round(queued1), twoWorkers: round(queued2) },
      runsPerMinute: { direct1: round((60 * runCount) / direct1), queued1: round((60 * runCount) / queued1), direct2: round((60 * runCount) / direct2), queued2: round((60 * runCount) / queued2) },
      queueOverheadPerJobSeconds: { oneWorker: round((queued1 - direct1) / runCount), twoWorkers: round((queued2 - direct2) / runCount) },
    }),
  );
} finally {
  await Promise.all([postgres.stop(), redis.stop()]);
  await rm(folder, { recursive: true, force: true });
}

function round(value: number): number {
  return Number(value.toFixed(2));
}
