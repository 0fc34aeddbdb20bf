import test from 'ava';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { buildBoard } from '../../leaderboard/board.ts';
import { modelIndexEntries, renderModelIndex } from '../../leaderboard/model-index.ts';
import { exampleScores, listRuns, openLeaderboard, recordRun, type LeaderboardStore } from '../../leaderboard/store.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { bernoulliScores, FINGERPRINT_A, meanScore, syntheticDraft, temporaryDbPath } from './synthetic-runs.ts';

/**
 * The `model-index` block as the Hub documents it (hub-docs modelcard.md, huggingface_hub
 * EvalResult): written here from those documents, independently of leaderboard/model-index.ts,
 * so the export is checked against the Hub's rules rather than against itself. Required:
 * name, results; task.type; dataset.type and dataset.name; metrics[].type and metrics[].value.
 * Every other field is optional and of the documented type; no other key exists.
 */
const nonEmpty = z.string().min(1);
const hubMetric = z.strictObject({
  type: nonEmpty,
  value: z.union([z.number(), nonEmpty]),
  name: z.string().optional(),
  config: z.string().optional(),
  args: z.record(z.string(), z.unknown()).optional(),
  verified: z.boolean().optional(),
});
const hubResult = z.strictObject({
  task: z.strictObject({ type: nonEmpty, name: z.string().optional() }),
  dataset: z.strictObject({
    type: nonEmpty,
    name: nonEmpty,
    config: z.string().optional(),
    split: z.string().optional(),
    revision: z.string().optional(),
    args: z.record(z.string(), z.unknown()).optional(),
  }),
  metrics: z.array(hubMetric).min(1),
  source: z.strictObject({ name: z.string().optional(), url: nonEmpty }).optional(),
});
const hubModelIndex = z.array(z.strictObject({ name: nonEmpty, results: z.array(hubResult).min(1) })).min(1);

/** A model card's front matter must be exactly one YAML mapping with `model-index` in it. */
function parsedModelIndex(yaml: string): z.infer<typeof hubModelIndex> {
  const document = parse(yaml) as Record<string, unknown>;
  return hubModelIndex.parse(document['model-index']);
}

async function storeWithRuns(): Promise<LeaderboardStore> {
  const store = await openLeaderboard(temporaryDbPath('model-index'), { create: true });
  const scores = bernoulliScores(200, 0.6, 7);
  await recordRun(store, syntheticDraft('finetune', scores), scores);
  for (const [seed, overall] of [[1, 60], [2, 62], [3, 64]] as const) {
    await recordRun(store, syntheticDraft('villa', null, { seed, method: { spec: 'finetune+villa', hyperparameters: { steps: 3, seed } }, metrics: { overall, 'answerType/yes/no': 70 + seed } }), null);
  }
  // One run, two evaluation splits (as `vlbench run` records a SynthScenes run: test/source and test/target).
  await recordRun(store, syntheticDraft('finetune', null, { split: 'test/target', metrics: { overall: 41.5 } }), null);
  await recordRun(store, syntheticDraft('vcr: ft #1 "quoted"', null, { task: 'vcr', metric: 'vcr-accuracy', primaryMetric: 'q2ar', metrics: { q2a: 70, qa2r: 71, q2ar: 50 }, scoring: { normalization: 'current', folds: 1 } }), null);
  return store;
}

test('the leaderboard as model-index validates against the Hub schema and carries each row\'s numbers', async (t) => {
  const store = await storeWithRuns();
  const board = await buildBoard(await listRuns(store), (id) => exampleScores(store, id), { resamples: 200, seed: 1 });
  const yaml = renderModelIndex(board, { dataset: { type: 'lmms-lab/VQAv2', revision: 'abc123' } });
  t.notRegex(yaml, /[&*]a\d/, 'no YAML anchors or aliases: each metric\'s args written out');
  const index = parsedModelIndex(yaml);
  t.deepEqual(index, modelIndexEntries(board, { dataset: { type: 'lmms-lab/VQAv2', revision: 'abc123' } }), 'the YAML parses back to the entries, numbers exact');
  // Sections in task then split order (vcr; vqa test/target; vqa val/source), rows by rank inside
  // each; a name met again adds a result to its entry.
  t.deepEqual(index.map((entry) => entry.name), ['vcr: ft #1 "quoted"', 'finetune', 'villa']);

  const villa = index[2].results[0];
  t.deepEqual(villa.task, { type: 'visual-question-answering', name: 'Visual Question Answering' });
  t.deepEqual(villa.dataset, { type: 'lmms-lab/VQAv2', name: 'VQA v2 val/source', split: 'val/source', revision: 'abc123' });
  t.deepEqual(villa.metrics, [
    {
      type: 'vqa-accuracy/overall',
      value: 62,
      name: 'overall (vqa-accuracy 2, mean of 3 seeds)',
      args: { metric_version: '2', task_version: '1', split_fingerprint: FINGERPRINT_A, normalization: 'current', folds: 1, seeds: [1, 2, 3], std: 2 },
    },
    {
      type: 'vqa-accuracy/answerType/yes/no',
      value: 72,
      name: 'answerType/yes/no (vqa-accuracy 2, mean of 3 seeds)',
      args: { metric_version: '2', task_version: '1', split_fingerprint: FINGERPRINT_A, normalization: 'current', folds: 1, seeds: [1, 2, 3], std: 1 },
    },
  ]);

  t.deepEqual(index[1].results.map((result) => [result.dataset.split, result.metrics[0].value]), [['test/target', 41.5], ['val/source', meanScore(bernoulliScores(200, 0.6, 7))]], 'one entry, a result per split');
  const finetune = index[1].results[1].metrics[0];
  t.is(finetune.value, meanScore(bernoulliScores(200, 0.6, 7)));
  const interval = (finetune.args as { interval: { lower: number; upper: number; confidence: number; over: string } }).interval;
  t.is(interval.over, 'examples');
  t.is(interval.confidence, 0.95);
  t.true(interval.lower < (finetune.value as number) && (finetune.value as number) < interval.upper);

  const vcr = index[0].results[0];
  t.deepEqual(vcr.task, { type: 'multiple-choice', name: 'Visual Commonsense Reasoning' });
  t.deepEqual(vcr.metrics.map((metric) => [metric.type, metric.value]), [['vcr-accuracy/q2ar', 50], ['vcr-accuracy/q2a', 70], ['vcr-accuracy/qa2r', 71]], 'the primary metric first');
  await store.close();
});

test('the Hub schema used here refuses what the Hub refuses', (t) => {
  const valid = [{ name: 'm', results: [{ task: { type: 'visual-question-answering' }, dataset: { type: 'lmms-lab/VQAv2', name: 'VQA v2' }, metrics: [{ type: 'accuracy', value: 61.2 }] }] }];
  t.notThrows(() => hubModelIndex.parse(valid));
  const withoutDatasetName = structuredClone(valid) as unknown as { results: { dataset: Record<string, unknown> }[] }[];
  delete withoutDatasetName[0].results[0].dataset.name;
  t.throws(() => hubModelIndex.parse(withoutDatasetName));
  const unknownKey = structuredClone(valid) as unknown as { results: { metrics: Record<string, unknown>[] }[] }[];
  unknownKey[0].results[0].metrics[0].version = '2';
  t.throws(() => hubModelIndex.parse(unknownKey));
});

test.serial('vlbench leaderboard model-index exports one seed group; --format model-index the whole board', async (t) => {
  const store = await storeWithRuns();
  const db = store.location;
  await store.close();
  const out = join(dirname(db), 'card.yaml');
  const single = await vlbench(['leaderboard', 'model-index', 'villa', '--seeds', '2', '--db', db, '--dataset', 'lmms-lab/VQAv2', '--dataset-config', 'default', '--out', out]);
  t.is(single.code, 0, single.stderr);
  const index = parsedModelIndex(readFileSync(out, 'utf8'));
  t.is(index.length, 1);
  t.is(index[0].name, 'villa');
  t.deepEqual(index[0].results[0].dataset, { type: 'lmms-lab/VQAv2', name: 'VQA v2 val/source', config: 'default', split: 'val/source' });
  t.deepEqual(index[0].results[0].metrics.map((metric) => [metric.value, metric.name, (metric.args as { seeds: number[] }).seeds]), [[62, 'overall (vqa-accuracy 2)', [2]], [72, 'answerType/yes/no (vqa-accuracy 2)', [2]]]);

  const group = await vlbench(['leaderboard', 'model-index', 'villa', '--seeds', '1,3', '--db', db]);
  t.is(group.code, 0, group.stderr);
  const groupIndex = parsedModelIndex(group.stdout);
  t.deepEqual(
    groupIndex.map((entry) => [entry.name, entry.results[0].metrics[0].value, (entry.results[0].metrics[0].args as { std: number }).std, entry.results[0].dataset.type]),
    [['villa', 62, Math.SQRT2 * 2, 'vqa']],
    'seeds 1 and 3: mean 62, sample std of 60 and 64',
  );
  t.regex(group.stderr, /seed group of 2 runs/);

  const board = await vlbench(['leaderboard', '--format', 'model-index', '--task', 'vqa', '--db', db]);
  t.is(board.code, 0, board.stderr);
  t.deepEqual(parsedModelIndex(board.stdout).map((entry) => [entry.name, entry.results.length]), [['finetune', 2], ['villa', 1]]);

  const missing = await vlbench(['leaderboard', 'model-index', 'no-such-run', '--db', db]);
  t.not(missing.code, 0);
  t.regex(missing.stderr, /no-such-run/);
  t.notRegex(missing.stderr, /\n\s+at /, 'no stack trace');
});

test.serial('vlbench leaderboard model-index RUN_DIR exports every split a run folder recorded', async (t) => {
  const db = temporaryDbPath('model-index-folder');
  const runDir = join(dirname(db), 'runs', '20261207-120000-ft');
  mkdirSync(join(runDir, 'scores'), { recursive: true });
  const store = await openLeaderboard(db, { create: true });
  for (const [split, overall] of [['test/source', 61.5], ['test/target', 40.25]] as const) {
    await recordRun(store, syntheticDraft('ft', null, { split, metrics: { overall }, perExamplePath: join(runDir, 'scores', `${split.replace('/', '_')}.json`) }), null);
  }
  // The same name recorded by another run folder: not this folder's.
  await recordRun(store, syntheticDraft('ft', null, { split: 'test/source', metrics: { overall: 10 }, perExamplePath: join(dirname(runDir), 'other', 'scores', 'test_source.json') }), null);
  await store.close();
  const exported = await vlbench(['leaderboard', 'model-index', runDir, '--db', db]);
  t.is(exported.code, 0, exported.stderr);
  t.deepEqual(parsedModelIndex(exported.stdout).map((entry) => [entry.name, entry.results.map((result) => [result.dataset.split, result.metrics[0].value])]), [['ft', [['test/source', 61.5], ['test/target', 40.25]]]]);
  const unrecorded = join(dirname(db), 'runs', '20261207-130000-not-recorded');
  mkdirSync(unrecorded);
  const none = await vlbench(['leaderboard', 'model-index', unrecorded, '--db', db]);
  t.is(none.code, 2);
  t.is(none.stderr, `vlbench: error: ${unrecorded}: no run recorded in this leaderboard wrote into this folder (was it run with --no-record, or recorded in another --db?)\n`);
});
