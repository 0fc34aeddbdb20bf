import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { spawn } from 'node:child_process';
import { checkQueueReachable, redisConnection } from '../../harness/sweep/queue.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { freePort, missingServers, startRedis, type RedisServer } from './servers.ts';

// Commands that need Redis or PostgreSQL connect before any work and say in one line, within
// seconds, which server did not answer; a sweep whose grid holds a run `vlbench run` would refuse
// enqueues nothing (issue 30). An unreachable server is a closed loopback port. Serial: the
// in-process CLI captures the process's stdout and stderr.

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
const missing = missingServers();
if (missing) console.log(`test/scaleout/fail-fast: tests with a live Redis skipped, ${missing}`);
const redisTest = missing ? test.skip : test.serial;
let folder = '';
let data = '';
let redis: RedisServer | undefined;

test.before(async () => {
  folder = await mkdtemp(join(tmpdir(), 'vlbench-fail-fast-'));
  data = join(folder, 'synth');
  // Real data and a real model: without the checks, these commands would go on to plan and enqueue.
  await Promise.all([generateSynthScenes({ outDir: data, images: 16, seed: 5, size: 32 }), missing ? undefined : startRedis().then((server) => (redis = server))]);
});
test.after.always(async () => {
  await redis?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
});

/** The command's outcome, or a failure after `guardSeconds` (a command that hangs, as these used to). */
async function within(args: string[], guardSeconds = 20): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`vlbench ${args.slice(0, 2).join(' ')} still running after ${guardSeconds} s`)), guardSeconds * 1000)));
  const result = await Promise.race([vlbench(args), guard]).finally(() => clearTimeout(timer));
  return { ...result, seconds: (performance.now() - started) / 1000 };
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const sweepArgs = (queue: string, queueName: string, db: string, ...extra: string[]) => [
  'sweep', '--queue', queue, '--queue-name', queueName, '--db', db, '--data', data, '--models', fixtureModel, '--tasks', 'vqa', '--backend', 'wasm', '--epochs', '1', '--json', ...extra,
];

for (const command of ['sweep', 'sweep status', 'worker'] as const) {
  test.serial(`${command} with nothing listening on --queue exits 2 within 10 s, naming the URL and the error (it used to hang)`, async (t) => {
    const queue = `redis://127.0.0.1:${await freePort()}`;
    const db = join(folder, `${command.replace(' ', '-')}.db`);
    const args =
      command === 'sweep' ? sweepArgs(queue, 'unreachable', db, '--methods', 'ft') : command === 'sweep status' ? ['sweep', 'status', '--queue', queue] : ['worker', '--queue', queue, '--db', db, '--out', join(folder, 'worker-runs')];
    const result = await within(args);
    t.is(result.code, 2, result.stderr);
    t.regex(result.stderr, new RegExp(`^vlbench: error: ${escaped(queue)}: cannot reach the Redis queue: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+\\n$`));
    t.true(result.seconds < 10, `${result.seconds.toFixed(1)} s`);
    t.is(result.stdout, '');
    t.false(existsSync(db), 'nothing written');
    t.false(existsSync(join(folder, 'worker-runs')));
  });
}

redisTest('a worker whose --db has nothing listening exits 2 naming the database, before it takes any run', async (t) => {
  const url = `postgres://vlbench@127.0.0.1:${await freePort()}/gone`;
  const result = await within(['worker', '--queue', redis!.url, '--queue-name', 'worker-no-store', '--db', url, '--out', join(folder, 'worker-no-store')]);
  t.is(result.code, 2, result.stderr);
  t.regex(result.stderr, new RegExp(`^vlbench: error: ${escaped(url)}: cannot reach the leaderboard database: .*ECONNREFUSED.*\\n$`));
  t.true(result.seconds < 10, `${result.seconds.toFixed(1)} s`);
});

redisTest('a sweep whose grid holds a run that would be refused (ft+xyz, lr=abc, a VCR loss setting on VQA) enqueues nothing and names the run', async (t) => {
  const db = join(folder, 'grid.db');
  const cases: { name: string; extra: string[]; message: RegExp }[] = [
    { name: 'unknown objective', extra: ['--methods', 'ft,ft+xyz'], message: /the run vqa ft\+xyz would be refused: field "--method": unknown objective "xyz" in method "ft\+xyz"/ },
    { name: 'a value that is not a number', extra: ['--methods', 'ft', '--set', 'lr=0.001,abc'], message: /the run vqa ft lr=abc would be refused: field "--set lr": expected a number > 0, got "abc"/ },
    { name: 'a setting of a loss the task does not train', extra: ['--methods', 'ft', '--set', 'mc.labelSmoothing=0.1'], message: /the run vqa ft mc\.labelSmoothing=0\.1 would be refused: .*vqa trains with the bce loss/ },
  ];
  for (const { name, extra, message } of cases) {
    const queueName = `refused-${name.replace(/\W+/g, '-')}`;
    const result = await within(sweepArgs(redis!.url, queueName, db, ...extra));
    t.is(result.code, 2, `${name}: ${result.stderr}`);
    t.regex(result.stderr, /^vlbench: error: nothing enqueued: /, name);
    t.regex(result.stderr, message, name);
    t.is(result.stderr.split('\n').filter((line) => line !== '').length, 1, name);
    const queue = new Queue(queueName, { connection: redisConnection(redis!.url) });
    try {
      const counts = await queue.getJobCounts();
      t.deepEqual(Object.values(counts).reduce((sum, n) => sum + n, 0), 0, `${name}: no job enqueued (${JSON.stringify(counts)})`);
    } finally {
      await queue.close();
    }
  }
  t.false(existsSync(db), 'the leaderboard was not created either');
});

/** Resolves once a BullMQ worker is connected to `queueName` on `url` (or rejects after `seconds`). */
async function workerConnected(url: string, queueName: string, seconds = 30): Promise<void> {
  const queue = new Queue(queueName, { connection: redisConnection(url) });
  try {
    const deadline = Date.now() + seconds * 1000;
    while ((await queue.getWorkers()).length === 0) {
      if (Date.now() > deadline) throw new Error(`no worker on ${queueName} after ${seconds} s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await queue.close();
  }
}

redisTest('a worker that loses Redis says so, reconnects when it is back, and stops with exit 2 when it stays away past --queue-lost-seconds', async (t) => {
  const server = await startRedis();
  try {
    const worker = within(['worker', '--queue', server.url, '--queue-name', 'lost', '--db', join(folder, 'lost.db'), '--out', join(folder, 'lost-runs'), '--queue-lost-seconds', '3'], 120);
    await workerConnected(server.url, 'lost');
    // Away for a moment (a restart): the worker stays, and is connected again.
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await server.restart();
    await workerConnected(server.url, 'lost');
    // Away for good.
    await server.stop();
    const stopped = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the worker still runs 20 s after Redis went away')), 20_000)));
    const result = await Promise.race([worker, guard]).finally(() => clearTimeout(timer));
    const seconds = (performance.now() - stopped) / 1000;
    t.is(result.code, 2, result.stderr);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    const url = escaped(server.url);
    // Said once each time, not at every reconnection attempt.
    t.is(lines.filter((line) => new RegExp(`^queue: lost ${url}/? \\((the connection closed|connect ECONNREFUSED [^)]*)\\); reconnecting, for up to 3 s$`).test(line)).length, 2, result.stderr);
    t.true(lines.filter((line) => line.includes('ECONNREFUSED')).length <= 3, result.stderr);
    t.true(lines.some((line) => new RegExp(`^queue: ${url}/? is back after \\d+\\.\\d s$`).test(line)), result.stderr);
    t.regex(lines.at(-1)!, new RegExp(`^vlbench: error: ${url}/?: the Redis queue went away and did not come back in 3 s \\(.*ECONNREFUSED.*\\); the worker stopped$`));
    t.true(seconds < 12, `stopped ${seconds.toFixed(1)} s after Redis went away`);
  } finally {
    await server.stop();
  }
});

redisTest('a Redis that starts listening a second after the command is found within the retries', async (t) => {
  const port = await freePort();
  const started = performance.now();
  const checked = checkQueueReachable(`redis://127.0.0.1:${port}`);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    await t.notThrowsAsync(checked);
    t.true((performance.now() - started) / 1000 < 5);
  } finally {
    server.kill('SIGKILL');
  }
});
