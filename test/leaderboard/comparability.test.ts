import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SeededRandom } from '../../core/random.ts';
import { getTask } from '../../tasks/registry.ts';
import { writeNpyMatrix, type RetrievalImage } from '../../tasks/retrieval/index.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { synthLoadOptions } from '../../tasks/synth/run-splits.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { temporaryFolder } from './synthetic-runs.ts';

/**
 * Issue 17, item 1: whatever turns the same predictions into a different number is part of the
 * comparability key, so `compare` refuses such runs (exit 2) and names the field.
 */

const answers = (list: string[]) => list.map((answer, index) => ({ answer, answer_confidence: 'yes', answer_id: index + 1 }));

/** A VQA v2 folder in the official layout with two questions on which the two normalisations disagree. */
function vqaFolder(): { dir: string; predictions: string } {
  const dir = temporaryFolder('comparability-vqa');
  const header = { info: {}, task_type: 'Open-Ended', data_type: 'mscoco', license: {}, data_subtype: 'val2014' };
  writeFileSync(join(dir, 'v2_OpenEnded_mscoco_val2014_questions.json'), JSON.stringify({ ...header, questions: [
    { image_id: 1, question: 'Is it a cat?', question_id: 10 },
    { image_id: 2, question: 'How many?', question_id: 20 },
  ] }));
  writeFileSync(join(dir, 'v2_mscoco_val2014_annotations.json'), JSON.stringify({ ...header, annotations: [
    { question_id: 10, image_id: 1, question_type: 'is it', answer_type: 'yes/no', multiple_choice_answer: 'yes', answers: answers(Array(10).fill('yes')) },
    { question_id: 20, image_id: 2, question_type: 'how many', answer_type: 'number', multiple_choice_answer: '2', answers: answers([...Array(2).fill('2'), ...Array(8).fill('3')]) },
  ] }));
  const predictions = join(dir, 'predictions.json');
  writeFileSync(predictions, JSON.stringify([{ question_id: 10, answer: 'Yes' }, { question_id: 20, answer: 'two' }]));
  return { dir, predictions };
}

test.serial('the same VQA predictions scored with the legacy and the current normalisation are not comparable (exit 2, fields named)', async (t) => {
  const { dir, predictions } = vqaFolder();
  const db = join(temporaryFolder('comparability-db'), 'board.db');
  const add = (name: string, ...extra: string[]) => vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', dir, '--predictions', predictions, '--name', name, '--db', db, ...extra]);
  // Current: "Yes" against ten "yes" is not normalised → 0; "two" → "2", matched by 2 of 10 → 60; mean 30.
  const current = await add('current', '--split', 'val2014');
  t.is(current.code, 0, current.stderr);
  t.regex(current.stdout, /"current": vqa val2014, overall 30\.00\n$/);
  // Legacy: the prediction is always normalised, so "Yes" → "yes" → 100; mean (100 + 60) / 2 = 80.
  // Without --split the one split whose questions the file answers is found (the others have no files).
  const legacy = await add('legacy', '--legacy-normalization');
  t.is(legacy.code, 0, legacy.stderr);
  t.regex(legacy.stdout, /"legacy": vqa val2014, overall 80\.00\n$/);

  const compared = await vlbench(['compare', 'current', 'legacy', '--db', db]);
  t.is(compared.code, 2);
  t.is(compared.stdout, '');
  t.is(
    compared.stderr,
    'vlbench: error: runs "current" and "legacy" are not comparable: metric differs (base "vqa-accuracy", candidate "vqa-accuracy-legacy"); ' +
      'scoring.normalization differs (base "current", candidate "legacy")\n',
  );

  const board = JSON.parse((await vlbench(['leaderboard', '--db', db, '--format', 'json', '--resamples', '10'])).stdout);
  t.deepEqual(
    board.sections.map((section: { key: { scoring: unknown }; rows: { name: string }[] }) => [section.key.scoring, section.rows.map((row) => row.name)]),
    [
      [{ normalization: 'current', folds: 1 }, ['current']],
      [{ normalization: 'legacy', folds: 1 }, ['legacy']],
    ],
  );
  t.regex((await vlbench(['leaderboard', '--db', db])).stdout, /vqa-accuracy-legacy 1 \(legacy normalisation\)/);
});

test.serial('a retrieval result scored as 5 folds and as the whole split is not comparable (exit 2, scoring.folds named)', async (t) => {
  const root = join(temporaryFolder('comparability-retrieval'), 'synth');
  // 34 images per domain: 5 in test and 5 in val, so 5 folds of one image each.
  await generateSynthScenes({ outDir: root, images: 34, seed: 3, size: 32, domains: ['source'] });
  const split = (await getTask('retrieval').load(synthLoadOptions('retrieval', root, 'source', 'test'))) as LoadedSplit<RetrievalImage>;
  const rows = split.examples.length;
  const cols = split.examples.reduce((sum, image) => sum + image.captions.length, 0);
  t.deepEqual([rows, cols], [5, 25]);
  const random = new SeededRandom(17);
  const similarities = join(root, '..', 'similarities.npy');
  await writeNpyMatrix(similarities, { data: Float32Array.from({ length: rows * cols }, () => random.next()), rows, cols });
  const db = join(root, '..', 'board.db');
  const add = (name: string, ...extra: string[]) => vlbench(['leaderboard', 'add', '--task', 'retrieval', '--data', root, '--split', 'test/source', '--predictions', similarities, '--name', name, '--db', db, ...extra]);
  const whole = await add('5k-style');
  t.is(whole.code, 0, whole.stderr);
  const folds = await add('1k-style', '--folds', '5');
  t.is(folds.code, 0, folds.stderr);
  const rsum = (stdout: string) => Number(/rsum (\d+\.\d\d)/.exec(stdout)![1]);
  // Ranking among 1 image instead of 5 changes the numbers for the very same matrix.
  t.not(rsum(whole.stdout), rsum(folds.stdout));

  const compared = await vlbench(['compare', '5k-style', '1k-style', '--db', db]);
  t.is(compared.code, 2);
  t.is(compared.stderr, 'vlbench: error: runs "5k-style" and "1k-style" are not comparable: scoring.folds differs (base 1, candidate 5)\n');

  // val/source and test/source have the same shape: without --split the matrix fits both, so the user is asked.
  const ambiguous = await vlbench(['leaderboard', 'add', '--task', 'retrieval', '--data', root, '--predictions', similarities, '--name', 'which', '--db', db]);
  t.is(ambiguous.code, 2);
  t.regex(ambiguous.stderr, /similarities\.npy, field "--split": the predictions fit 2 splits of .*synth \(val\/source, test\/source\); pass --split with the one they were made for\n$/);
});

test.serial('a scoring option given to a task it does not apply to is refused (exit 2)', async (t) => {
  const { dir, predictions } = vqaFolder();
  const db = join(temporaryFolder('comparability-db'), 'board.db');
  const folds = await vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', dir, '--predictions', predictions, '--name', 'x', '--db', db, '--folds', '5']);
  t.is(folds.code, 2);
  t.is(folds.stderr, 'vlbench: error: field "--folds": --folds applies to retrieval only, not to vqa\n');
  const badFolds = await vlbench(['leaderboard', 'add', '--task', 'retrieval', '--data', dir, '--predictions', predictions, '--name', 'x', '--db', db, '--folds', '0']);
  t.is(badFolds.code, 2);
  t.is(badFolds.stderr, 'vlbench: error: field "--folds": expected a positive integer, got "0"\n');
  const legacy = await vlbench(['leaderboard', 'add', '--task', 'gqa', '--data', dir, '--predictions', predictions, '--name', 'x', '--db', db, '--legacy-normalization']);
  t.is(legacy.code, 2);
  t.is(legacy.stderr, 'vlbench: error: field "--legacy-normalization": --legacy-normalization applies to vqa and vizwiz only, not to gqa\n');
});
