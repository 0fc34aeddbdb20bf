import test from 'ava';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildAnswerVocabulary,
  loadVqaSplit,
  readVqaPredictions,
  scoreVqa,
  vqaTask,
  writeVqaResults,
  type VqaExample,
} from '../../tasks/vqa/index.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);


const header = (subtype: string) => ({
  info: { description: 'test', version: '2.0', year: 2017 },
  task_type: 'Open-Ended',
  data_type: 'mscoco',
  license: { url: 'http://creativecommons.org/licenses/by/4.0/', name: 'Creative Commons Attribution 4.0 International License' },
  data_subtype: subtype,
});

const answerRecords = (answers: string[]) => answers.map((answer, index) => ({ answer, answer_confidence: 'yes', answer_id: index + 1 }));

function officialFiles(subtype = 'val2014') {
  const questions = {
    ...header(subtype),
    questions: [
      { image_id: 42, question: 'What color is the cat?', question_id: 42000 },
      { image_id: 42, question: 'Is it raining?', question_id: 42001 },
      { image_id: 7, question: 'How many dogs?', question_id: 7000 },
    ],
  };
  const annotations = {
    ...header(subtype),
    annotations: [
      // annotation order differs from question order on purpose: the evaluator walks annotations
      { question_id: 7000, image_id: 7, question_type: 'how many', answer_type: 'number', multiple_choice_answer: '2', answers: answerRecords([...Array(7).fill('2'), 'two', 'three', '3']) },
      { question_id: 42000, image_id: 42, question_type: 'what color is the', answer_type: 'other', multiple_choice_answer: 'black', answers: answerRecords([...Array(8).fill('black'), 'Black', 'gray']) },
      { question_id: 42001, image_id: 42, question_type: 'is it', answer_type: 'yes/no', multiple_choice_answer: 'no', answers: answerRecords(Array(10).fill('no')) },
    ],
  };
  return { questions, annotations };
}

async function writeDataset(files = officialFiles(), subtype = 'val2014'): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-vqa-'));
  await writeFile(join(dir, `v2_OpenEnded_mscoco_${subtype}_questions.json`), JSON.stringify(files.questions));
  await writeFile(join(dir, `v2_mscoco_${subtype}_annotations.json`), JSON.stringify(files.annotations));
  return dir;
}

test('loads the official layout by split name, in annotation order, with COCO image paths', async (t) => {
  const dir = await writeDataset();
  const split = await loadVqaSplit({ dataDir: dir, split: 'val2014' });
  t.is(split.task, 'vqa');
  t.is(split.split, 'val2014');
  t.deepEqual(split.examples.map((example) => example.questionId), [7000, 42000, 42001]);
  const cat = split.examples[1];
  t.is(cat.imagePath, join(dir, 'val2014', 'COCO_val2014_000000000042.jpg'));
  t.is(cat.question, 'What color is the cat?');
  t.is(cat.answers.length, 10);
  t.is(cat.answerType, 'other');
  t.is(cat.questionType, 'what color is the');
  t.is(cat.multipleChoiceAnswer, 'black');
  t.regex(split.fingerprint, /^[0-9a-f]{64}$/);
  t.is(split.files.length, 2);
  const again = await loadVqaSplit({ files: { questions: split.files[0], annotations: split.files[1] }, split: '', imagesDir: '/images' });
  t.is(again.fingerprint, split.fingerprint);
  t.is(again.examples[1].imagePath, join('/images', 'val2014', 'COCO_val2014_000000000042.jpg'));
});

test('the fingerprint changes with the annotation bytes', async (t) => {
  const files = officialFiles();
  const a = await loadVqaSplit({ dataDir: await writeDataset(files), split: 'val2014' });
  files.annotations.annotations[0].multiple_choice_answer = 'two';
  const b = await loadVqaSplit({ dataDir: await writeDataset(files), split: 'val2014' });
  t.not(a.fingerprint, b.fingerprint);
});

test('test splits load from questions alone and refuse to score', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-vqa-'));
  await mkdir(join(dir, 'Questions'));
  const { questions } = officialFiles('test-dev2015');
  await writeFile(join(dir, 'Questions', 'v2_OpenEnded_mscoco_test-dev2015_questions.json'), JSON.stringify(questions));
  const split = await loadVqaSplit({ dataDir: dir, split: 'test-dev2015' });
  t.deepEqual(split.examples.map((example) => example.questionId), [42000, 42001, 7000]);
  t.deepEqual(split.examples[0].answers, []);
  // test-dev images live in test2015
  t.is(split.examples[0].imagePath, join(dir, 'test2015', 'COCO_test2015_000000000042.jpg'));
  const predictions = new Map(split.examples.map((example) => [example.questionId, 'yes']));
  t.throws(() => scoreVqa(split, predictions), { message: /no answers \(a test split\?\)/ });
  const out = join(dir, 'results.json');
  await vqaTask.writeSubmission(split, predictions, out);
  t.deepEqual(JSON.parse(await readFile(out, 'utf8')), [
    { question_id: 42000, answer: 'yes' },
    { question_id: 42001, answer: 'yes' },
    { question_id: 7000, answer: 'yes' },
  ]);
});

test('bad records name the file, the question and the field', async (t) => {
  const files = officialFiles();
  files.annotations.annotations[1].answers = files.annotations.annotations[1].answers.slice(0, 9);
  const dir = await writeDataset(files);
  const error = await t.throwsAsync(loadVqaSplit({ dataDir: dir, split: 'val2014' }));
  t.true(error!.message.includes('v2_mscoco_val2014_annotations.json'));
  t.true(error!.message.includes('record 42000'));
  t.true(error!.message.includes('field "answers"'));
  t.true(error!.message.includes('expected an array of 10 answer objects, got an array of 9'));

  const wrongType = officialFiles();
  (wrongType.questions.questions[2] as Record<string, unknown>).image_id = '7';
  await t.throwsAsync(loadVqaSplit({ dataDir: await writeDataset(wrongType), split: 'val2014' }), { message: /record 7000, field "image_id": expected a non-negative integer, got "7"/ });

  const repeatedId = officialFiles();
  repeatedId.annotations.annotations[0].answers[3].answer_id = 1;
  await t.throwsAsync(loadVqaSplit({ dataDir: await writeDataset(repeatedId), split: 'val2014' }), { message: /answers\[3\]\.answer_id/ });

  const unknown = officialFiles();
  unknown.annotations.annotations[0].question_id = 99;
  await t.throwsAsync(loadVqaSplit({ dataDir: await writeDataset(unknown), split: 'val2014' }), { message: /not in the questions file: 1 \(99\)/ });

  await t.throwsAsync(loadVqaSplit({ dataDir: await writeDataset(), split: 'train2014' }), {
    message: /: no questions file for split "train2014" in this folder, its Questions\/ or Annotations\/ \(expected e\.g\. v2_OpenEnded_mscoco_train2014_questions\.json\); questions files there: v2_OpenEnded_mscoco_val2014_questions\.json$/,
  });
});

async function loadedSplit(): Promise<{ dir: string; split: LoadedSplit<VqaExample> }> {
  const dir = await writeDataset();
  return { dir, split: await loadVqaSplit({ dataDir: dir, split: 'val2014' }) };
}

test('scores the split: overall, per answer type, per question type, per question', async (t) => {
  const { dir, split } = await loadedSplit();
  const file = join(dir, 'results.json');
  await writeFile(file, JSON.stringify([{ question_id: 42000, answer: 'Black' }, { question_id: 42001, answer: 'No' }, { question_id: 7000, answer: 'two' }]));
  const predictions = await readVqaPredictions(split, file);
  const report = scoreVqa(split, predictions);
  // 7000: "two" → "2", 7 other "2" and "two" → "2": 8 matches → 1; 42000: "black" ×9 after lowercasing → 1;
  // 42001: ten identical "no", nothing normalised, "No" ≠ "no" → 0
  t.deepEqual(report.official, {
    overall: 66.67,
    perAnswerType: { number: 100, other: 100, 'yes/no': 0 },
    perQuestionType: { 'how many': 100, 'what color is the': 100, 'is it': 0 },
  });
  t.is(report.metric, 'vqa-accuracy');
  // Each score names its image: the leaderboard's intervals resample images, all their questions together.
  t.deepEqual(report.perExample, [{ id: '7000', score: 100, image: '7' }, { id: '42000', score: 100, image: '42' }, { id: '42001', score: 0, image: '42' }]);
  const legacy = scoreVqa(split, predictions, { legacyNormalization: true });
  t.is(legacy.metric, 'vqa-accuracy-legacy');
  // legacy: answers keep "two" and "Black" (punctuation only): 7000 matches 7 → 1; 42000 "black" ×8 → 1; 42001 → 1
  t.is((legacy.official as { overall: number }).overall, 100);
});

test('result files with wrong ids or types are refused with counts and the first ids', async (t) => {
  const { dir, split } = await loadedSplit();
  const file = join(dir, 'bad.json');
  const write = (records: unknown) => writeFile(file, JSON.stringify(records));

  await write([{ question_id: 42000, answer: 'x' }]);
  await t.throwsAsync(readVqaPredictions(split, file), { message: /2 \(7000, 42001\) question ids of split "val2014" have no answer; nothing is scored on a subset/ });

  await write([7000, 42000, 42001, 5, 6, 8].map((question_id) => ({ question_id, answer: 'x' })));
  await t.throwsAsync(readVqaPredictions(split, file), { message: /3 \(5, 6, 8\) question ids are not in split/ });

  await write([7000, 42000, 42001, 42000].map((question_id) => ({ question_id, answer: 'x' })));
  await t.throwsAsync(readVqaPredictions(split, file), { message: /predicted more than once: 1 \(42000\)/ });

  await write([{ question_id: '7000', answer: 'x' }, { question_id: 42000, answer: 2 }, { question_id: 42001 }]);
  await t.throwsAsync(readVqaPredictions(split, file), { message: /3 malformed result records: \[0\]\.question_id is "7000", not an integer; \[1\] \(question_id 42000\)\.answer is number 2, not a string/ });

  await writeFile(file, '{"question_id": 1');
  await t.throwsAsync(readVqaPredictions(split, file), { message: /not valid JSON/ });
});

test('the EvalAI writer refuses predictions that do not cover the split', async (t) => {
  const { dir, split } = await loadedSplit();
  const out = join(dir, 'out.json');
  await t.throwsAsync(writeVqaResults(split, new Map([[7000, 'two']]), out), { message: /2 \(42000, 42001\)/ });
  await writeVqaResults(split, new Map([[7000, 'two'], [42000, 'black'], [42001, 'no']]), out);
  t.deepEqual(JSON.parse(await readFile(out, 'utf8')).map((record: { question_id: number }) => record.question_id), [7000, 42000, 42001]);
});

test('answer vocabulary: normalised multiple-choice answers, min count, count then string order', (t) => {
  const examples = ['Two', '2', 'two.', 'yes', 'Yes', 'no', 'the dog', 'dog', 'cat', 'bird', 'bird'].map((multipleChoiceAnswer) => ({ multipleChoiceAnswer }));
  t.deepEqual(buildAnswerVocabulary(examples, 2), ['2', 'bird', 'dog', 'yes']);
  t.deepEqual(buildAnswerVocabulary(examples, 1), ['2', 'bird', 'dog', 'yes', 'cat', 'no']);
  t.deepEqual(buildAnswerVocabulary([{}, { multipleChoiceAnswer: 'a' }], 1), ['']);
});
