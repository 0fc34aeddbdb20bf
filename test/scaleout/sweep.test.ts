import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { redisConnection } from '../../harness/sweep/queue.ts';
import type { SweepJobResult } from '../../harness/sweep/worker.ts';
import { listRuns, openLeaderboard } from '../../leaderboard/store.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { missingServers, startPostgres, startRedis, type PostgresServer, type RedisServer } from './servers.ts';

// Sweeps on a real Redis, recorded into a real PostgreSQL, by real `vlbench worker` processes.
const missing = missingServers();
if (missing) console.log(`test/scaleout/sweep: skipped, ${missing}`);
const serverTest = missing ? test.skip : test.serial;

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtureModel = join(repositoryRoot, 'test', 'fixtures', 'clip-tiny');
let postgres: PostgresServer | undefined;
let redis: RedisServer | undefined;
let folder = '';
let data = '';
const workers: ChildProcess[] = [];

test.before(async () => {
  if (missing) return;
  // Run keys include the git commit; others commit to this checkout while the tests run.
  process.env.VLBENCH_CODE_VERSION = 'sweep-test';
  folder = await mkdtemp(join(tmpdir(), 'vlbench-sweep-'));
  data = join(folder, 'synth');
  [postgres, redis] = await Promise.all([startPostgres(), startRedis(), generateSynthScenes({ outDir: data, images: 16, seed: 5, size: 32 })]);
});
test.after.always(async () => {
  for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
  await Promise.all([postgres?.stop(), redis?.stop()]);
  if (folder) await rm(folder, { recursive: true, force: true });
});

/** A `vlbench worker` process, as a user starts it. */
function startWorker(queueName: string, db: string, runsDir: string, lockSeconds = 30): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'worker', '--queue', redis!.url, '--queue-name', queueName, '--db', db, '--out', runsDir, '--lock-seconds', String(lockSeconds)], {
    cwd: repositoryRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (chunk) => (log += chunk));
  (child as ChildProcess & { log: () => string }).log = () => log;
  workers.push(child);
  return child;
}

async function stopWorker(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

function sweepArgs(queueName: string, db: string, runsDir: string, extra: string[]): string[] {
  return ['sweep', '--queue', redis!.url, '--queue-name', queueName, '--db', db, '--data', data, '--models', fixtureModel, '--backend', 'wasm', '--out', runsDir, '--json', ...extra];
}

async function sweep(queueName: string, db: string, runsDir: string, extra: string[]) {
  const result = await vlbench(sweepArgs(queueName, db, runsDir, extra));
  if (result.code !== 0) throw new Error(`vlbench sweep exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as { runs: { key: string; label: string }[]; enqueued: string[]; recorded: string[]; alreadyQueued: string[] };
}

async function waitForSweep(queueName: string, timeoutMs = 150_000) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the sweep was not done after ${timeoutMs / 1000} s; worker logs:\n${workers.map((w) => (w as ChildProcess & { log: () => string }).log()).join('\n---\n')}`)), timeoutMs);
  });
  const result = await Promise.race([vlbench(['sweep', 'status', '--queue', redis!.url, '--queue-name', queueName, '--wait', '--poll', '1', '--json']), timeout]).finally(() => clearTimeout(timer));
  return { code: result.code, status: JSON.parse(result.stdout) as { queued: number; running: number; done: number; failed: number; failures: { error: string }[] } };
}

async function jobResults(queueName: string): Promise<SweepJobResult[]> {
  const queue = new Queue(queueName, { connection: redisConnection(redis!.url) });
  try {
    return (await queue.getCompleted()).map((job) => job.returnvalue as SweepJobResult);
  } finally {
    await queue.close();
  }
}

serverTest('2 workers × a 6-run sweep: 6 runs recorded once each; enqueueing again, even after Redis lost everything, adds nothing', async (t) => {
  const db = await postgres!.createDatabase('sweep_six');
  const runsDir = join(folder, 'runs-six');
  const grid = ['--tasks', 'vqa', '--methods', 'ft,ft+mmd', '--seeds', '0,1,2', '--epochs', '1'];
  const first = await sweep('six', db, runsDir, grid);
  t.is(first.runs.length, 6);
  t.is(new Set(first.runs.map((r) => r.key)).size, 6);
  t.is(first.enqueued.length, 6);
  const twice = await sweep('six', db, runsDir, grid);
  t.deepEqual(twice.runs, first.runs, 'the run keys are deterministic');
  t.deepEqual([twice.enqueued.length, twice.alreadyQueued.length], [0, 6]);

  const pair = [startWorker('six', db, runsDir), startWorker('six', db, runsDir)];
  const { code, status } = await waitForSweep('six');
  t.is(code, 0, JSON.stringify(status.failures));
  t.like(status, { queued: 0, running: 0, done: 6, failed: 0 });

  const store = await openLeaderboard(db, { create: false });
  const runs = await listRuns(store);
  await store.close();
  t.is(runs.length, 12, 'six runs, two evaluation splits each');
  t.deepEqual(runs.map((r) => r.record.id).sort(), first.runs.flatMap((r) => [`${r.key}-test_source`, `${r.key}-test_target`]).sort());
  const results = await jobResults('six');
  t.is(new Set(results.map((r) => r.worker)).size, 2, 'both workers ran runs');
  t.true(results.every((r) => !r.alreadyRecorded && r.recordIds.length === 2));
  for (const run of first.runs) t.true(existsSync(join(runsDir, run.key)), 'run folders are named by the run key');

  const third = await sweep('six', db, runsDir, grid);
  t.deepEqual([third.enqueued.length, third.recorded.length], [0, 6]);
  // Redis without persistence, restarted: the queue is empty. The leaderboard still knows what is done,
  // so reconciling (the same sweep again) queues only the runs without a result: the two new seeds.
  await redis!.restart();
  const reconciled = await sweep('six', db, runsDir, ['--tasks', 'vqa', '--methods', 'ft,ft+mmd', '--seeds', '0,1,2,3', '--epochs', '1']);
  t.deepEqual([reconciled.enqueued.length, reconciled.recorded.length], [2, 6]);
  const after = await waitForSweep('six');
  t.like(after.status, { queued: 0, running: 0, done: 2, failed: 0 }, 'the workers reconnected to the restarted Redis');
  const final = await openLeaderboard(db, { create: false });
  t.is((await listRuns(final)).length, 16);
  await final.close();
  await Promise.all(pair.map((worker) => stopWorker(worker)));
});

serverTest('a worker killed with SIGKILL mid-training: the run finishes on the other worker from its checkpoint, recorded once', async (t) => {
  const db = await postgres!.createDatabase('sweep_kill');
  const runsDir = join(folder, 'runs-kill');
  // ~90 training steps, a checkpoint every 5: long enough to kill in the middle.
  const planned = await sweep('kill', db, runsDir, ['--tasks', 'vqa', '--methods', 'ft', '--seeds', '0', '--epochs', '6', '--set', 'batch=4', '--set', 'checkpoint_every=5']);
  const [{ key }] = planned.runs;
  const doomed = startWorker('kill', db, runsDir, 3);
  const checkpoint = join(runsDir, `${key}.partial`, 'checkpoint', 'checkpoint.json');
  const deadline = Date.now() + 90_000;
  let step = 0;
  while (step < 10) {
    if (Date.now() > deadline) throw new Error(`no checkpoint past step 10 appeared; worker log:\n${(doomed as ChildProcess & { log: () => string }).log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (existsSync(checkpoint)) step = JSON.parse(readFileSync(checkpoint, 'utf8')).step;
  }
  await stopWorker(doomed, 'SIGKILL');
  const rescuer = startWorker('kill', db, runsDir, 3);
  const { status } = await waitForSweep('kill');
  t.like(status, { queued: 0, running: 0, done: 1, failed: 0 });
  const [result] = await jobResults('kill');
  t.is(result.worker.split(':')[1], String(rescuer.pid), 'the other worker finished it');
  t.true((result.resumedFromStep ?? 0) >= 10, `resumed from step ${result.resumedFromStep}`);
  t.true(result.summary!.trainingSeconds !== null);
  const store = await openLeaderboard(db, { create: false });
  t.deepEqual((await listRuns(store)).map((r) => r.record.id).sort(), [`${key}-test_source`, `${key}-test_target`]);
  await store.close();
  t.false(existsSync(join(runsDir, `${key}.partial`)));
  await stopWorker(rescuer);
});

/** A TCP relay on a loopback port to the server on `port`; closed, its port refuses connections as a server that went away does. */
async function loopbackRelay(port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

serverTest('a worker whose store goes away fails the attempt before any work, and the run is retried and recorded later', async (t) => {
  const db = await postgres!.createDatabase('sweep_unreachable');
  const runsDir = join(folder, 'runs-unreachable');
  // A worker refuses to start without its store (test/scaleout/fail-fast.test.ts): it starts with
  // one, reached through a relay that is closed once the worker waits for runs.
  const relay = await loopbackRelay(postgres!.port);
  const cutOff = startWorker('unreachable', `postgres://vlbench@127.0.0.1:${relay.port}/sweep_unreachable`, runsDir);
  const started = Date.now();
  while (!(cutOff as ChildProcess & { log: () => string }).log().includes('waiting for runs')) {
    if (cutOff.exitCode !== null || Date.now() - started > 60_000) throw new Error(`the worker did not start: ${(cutOff as ChildProcess & { log: () => string }).log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await relay.close();
  const planned = await sweep('unreachable', db, runsDir, ['--tasks', 'vqa', '--methods', 'ft', '--seeds', '5', '--epochs', '1']);
  const [{ key }] = planned.runs;
  const queue = new Queue('unreachable', { connection: redisConnection(redis!.url) });
  try {
    const deadline = Date.now() + 60_000;
    let job = await queue.getJob(key);
    while (!job?.failedReason) {
      if (Date.now() > deadline) throw new Error('the attempt never failed');
      await new Promise((resolve) => setTimeout(resolve, 200));
      job = await queue.getJob(key);
    }
    t.regex(job.failedReason, /cannot reach the leaderboard database/);
    t.is(await job.getState(), 'delayed', 'retried after a backoff, not given up');
    t.false(existsSync(join(runsDir, `${key}.partial`)), 'no work was started');
    await stopWorker(cutOff);
    const healthy = startWorker('unreachable', db, runsDir);
    const { status } = await waitForSweep('unreachable');
    t.like(status, { done: 1, failed: 0 });
    await stopWorker(healthy);
  } finally {
    await queue.close();
  }
  const store = await openLeaderboard(db, { create: false });
  t.is((await listRuns(store)).length, 2);
  await store.close();
});
