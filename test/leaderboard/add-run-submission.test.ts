import test from 'ava';
import { ANSWER_DEFAULTS } from '../../harness/adapters/answer-classification.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listRuns, openLeaderboard } from '../../leaderboard/store.ts';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { temporaryFolder } from './synthetic-runs.ts';

/**
 * Issue 16, item 3: predictions a `vlbench run` wrote, brought back with `leaderboard add`
 * the way a submitter would (the SynthScenes root, the split as the run records it, or no
 * split at all), rank beside that run and compare as equal to it.
 */

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;

test.serial('a run\'s predictions added with --data <root> --split test/source, and without --split, compare as equal to the run (exit 0)', async (t) => {
  const folder = temporaryFolder('add-run');
  const data = join(folder, 'synth');
  // 32 px matches the tiny fixture CLIP's input size.
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
  const db = join(folder, 'board.db');
  const run = await vlbench(['run', '--task', 'vqa', '--data', data, '--model', fixtureModel, '--method', 'ft', '--epochs', '1', '--backend', 'wasm', '--seed', '1', '--out', join(folder, 'runs'), '--db', db]);
  t.is(run.code, 0, run.stderr);

  const store = await openLeaderboard(db, { create: false });
  const recorded = (await listRuns(store)).map((stored) => stored.record);
  await store.close();
  t.deepEqual(recorded.map((record) => record.split), ['test/source', 'test/target']);
  const source = recorded[0];

  const add = (name: string, ...split: string[]) =>
    vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', data, ...split, '--predictions', source.predictions!.path, '--name', name, '--db', db]);
  const named = await add('submitted', '--split', 'test/source');
  t.is(named.code, 0, named.stderr);
  const found = await add('found');
  t.is(found.code, 0, found.stderr);
  // "test" is what `vlbench run --split` takes; the predictions pick the domain.
  const byRunSplit = await add('by-run-split', '--split', 'test');
  t.is(byRunSplit.code, 0, byRunSplit.stderr);

  const after = await openLeaderboard(db, { create: false });
  const added = (await listRuns(after)).map((stored) => stored.record).slice(2);
  await after.close();
  for (const record of added) {
    t.like(record, { split: 'test/source', splitFingerprint: source.splitFingerprint, taskVersion: source.taskVersion, metric: source.metric, metricVersion: source.metricVersion, scoring: source.scoring });
    t.deepEqual(record.metrics, source.metrics);
  }

  for (const name of ['submitted', 'found', 'by-run-split']) {
    const compared = await vlbench(['compare', source.id, name, '--db', db, '--format', 'json', '--resamples', '200']);
    t.is(compared.code, 0, compared.stderr);
    const report = JSON.parse(compared.stdout);
    t.is(report.difference, 0);
    t.deepEqual([report.paired.lower, report.paired.upper], [0, 0]);
    // The run says what computed it (backend, dtype, batch size); the submission cannot: named, not refused.
    t.deepEqual(report.executionDifferences, [
      { field: 'backend', base: 'wasm', candidate: null },
      { field: 'execution.dtype', base: 'float32', candidate: null },
      // VQA's own default batch (ANSWER_DEFAULTS), which the run records.
      { field: 'execution.batchSize', base: ANSWER_DEFAULTS.batchSize, candidate: null },
    ]);
  }
  const text = await vlbench(['compare', source.id, 'submitted', '--db', db, '--resamples', '200']);
  t.regex(text.stdout, /note: backend differs \(base "wasm", candidate unknown\); scores can drift with it across machines, the gate still applies\n/);

  // The board ranks them in one table.
  const board = JSON.parse((await vlbench(['leaderboard', '--db', db, '--format', 'json', '--resamples', '20'])).stdout);
  const sourceSection = board.sections.find((section: { key: { split: string } }) => section.key.split === 'test/source');
  t.deepEqual(sourceSection.rows.map((row: { runIds: string[] }) => row.runIds.length).reduce((a: number, b: number) => a + b, 0), 4);
});

test.serial('predictions that fit no split list the splits the folder has; an unknown split name lists them too', async (t) => {
  const folder = temporaryFolder('add-run-misfit');
  const data = join(folder, 'synth');
  await generateSynthScenes({ outDir: data, images: 8, seed: 3, size: 32, domains: ['source'] });
  const predictions = join(folder, 'predictions.json');
  writeFileSync(predictions, JSON.stringify([{ question_id: 999_999, answer: 'yes' }]));
  const db = join(folder, 'board.db');
  const misfit = await vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', data, '--predictions', predictions, '--name', 'x', '--db', db]);
  t.is(misfit.code, 2);
  t.regex(misfit.stderr, /predictions\.json, field "--split": the predictions fit none of the vqa splits tried: train\/source \(.*\); val\/source \(.*\); test\/source \(.*\)\n$/);
  t.regex(misfit.stderr, /question ids are not in split "test\/source"/);
  const unknown = await vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', data, '--split', 'train2014', '--predictions', predictions, '--name', 'x', '--db', db]);
  t.is(unknown.code, 2);
  t.is(unknown.stderr, `vlbench: error: ${data}, field "--split": no split "train2014" in this SynthScenes folder; its splits are train/source, val/source, test/source (or train, val, test for every domain)\n`);
  // The VQA files themselves are where they always were.
  t.is(synthPaths.vqaQuestions(data, 'test_source'), join(data, 'vqa', 'v2_OpenEnded_synthscenes_test_source_questions.json'));
});
