import test from 'ava';
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunOutcome, type RunRequest } from '../../harness/run.ts';
import { mergeShards, shardSlice, sortExampleIds } from '../../harness/shards.ts';
import { parseShard } from '../../cli/flags.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { listRuns, openLeaderboard } from '../../leaderboard/store.ts';
import { freePort } from '../scaleout/servers.ts';

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
const quiet = () => undefined;
let data = '';

test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-shards-')), 'synth');
  // 20 images: test splits of a few examples per domain, so 3 slices differ in size (floor((k-1)N/3) .. floor(kN/3)).
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

function request(task: string, method: string, extra: Partial<RunRequest> = {}): RunRequest {
  return { task, dataDir: data, modelDir: fixtureModel, method, sets: {}, seed: 1, epochs: 1, backend: 'wasm', ...extra };
}

/** The fixture CLIP with one weight's lowest mantissa bit flipped: another checkpoint that loads the same way. */
async function perturbedModel(): Promise<string> {
  const dir = join(await mkdtemp(join(tmpdir(), 'vlbench-other-model-')), 'clip-tiny');
  await cp(fixtureModel, dir, { recursive: true });
  const weights = await readFile(join(dir, 'model.safetensors'));
  weights[8 + Number(weights.readBigUInt64LE(0))] ^= 1;
  await writeFile(join(dir, 'model.safetensors'), weights);
  return dir;
}

interface Sharded {
  runsDir: string;
  straight: RunOutcome;
  shardDirs: string[];
}

/** The same request unsharded and as 3 shards, in one runs folder (the shards are not merged here). */
async function runSharded(task: string, method: string, extra: Partial<RunRequest> = {}): Promise<Sharded> {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-shard-runs-'));
  const straight = await executeRun(request(task, method, extra), { db: null, runsDir, log: quiet });
  const shardDirs: string[] = [];
  for (let number = 1; number <= 3; number++) {
    const outcome = await executeRun(request(task, method, { ...extra, shard: { number, count: 3 } }), { db: null, runsDir, log: quiet });
    shardDirs.push(outcome.runDir);
  }
  return { runsDir, straight, shardDirs };
}

let vqaShards: Promise<Sharded> | undefined;
const vqa = () => (vqaShards ??= runSharded('vqa', 'ft'));

async function assertSameAsUnsharded(t: import('ava').ExecutionContext, sharded: Sharded, extension: string): Promise<RunOutcome> {
  const db = join(sharded.runsDir, 'board.db');
  const merged = await mergeShards(sharded.shardDirs, { db, runsDir: join(sharded.runsDir, 'merged'), log: quiet });
  t.deepEqual(merged.splits.map((s) => s.split), sharded.straight.splits.map((s) => s.split));
  t.deepEqual(
    merged.splits.map((s) => s.report.metrics),
    sharded.straight.splits.map((s) => s.report.metrics),
  );
  t.deepEqual(
    merged.splits.map((s) => s.report.perExample),
    sharded.straight.splits.map((s) => s.report.perExample),
  );
  for (const s of merged.splits) {
    const file = `${s.split.replace('/', '_')}.${extension}`;
    t.true((await readFile(join(merged.runDir, 'predictions', file))).equals(await readFile(join(sharded.straight.runDir, 'predictions', file))), `${file} byte for byte`);
  }
  t.deepEqual(JSON.parse(await readFile(join(merged.runDir, 'metrics.json'), 'utf8')), JSON.parse(await readFile(join(sharded.straight.runDir, 'metrics.json'), 'utf8')));
  // Recorded like a run, with the shard count beside the other execution settings.
  const store = await openLeaderboard(db, { create: false });
  const runs = await listRuns(store, {});
  await store.close();
  t.is(runs.length, merged.splits.length);
  for (const run of runs) t.is(run.record.execution?.shardCount, 3);
  t.deepEqual(
    runs.map((r) => r.record.metrics).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    sharded.straight.splits.map((s) => s.report.metrics).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
  );
  return merged;
}

test('VQA ft: 3 shards merged give the unsharded run\'s metrics and predictions file', async (t) => {
  const sharded = await vqa();
  // Each shard predicted only its slice: the three slices tile each split.
  const files = await Promise.all(sharded.shardDirs.map(async (dir) => JSON.parse(await readFile(join(dir, 'shards', 'test_source.json'), 'utf8')) as { rows: { id: string }[]; exampleCount: number }));
  t.is(files.reduce((n, f) => n + f.rows.length, 0), files[0].exampleCount);
  t.true(files.every((f) => f.rows.length > 0 && f.rows.length < f.exampleCount));
  await assertSameAsUnsharded(t, sharded, 'json');
});

test('retrieval zero-shot: shards contribute embeddings, the merge ranks them to the unsharded matrix', async (t) => {
  await assertSameAsUnsharded(t, await runSharded('retrieval', 'zeroshot'), 'npy');
});

test('retrieval ft: shards of a trained model merge to the unsharded run', async (t) => {
  await assertSameAsUnsharded(t, await runSharded('retrieval', 'ft', { epochs: 2 }), 'npy');
});

test('VQA ft with a tuned encoder block: the merged run is recorded under the unsharded run\'s name and tuned-encoder fingerprint', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-shard-tuned-'));
  const tuned = { sets: { 'encoder.train_blocks': '1' } };
  const straightDb = join(runsDir, 'straight.db');
  const straight = await executeRun(request('vqa', 'ft', tuned), { db: straightDb, runsDir, log: quiet });
  const shardDirs: string[] = [];
  for (let number = 1; number <= 2; number++) shardDirs.push((await executeRun(request('vqa', 'ft', { ...tuned, shard: { number, count: 2 } }), { db: null, runsDir, log: quiet })).runDir);
  const mergedDb = join(runsDir, 'merged.db');
  const merged = await mergeShards(shardDirs, { db: mergedDb, runsDir: join(runsDir, 'merged'), log: quiet });
  const records = async (db: string) => {
    const store = await openLeaderboard(db, { create: false });
    const runs = await listRuns(store, {});
    await store.close();
    return runs.map((run) => ({ split: run.record.split, name: run.record.name, model: run.record.model })).sort((a, b) => a.split.localeCompare(b.split));
  };
  const expected = await records(straightDb);
  t.regex(straight.name, /\(encoder: last 1 block tuned\)/);
  t.true(expected.every((record) => typeof record.model.tunedFingerprint === 'string'), 'the unsharded run records its tuned encoder');
  t.is(merged.name, straight.name);
  t.deepEqual(await records(mergedDb), expected);
  // The merged folder is a complete run folder: the tuned encoder its record names is in it.
  t.true((await readdir(join(merged.runDir, 'encoder'))).includes('model.safetensors'));
});

test('a missing shard is refused, naming the examples no shard holds', async (t) => {
  const { shardDirs } = await vqa();
  const third = JSON.parse(await readFile(join(shardDirs[2], 'shards', 'test_source.json'), 'utf8')) as { rows: { id: string }[] };
  const error = await t.throwsAsync(mergeShards(shardDirs.slice(0, 2), { db: null, log: quiet }));
  t.true(error!.message.includes(`${third.rows.length} of`), error!.message);
  t.true(error!.message.includes(third.rows.map((r) => r.id).slice(0, 10).join(', ')), error!.message);
  t.regex(error!.message, /shard 3\/3 not given/);
});

test('a duplicated shard is refused, naming both files; overlapping rows name the ids and files', async (t) => {
  const { shardDirs } = await vqa();
  const copy = `${shardDirs[1]}-copy`;
  await cp(shardDirs[1], copy, { recursive: true });
  const error = await t.throwsAsync(mergeShards([...shardDirs, copy], { db: null, log: quiet }));
  t.true(error!.message.includes(`shard 2/3 is given 2 times (${join(shardDirs[1], 'shards', 'test_source.json')}, ${join(copy, 'shards', 'test_source.json')})`), error!.message);

  // Shard 1's file with one of shard 2's rows added: that id is in two shards.
  const overlapping = `${shardDirs[0]}-overlap`;
  await cp(shardDirs[0], overlapping, { recursive: true });
  const file = join(overlapping, 'shards', 'test_source.json');
  const first = JSON.parse(await readFile(file, 'utf8'));
  const second = JSON.parse(await readFile(join(shardDirs[1], 'shards', 'test_source.json'), 'utf8'));
  first.rows.push(second.rows[0]);
  await writeFile(file, JSON.stringify(first));
  const overlap = await t.throwsAsync(mergeShards([overlapping, shardDirs[1], shardDirs[2]], { db: null, log: quiet }));
  t.true(overlap!.message.includes(`1 examples are in more than one shard: ${second.rows[0].id} (${file}, ${join(shardDirs[1], 'shards', 'test_source.json')})`), overlap!.message);
});

test('a shard numbered past its count (1/2 and 3/2) is refused, naming the file, and nothing is written', async (t) => {
  const { shardDirs } = await vqa();
  // Shards 1+2 of 3 relabelled 1/2, shard 3 of 3 relabelled 3/2: together they cover every example once.
  const relabel = async (sources: string[], number: number) => {
    const dir = `${shardDirs[0]}-relabelled-${number}of2`;
    await cp(sources[0], dir, { recursive: true });
    for (const name of await readdir(join(dir, 'shards'))) {
      const contents = await Promise.all(sources.map(async (source) => JSON.parse(await readFile(join(source, 'shards', name), 'utf8'))));
      await writeFile(join(dir, 'shards', name), JSON.stringify({ ...contents[0], shard: { number, count: 2 }, rows: contents.flatMap((content) => content.rows) }));
    }
    return dir;
  };
  const first = await relabel([shardDirs[0], shardDirs[1]], 1);
  const third = await relabel([shardDirs[2]], 3);
  const out = await mkdtemp(join(tmpdir(), 'vlbench-shard-relabelled-'));
  await t.throwsAsync(mergeShards([first, third], { db: null, runsDir: out, log: quiet }), {
    message: new RegExp(`^${join(third, 'shards').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/test_\\w+\\.json, field "shard": not a vlbench shard file: shard number must be at most the shard count$`),
  });
  t.deepEqual(await readdir(out), [], 'no merged run folder');
});

test('merge-shards with its leaderboard unreachable is refused before the merged run folder is written', async (t) => {
  const { shardDirs } = await vqa();
  const out = await mkdtemp(join(tmpdir(), 'vlbench-shard-no-store-'));
  const url = `postgres://vlbench@127.0.0.1:${await freePort()}/gone`;
  await t.throwsAsync(mergeShards(shardDirs, { db: url, runsDir: out, log: quiet }), { message: new RegExp(`^${url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot reach the leaderboard database: .*ECONNREFUSED`) });
  t.deepEqual(await readdir(out), [], 'nothing merged, so nothing waits for a record');
});

test('shards of different seeds, models or trained weights are refused', async (t) => {
  const runsDir = await mkdtemp(join(tmpdir(), 'vlbench-shard-mixed-'));
  const shard = (number: number, extra: Partial<RunRequest> = {}) => executeRun(request('retrieval', 'zeroshot', { ...extra, shard: { number, count: 2 } }), { db: null, runsDir, log: quiet });
  const one = await shard(1);
  const otherSeed = await shard(2, { seed: 2 });
  await t.throwsAsync(mergeShards([one.runDir, otherSeed.runDir], { db: null, log: quiet }), { message: /shards of different runs cannot be merged: request\.seed is 1 in .* but 2 in / });
  const otherModelShard = await shard(2, { modelDir: await perturbedModel() });
  await t.throwsAsync(mergeShards([one.runDir, otherModelShard.runDir], { db: null, log: quiet }), { message: /model\.encoderFingerprint is "[0-9a-f]+" in .* \(different encoder checkpoints\)/ });

  // Same request, different weights (as a nondeterministic backend would give): refused by the trained-model fingerprint.
  const { shardDirs } = await vqa();
  const tampered = `${shardDirs[2]}-other-weights`;
  await cp(shardDirs[2], tampered, { recursive: true });
  for (const name of await readdir(join(tampered, 'shards'))) {
    const file = join(tampered, 'shards', name);
    const content = JSON.parse(await readFile(file, 'utf8'));
    content.model.trainedFingerprint = '0'.repeat(64);
    await writeFile(file, JSON.stringify(content));
  }
  await t.throwsAsync(mergeShards([shardDirs[0], shardDirs[1], tampered], { db: null, log: quiet }), { message: /model\.trainedFingerprint .* training was not deterministic here/ });
});

test('slices: contiguous runs of the ids sorted (numerically when all are whole numbers) that tile the split', (t) => {
  const ids = sortExampleIds(['10', '2', '1', '33', '4', '5', '7']);
  t.deepEqual(ids, ['1', '2', '4', '5', '7', '10', '33']);
  t.deepEqual([1, 2, 3].map((number) => shardSlice(ids, { number, count: 3 })), [['1', '2'], ['4', '5'], ['7', '10', '33']]);
  t.deepEqual(sortExampleIds(['b', 'a10', 'a9']), ['a10', 'a9', 'b']);
});

test('--shard is numbered from 1; 0 and numbers past the count are refused by name', (t) => {
  t.deepEqual(parseShard('--shard', '2/3'), { number: 2, count: 3 });
  t.throws(() => parseShard('--shard', '0/3'), { message: /field "--shard": shards are numbered from 1 \(1\/3 … 3\/3\), got "0\/3"/ });
  t.throws(() => parseShard('--shard', '4/3'), { message: /shard 4 of 3 does not exist/ });
  t.throws(() => parseShard('--shard', '2'), { message: /expected k\/n/ });
});
