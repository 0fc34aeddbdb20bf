import test from 'ava';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { runPool, summarizeOutcome } from '../../harness/run-pool.ts';
import { listRuns, openLeaderboard } from '../../leaderboard/store.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let data = '';
let otherData = '';

test.before(async () => {
  const folder = await mkdtemp(join(tmpdir(), 'vlbench-pool-'));
  data = join(folder, 'synth');
  otherData = join(folder, 'synth-other');
  await Promise.all([generateSynthScenes({ outDir: data, images: 16, seed: 5, size: 32 }), generateSynthScenes({ outDir: otherData, images: 16, seed: 6, size: 32 })]);
});

function request(method: string, seed: number, dataDir = data): RunRequest {
  return { task: 'vqa', dataDir, modelDir: fixtureModel, method, sets: {}, seed, epochs: 1, backend: 'wasm' };
}

test('runs in child processes give the same scores as in-process runs, in job order, into one leaderboard', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-pool-runs-'));
  const db = join(runsDir, 'board.db');
  const requests = [request('ft', 1), request('ft+mmd', 2), request('ft', 3)];
  const finished: number[] = [];
  const summaries = await runPool(
    requests.map((r) => ({ request: r, hooks: { db, runsDir } })),
    { concurrency: 2, warmFirst: true, onFinish: (index) => finished.push(index) },
  );
  t.is(finished[0], 0, 'warmFirst runs the first job alone');
  t.deepEqual([...finished].sort(), [0, 1, 2]);
  const inProcess = summarizeOutcome(await executeRun(requests[1], { db: null, runsDir, log: () => undefined }));
  t.deepEqual(summaries[1].splits.map((s) => s.metrics), inProcess.splits.map((s) => s.metrics));
  // The demo prints this line once: the backend and, on plain wasm, why the BLAS kernels were not used.
  t.regex(summaries[0].backendLine ?? '', new RegExp(`^backend: ${summaries[0].backend} `));
  const store = await openLeaderboard(db, { create: false });
  t.is((await listRuns(store, { task: 'vqa' })).length, 6, 'three runs, two splits each');
  await store.close();
});

test('warmFirst warms each data folder once: the second folder starts beside the first folder\'s warm-up, the first folder\'s other jobs after it', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-pool-warm-'));
  const events: string[] = [];
  await runPool(
    [request('ft', 1), request('ft', 2), request('ft', 3, otherData)].map((r) => ({ request: r, hooks: { db: null, runsDir } })),
    { concurrency: 2, warmFirst: true, onStart: (index) => events.push(`start ${index}`), onFinish: (index) => events.push(`finish ${index}`) },
  );
  t.deepEqual(events.slice(0, 2), ['start 0', 'start 2'], 'both folders\' first jobs start before anything finishes');
  t.true(events.indexOf('finish 0') < events.indexOf('start 1'), `job 1 waits for its folder's warm-up: ${events.join(', ')}`);
});

test('a bad request in a child process fails the pool with the input error it raised', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-pool-bad-'));
  const error = await t.throwsAsync(runPool([{ request: { ...request('ft', 0), sets: { 'no.such': '1' } }, hooks: { db: null, runsDir } }], { concurrency: 1 }));
  t.true(error instanceof InputError, String(error));
  t.regex(error!.message, /no\.such/);
});
