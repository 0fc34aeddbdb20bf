import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vlbench } from '../support/cli-in-process.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { limitSplit } from '../../harness/run-data.ts';
import { buildBoard } from '../../leaderboard/board.ts';
import { comparabilityDifferences } from '../../leaderboard/run-record.ts';
import { exampleScores, listRuns, withLeaderboard } from '../../leaderboard/store.ts';
import { getTask } from '../../tasks/registry.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

/**
 * Issue 32 item 7: `--limit N` is a smoke run over the first N examples of each split, in file
 * order; the record says so and a limited run is never ranked beside full runs.
 */
const temporaryDir = temporaryFolders(test);
const release = join(import.meta.dirname, '..', 'fixtures', 'vcr-release');
const fixtureModel = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
const quiet = () => undefined;

const split = (ids: string[]): LoadedSplit<{ id: string }> => ({ task: 't', taskVersion: '1', split: 'val', fingerprint: 'f'.repeat(64), files: [], examples: ids.map((id) => ({ id })) });

test('limitSplit keeps the first N examples in file order, folds the limit into the fingerprint, and leaves a split it does not cut whole', (t) => {
  const whole = split(['c', 'a', 'b']);
  const limited = limitSplit(whole, 2);
  t.deepEqual(limited.examples, [{ id: 'c' }, { id: 'a' }]);
  t.is(limited.limit, 2);
  t.not(limited.fingerprint, whole.fingerprint);
  t.is(limitSplit(whole, 2).fingerprint, limited.fingerprint, 'the same limit gives the same fingerprint');
  t.not(limitSplit(whole, 1).fingerprint, limited.fingerprint);
  t.is(limitSplit(whole, 3), whole, 'a limit that cuts nothing is the whole split, comparable with full runs');
  t.is(limitSplit(whole, undefined), whole);
});

test.serial('a --limit run scores the first N evaluation examples, records its limit, and sits in a board group of its own', async (t) => {
  const runsDir = await temporaryDir(join(tmpdir(), 'vlbench-limit-'));
  const db = join(runsDir, 'board.db');
  const request: RunRequest = { task: 'vcr', dataDir: release, modelDir: fixtureModel, trainSplit: 'train', split: 'val', method: 'ft', epochs: 1, backend: 'wasm' };
  const full = await executeRun(request, { db, runsDir, log: quiet });
  const smoke = await executeRun({ ...request, limit: 2 }, { db, runsDir, log: quiet });
  const val = await getTask('vcr').load({ split: 'val', dataDir: release, files: {} });
  t.true(val.examples.length > 2, 'the fixture split is longer than the limit');
  t.deepEqual(
    smoke.splits[0].report.perExample.map((row) => row.id),
    full.splits[0].report.perExample.slice(0, 2).map((row) => row.id),
    'the first two examples in file order',
  );
  t.is(full.splits[0].record!.limit, null);
  t.is(smoke.splits[0].record!.limit, 2);
  t.deepEqual(
    comparabilityDifferences(full.splits[0].record!, smoke.splits[0].record!).map((d) => d.field),
    ['splitFingerprint', 'limit'],
  );
  const board = await withLeaderboard(db, { create: false }, async (store) => buildBoard(await listRuns(store), (id) => exampleScores(store, id), { resamples: 50 }));
  t.is(board.sections.length, 2, 'one group for the full run, one for the smoke run');
  t.deepEqual(board.sections.map((section) => section.key.limit).sort(), [2, null]);
});


test.serial('vlbench score --limit N scores predictions for the first N questions, and says why whole-split predictions are refused', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-limit-score-'));
  const header = { info: {}, task_type: 'Open-Ended', data_type: 'mscoco', license: {}, data_subtype: 'val2014' };
  const tenOf = (answer: string) => Array.from({ length: 10 }, (_, i) => ({ answer, answer_confidence: 'yes', answer_id: i + 1 }));
  await writeFile(join(dir, 'Q.json'), JSON.stringify({ ...header, questions: [{ image_id: 1, question: 'Is it a cat?', question_id: 20 }, { image_id: 2, question: 'How many?', question_id: 10 }] }));
  await writeFile(join(dir, 'A.json'), JSON.stringify({ ...header, annotations: [
    { question_id: 20, image_id: 1, question_type: 'is it', answer_type: 'yes/no', multiple_choice_answer: 'yes', answers: tenOf('yes') },
    { question_id: 10, image_id: 2, question_type: 'how many', answer_type: 'number', multiple_choice_answer: '2', answers: tenOf('2') },
  ] }));
  await writeFile(join(dir, 'first.json'), JSON.stringify([{ question_id: 20, answer: 'yes' }]));
  await writeFile(join(dir, 'all.json'), JSON.stringify([{ question_id: 20, answer: 'yes' }, { question_id: 10, answer: '3' }]));
  const score = (predictions: string, extra: string[] = []) => vlbench(['score', '--task', 'vqa', '--questions', join(dir, 'Q.json'), '--annotations', join(dir, 'A.json'), '--predictions', join(dir, predictions), ...extra]);
  const limited = await score('first.json', ['--limit', '1']);
  t.is(limited.code, 0, limited.stderr);
  // File order, not id order: question 20 comes first and is answered right.
  t.deepEqual(JSON.parse(limited.stdout), { overall: 100, perAnswerType: { 'yes/no': 100 }, perQuestionType: { 'is it': 100 } });
  t.deepEqual(JSON.parse((await score('all.json')).stdout).overall, 50);
  const refused = await score('all.json', ['--limit', '1']);
  t.is(refused.code, 2);
  t.regex(refused.stderr, /not in split.*--limit 1: the predictions must cover exactly the first 1 examples/);
  const bad = await score('first.json', ['--limit', '0']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--limit/);
});
