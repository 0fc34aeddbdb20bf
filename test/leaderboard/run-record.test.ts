import test from 'ava';
import { readFileSync } from 'node:fs';
import { InputError } from '../../core/errors.ts';
import { comparabilityDifferences, executionDifferences, parseRunRecord, RUN_RECORD_VERSION, seedGroupKey, type RunRecord } from '../../leaderboard/run-record.ts';
import { trainingSettingsSchema } from '../../models/train.ts';
import { exampleScores, findRun, listRuns, openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { RUN_RECORD_SCHEMA_FILE, runRecordSchemaText } from '../../leaderboard/write-run-record-schema.ts';
import { bernoulliScores, FINGERPRINT_B, syntheticDraft, temporaryDbPath } from './synthetic-runs.ts';

test('a recorded run reads back identical, with its per-example scores', async (t) => {
  const path = temporaryDbPath();
  const scores = bernoulliScores(50, 0.6, 1);
  const draft = syntheticDraft('baseline', scores, {
    curve: [
      { step: 0, loss: 2.5 },
      { step: 10, loss: 1.25, learningRate: 1e-4 },
    ],
    gitCommit: '0123abcd',
    predictions: { path: '/tmp/predictions.json', sha256: 'd'.repeat(64) },
  });
  const store = await openLeaderboard(path, { create: true });
  const recorded = await recordRun(store, draft, scores);
  await store.close();

  t.is(recorded.recordVersion, RUN_RECORD_VERSION);
  t.regex(recorded.id, /^\d{8}-\d{6}-[0-9a-f]{10}$/);
  const reopened = await openLeaderboard(path, { create: false });
  const [stored] = await listRuns(reopened);
  t.deepEqual(stored.record, recorded);
  // A draft without `scoring` is recorded as scored with the defaults, and without `limit` as a whole-split run.
  t.deepEqual(stored.record, { ...draft, scoring: { normalization: 'current', folds: 1 }, limit: null, recordVersion: RUN_RECORD_VERSION, id: recorded.id, createdAt: recorded.createdAt });
  t.is(stored.exampleCount, 50);
  t.deepEqual(
    await exampleScores(reopened, recorded.id),
    [...scores].sort((a, b) => (a.id < b.id ? -1 : 1)),
  );
  t.is((await findRun(reopened, 'baseline')).run.record.id, recorded.id);
  t.is((await findRun(reopened, recorded.id)).matchedByName, 0);
  await reopened.close();
});

test('a name recorded twice resolves to its latest run', async (t) => {
  const store = await openLeaderboard(temporaryDbPath(), { create: true });
  await recordRun(store, syntheticDraft('main', null, { createdAt: '2025-01-01T00:00:00.000Z' }), null);
  const latest = await recordRun(store, syntheticDraft('main', null, { createdAt: '2025-02-01T00:00:00.000Z' }), null);
  const found = await findRun(store, 'main');
  t.is(found.run.record.id, latest.id);
  t.is(found.matchedByName, 2);
  await t.throwsAsync(() => findRun(store, 'nope'), { instanceOf: InputError, message: /no run with this id or name/ });
  await store.close();
});

test('a bad record is refused with the field named, and nothing is stored', async (t) => {
  const store = await openLeaderboard(temporaryDbPath(), { create: true });
  const error = await t.throwsAsync(() => recordRun(store, syntheticDraft('bad', null, { splitFingerprint: 'not-a-hash' }), null), { instanceOf: InputError });
  t.regex(error!.message, /field "splitFingerprint"/);
  await t.throwsAsync(() => recordRun(store, syntheticDraft('bad', null, { primaryMetric: 'missing' }), null), { message: /field "primaryMetric".*names no key of metrics/ });
  await t.throwsAsync(() => recordRun(store, syntheticDraft('bad', null, { curve: [{ step: 5, loss: 1 }, { step: 5, loss: 0.5 }] }), null), { message: /field "curve.1.step"/ });
  await t.throwsAsync(() => recordRun(store, syntheticDraft('bad', null, { metrics: { overall: Number.NaN } }), null), { message: /field "metrics.overall"/ });
  t.is((await listRuns(store)).length, 0);
  await store.close();
});

test('per-example scores must be unique, finite and average to the primary metric', async (t) => {
  const store = await openLeaderboard(temporaryDbPath(), { create: true });
  const scores = bernoulliScores(20, 0.5, 3);
  await t.throwsAsync(() => recordRun(store, syntheticDraft('dup', scores), [...scores, scores[0]]), { message: /duplicated: 1 \("q0"\)/ });
  await t.throwsAsync(() => recordRun(store, syntheticDraft('off', scores, { metrics: { overall: meanPlus(scores, 1) } }), scores), { message: /per-example scores must be contributions to the primary metric/ });
  // The official evaluators round the primary to 2 decimals; that much is allowed.
  await t.notThrowsAsync(() => recordRun(store, syntheticDraft('rounded', scores, { metrics: { overall: meanPlus(scores, 0.004) } }), scores));
  await t.throwsAsync(() => recordRun(store, syntheticDraft('inf', scores), scores.map((s, i) => (i === 3 ? { ...s, score: Infinity } : s))), { message: /record "q3", field "score"/ });
  t.is((await listRuns(store)).length, 1);
  await store.close();
});

test('recording the same id twice fails as a whole: no second record, no extra scores', async (t) => {
  const store = await openLeaderboard(temporaryDbPath(), { create: true });
  const scores = bernoulliScores(10, 0.5, 4);
  const first = await recordRun(store, syntheticDraft('once', scores), scores);
  await t.throwsAsync(() => recordRun(store, syntheticDraft('twice', scores, { id: first.id }), scores), { message: /already recorded/ });
  t.is((await listRuns(store)).length, 1);
  t.deepEqual(await store.query('SELECT CAST(COUNT(*) AS INTEGER) AS n FROM example_scores'), [{ n: 10 }]);
  await store.close();
});

test('comparability names exactly the differing key fields; seed groups ignore seed, name and results', (t) => {
  const base = parseRunRecord({ ...syntheticDraft('a', null), recordVersion: 1, id: 'a', createdAt: '2025-01-01T00:00:00Z' }, 'a');
  const other = parseRunRecord(
    { ...syntheticDraft('b', null, { taskVersion: '2', splitFingerprint: FINGERPRINT_B, seed: 7, metrics: { overall: 99 } }), recordVersion: 1, id: 'b', createdAt: '2025-01-01T00:00:00Z' },
    'b',
  );
  t.deepEqual(
    comparabilityDifferences(base, other).map((d) => d.field),
    ['taskVersion', 'splitFingerprint'],
  );
  const sameButSeed = { ...base, id: 'c', name: 'c-seed2', seed: 2, metrics: { overall: 10 }, method: { ...base.method, hyperparameters: { epochs: 3, objectives: ['vqa-bce'], learningRate: 1e-4 } } };
  t.is(seedGroupKey(sameButSeed), seedGroupKey(base));
  t.not(seedGroupKey({ ...base, method: { ...base.method, hyperparameters: { learningRate: 2e-4 } } }), seedGroupKey(base));
});

/**
 * A record shaped like what `vlbench run` writes (harness/run.ts): its seed at the top of the
 * record and again in the hyperparameters, as the full training settings' `training.seed`.
 */
let vlbenchRunRecords = 0;
function vlbenchRunRecord(seed: number | null, training: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): RunRecord {
  const id = `run-${++vlbenchRunRecords}`;
  const hyperparameters = {
    method: 'ft',
    objectives: {},
    taskLoss: 'soft-score-bce',
    training: trainingSettingsSchema.parse({ epochs: 1, seed: seed ?? 0, ...training }),
    fusion: { hidden: 256, layers: 2, heads: 4, inputNorm: false, imagePool: 'mean' },
    encoder: { folder: '/models/clip-tiny', engine: 'tfjs', frozen: true, trainBlocks: 0 },
    maxTrainExamples: null,
    trainDomain: 'source',
    answers: { minCount: 1, vocabularySize: 12 },
    ...extra,
  };
  return parseRunRecord({ ...syntheticDraft('base', null, { seed, method: { spec: 'ft', hyperparameters } }), recordVersion: 1, id, createdAt: '2025-01-01T00:00:00Z' }, id);
}

test('seed groups of vlbench run records: runs that differ only in seed (training.seed too) share a key; any other setting splits them', (t) => {
  const [zero, one, two] = [0, 1, 2].map((seed) => vlbenchRunRecord(seed));
  t.is((zero.method.hyperparameters.training as { seed: number }).seed, 0, 'the record carries the seed in its training settings');
  t.is(seedGroupKey(one), seedGroupKey(zero));
  t.is(seedGroupKey(two), seedGroupKey(zero));
  // Anything else in the training settings, or beside them, is configuration.
  t.not(seedGroupKey(vlbenchRunRecord(1, { learningRate: 5e-4 })), seedGroupKey(zero));
  t.not(seedGroupKey(vlbenchRunRecord(1, { epochs: 2 })), seedGroupKey(zero));
  t.not(seedGroupKey(vlbenchRunRecord(1, {}, { maxTrainExamples: 100 })), seedGroupKey(zero));
  // A seed that is not the run's own (here a data seed) is configuration too.
  t.not(seedGroupKey(vlbenchRunRecord(1, {}, { data: { seed: 5 } })), seedGroupKey(vlbenchRunRecord(1, {}, { data: { seed: 6 } })));
  // Without a known seed, a record stays alone: nothing tells a replicate from a duplicate.
  t.not(seedGroupKey(vlbenchRunRecord(null)), seedGroupKey(zero));
});

test('the metric and the scoring options are part of the comparability key', (t) => {
  const record = (name: string, overrides: Parameters<typeof syntheticDraft>[2] = {}) =>
    parseRunRecord({ ...syntheticDraft(name, null, overrides), recordVersion: 1, id: name, createdAt: '2025-01-01T00:00:00Z' }, name);
  const current = record('current');
  t.deepEqual(current.scoring, { normalization: 'current', folds: 1 });
  t.deepEqual(comparabilityDifferences(current, record('legacy', { metric: 'vqa-accuracy-legacy', scoring: { normalization: 'legacy' } })), [
    { field: 'metric', base: 'vqa-accuracy', candidate: 'vqa-accuracy-legacy' },
    { field: 'scoring.normalization', base: 'current', candidate: 'legacy' },
  ]);
  t.deepEqual(comparabilityDifferences(current, record('folds', { scoring: { folds: 5 } })), [{ field: 'scoring.folds', base: 1, candidate: 5 }]);
  t.not(seedGroupKey(record('folds', { scoring: { folds: 5 } })), seedGroupKey(current));
});

test('records written before the scoring field read as what they were scored with', (t) => {
  const older = (overrides: Record<string, unknown>) => {
    const { scoring: _none, ...draft } = { ...syntheticDraft('old', null), recordVersion: 1, id: 'old', createdAt: '2025-01-01T00:00:00Z', ...overrides } as Record<string, unknown>;
    return parseRunRecord(draft, 'an older database');
  };
  t.deepEqual(older({}).scoring, { normalization: 'current', folds: 1 });
  // The legacy VQA mode was always recorded under its own metric name.
  t.deepEqual(older({ metric: 'vqa-accuracy-legacy' }).scoring, { normalization: 'legacy', folds: 1 });
  // The retrieval scorer always put its fold count among the metrics.
  t.deepEqual(older({ task: 'retrieval', metric: 'retrieval-recall', primaryMetric: 'rsum', metrics: { rsum: 300, folds: 5 } }).scoring, { normalization: 'current', folds: 5 });
  t.throws(() => parseRunRecord({ ...syntheticDraft('bad', null), recordVersion: 1, id: 'bad', createdAt: '2025-01-01T00:00:00Z', scoring: { folds: 0 } }, 'x'), { message: /field "scoring\.folds"/ });
});

test('execution settings are named when they differ, but are not part of the comparability key', (t) => {
  const record = (name: string, overrides: Parameters<typeof syntheticDraft>[2] = {}) =>
    parseRunRecord({ ...syntheticDraft(name, null, overrides), recordVersion: 1, id: name, createdAt: '2025-01-01T00:00:00Z' }, name);
  const laptop = record('laptop', { backend: 'wasm', execution: { device: 'cpu (2 cores)', dtype: 'float32', batchSize: 32 } });
  const server = record('server', { backend: 'tensorflow-gpu', execution: { device: 'NVIDIA H200', dtype: 'float32', batchSize: 256, shardCount: 3 } });
  t.deepEqual(comparabilityDifferences(laptop, server), []);
  t.deepEqual(executionDifferences(laptop, server), [
    { field: 'backend', base: 'wasm', candidate: 'tensorflow-gpu' },
    { field: 'execution.device', base: 'cpu (2 cores)', candidate: 'NVIDIA H200' },
    { field: 'execution.batchSize', base: 32, candidate: 256 },
    { field: 'execution.shardCount', base: null, candidate: 3 },
  ]);
  t.throws(() => record('typo', { execution: { devise: 'gpu' } as never }), { message: /field "execution"/ });
});

test('the committed JSON Schema is the one the zod schema generates', (t) => {
  t.is(readFileSync(RUN_RECORD_SCHEMA_FILE, 'utf8'), runRecordSchemaText(), 'run `npx tsx leaderboard/write-run-record-schema.ts` and commit the result');
});

function meanPlus(scores: { score: number }[], delta: number): number {
  return scores.reduce((sum, s) => sum + s.score, 0) / scores.length + delta;
}
