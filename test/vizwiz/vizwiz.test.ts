import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../core/errors.ts';
import { getTask } from '../../tasks/registry.ts';
import { loadVizwizSplit, scoreVizwiz, type VizwizExample } from '../../tasks/vizwiz/index.ts';
import { getAdapter } from '../../harness/adapters/index.ts';
import { vizwizAnswers } from '../../harness/adapters/vizwiz.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { executeRun } from '../../harness/run.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';

// A hand-written VizWiz-VQA split (Annotations/val.json: 5 questions, one per answer type and a
// second "other") and a result file, whose accuracies are worked out by hand below.
const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/vizwiz');
const ANNOTATIONS = join(FIXTURE, 'Annotations/val.json');
const PREDICTIONS = join(FIXTURE, 'predictions-val.json');

// Per question, min(1, matches among the other 9 answers / 3), averaged over the 10 answers:
//  yes/no  "yes" against 7 yes, 3 no:                             every answer sees ≥ 3 matches → 100
//  number  "three" (normalised "3") against 3 (incl. "three"), 3, 4×6, unanswerable:
//          the 3 "3"s see 2 → 2/3 each, the other 7 see 3 → 1: (2 + 7) / 10  → 90
//  other   "Blue." (normalised "blue") against 2 blue, 2 dark blue, 6 navy:
//          the 2 blues see 1 → 1/3, the other 8 see 2 → 2/3: (2/3 + 16/3) / 10 → 60
//  unanswerable  "soup" against 8 unanswerable, 2 unsuitable                  → 0
//  other   "soup" against 1 soup, 9 can: the soup sees 0, the 9 cans see 1 → 1/3: 3 / 10 → 30
const EXPECTED = { overall: 56, perAnswerType: { 'yes/no': 100, number: 90, other: 45, unanswerable: 0 } };

test('the loader reads the official annotations: fields, answers, answer types, answerability', async (t) => {
  const split = await loadVizwizSplit({ split: 'val', files: { annotations: ANNOTATIONS } });
  t.is(split.task, 'vizwiz');
  t.is(split.split, 'val');
  t.is(split.examples.length, 5);
  const first = split.examples[0];
  t.is(first.id, 'VizWiz_val_00000000.jpg');
  t.is(first.imagePath, join(FIXTURE, 'val', 'VizWiz_val_00000000.jpg'));
  t.is(first.answers.length, 10);
  t.deepEqual(split.examples.map((e) => e.answerType), ['yes/no', 'number', 'other', 'unanswerable', 'other']);
  t.deepEqual(split.examples.map((e) => e.answerable), [true, true, true, false, true]);
  // The dataset folder and split name find the same file.
  t.is((await loadVizwizSplit({ dataDir: FIXTURE, split: 'val' })).fingerprint, split.fingerprint);
});

test('VQA accuracy per answer type, exactly as worked out by hand', async (t) => {
  const split = await loadVizwizSplit({ split: 'val', files: { annotations: ANNOTATIONS } });
  const report = scoreVizwiz(split, await getTask('vizwiz').readPredictions(split, PREDICTIONS) as ReadonlyMap<string, string>);
  t.deepEqual(report.official, EXPECTED);
  t.deepEqual(report.metrics, { overall: 56, 'answerType/yes/no': 100, 'answerType/number': 90, 'answerType/other': 45, 'answerType/unanswerable': 0 });
  t.is(report.metric, 'vizwiz-accuracy');
  t.deepEqual(report.perExample.map((e) => Math.round(e.score * 1e6) / 1e6), [100, 90, 60, 0, 30]);
  t.deepEqual(report.perExample.map((e) => e.image), split.examples.map((e) => e.image));
});

test('vlbench score scores a VizWiz result file end to end', async (t) => {
  const { code, stdout, stderr } = await vlbench(['score', '--task', 'vizwiz', '--annotations', ANNOTATIONS, '--predictions', PREDICTIONS]);
  t.is(code, 0, stderr);
  t.deepEqual(JSON.parse(stdout), EXPECTED);
  // The folder and split name work as for the other tasks.
  const byFolder = await vlbench(['score', '--task', 'vizwiz', '--data-dir', FIXTURE, '--split', 'val', '--predictions', PREDICTIONS]);
  t.deepEqual(JSON.parse(byFolder.stdout), EXPECTED);
});

test('bad input is refused naming the file, the record and the field', async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'vlbench-vizwiz-'));
  const annotations = join(folder, 'val.json');
  writeFileSync(annotations, JSON.stringify([{ image: 'a.jpg', question: 'What?', answers: [{ answer: 'x' }, { answer: 3 }], answer_type: 'other' }]));
  const error = await t.throwsAsync(loadVizwizSplit({ split: 'val', files: { annotations } }), { instanceOf: InputError });
  t.is(error!.message, `${annotations}, record 0, field "answers[1].answer": expected a string, got number 3`);

  const split = await loadVizwizSplit({ split: 'val', files: { annotations: ANNOTATIONS } });
  const missing = join(folder, 'missing.json');
  writeFileSync(missing, JSON.stringify([{ image: 'VizWiz_val_00000000.jpg', answer: 'yes' }]));
  const refused = await t.throwsAsync(getTask('vizwiz').readPredictions(split, missing), { instanceOf: InputError });
  t.regex(refused!.message, /4 \("VizWiz_val_00000001\.jpg".*images of split "val" have no answer/);
  const mistyped = join(folder, 'mistyped.json');
  writeFileSync(mistyped, JSON.stringify([{ question_id: 1, answer: 'yes' }]));
  await t.throwsAsync(getTask('vizwiz').readPredictions(split, mistyped), { message: /\[0\]\.image is nothing \(field missing\), not a string/ });
});

test('the VizWiz adapter trains on the majority answers at their soft scores', async (t) => {
  t.is(getAdapter('vizwiz').task, 'vizwiz');
  const split = await loadVizwizSplit({ split: 'val', files: { annotations: ANNOTATIONS } });
  const examples: VizwizExample[] = split.examples;
  const vocabulary = vizwizAnswers.vocabulary(examples, 1);
  t.deepEqual(vocabulary, ['4', 'can', 'navy', 'unanswerable', 'yes']);
  const targets = vizwizAnswers.targets(examples, vocabulary);
  // "how many coins": "4" (6 of 10) at 1, "unanswerable" (1 of 10) at 0.3; "3" is outside the vocabulary.
  t.deepEqual(targets[1].map(({ answer, score }) => [vocabulary[answer], Math.round(score * 10) / 10]), [['4', 1], ['unanswerable', 0.3]]);
});

/**
 * A VizWiz-shaped folder made from SynthScenes' VQA (first question of each image, its ten
 * answers and answer type), images linked under <split>/ as VizWiz names them.
 */
async function vizwizFolderFromSynthScenes(): Promise<string> {
  const synth = join(mkdtempSync(join(tmpdir(), 'vlbench-vizwiz-synth-')), 'synth');
  // 32 px matches the tiny fixture CLIP's input size.
  await generateSynthScenes({ outDir: synth, images: 20, seed: 3, size: 32, domains: ['source'] });
  const out = mkdtempSync(join(tmpdir(), 'vlbench-vizwiz-data-'));
  mkdirSync(join(out, 'Annotations'));
  for (const split of ['train', 'val']) {
    const subtype = `${split}_source`;
    const read = (kind: string) => JSON.parse(readFileSync(join(synth, 'vqa', kind === 'questions' ? `v2_OpenEnded_synthscenes_${subtype}_questions.json` : `v2_synthscenes_${subtype}_annotations.json`), 'utf8'));
    const annotations = new Map((read('annotations').annotations as { question_id: number; answers: { answer: string }[]; answer_type: string }[]).map((a) => [a.question_id, a]));
    mkdirSync(join(out, split));
    const seen = new Set<number>();
    const records = [];
    for (const question of read('questions').questions as { question_id: number; image_id: number; question: string }[]) {
      if (seen.has(question.image_id)) continue;
      seen.add(question.image_id);
      const image = `VizWiz_${split}_${String(question.image_id).padStart(8, '0')}.jpg`;
      symlinkSync(join(synth, 'images', subtype, `COCO_${subtype}_${String(question.image_id).padStart(12, '0')}.jpg`), join(out, split, image));
      const annotation = annotations.get(question.question_id)!;
      records.push({ image, question: question.question, answers: annotation.answers.map((a) => ({ answer: a.answer, answer_confidence: 'yes' })), answer_type: annotation.answer_type, answerable: 1 });
    }
    writeFileSync(join(out, 'Annotations', `${split}.json`), JSON.stringify(records));
  }
  return out;
}

test('vlbench run trains VizWiz end to end, and vlbench score reads its result file back to the same numbers', async (t) => {
  const data = await vizwizFolderFromSynthScenes();
  const runsDir = mkdtempSync(join(tmpdir(), 'vlbench-vizwiz-runs-'));
  const fixtureModel = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/clip-tiny');
  const outcome = await executeRun({ task: 'vizwiz', dataDir: data, trainSplit: 'train', split: 'val', modelDir: fixtureModel, method: 'ft', sets: {}, seed: 1, epochs: 1, backend: 'wasm' }, { db: null, runsDir, log: () => undefined });
  t.deepEqual(outcome.splits.map((s) => s.split), ['val']);
  const predictions = join(outcome.runDir, 'predictions', 'val.json');
  const records = JSON.parse(readFileSync(predictions, 'utf8')) as { image: string; answer: string }[];
  t.true(records.every((record) => record.image.startsWith('VizWiz_val_') && typeof record.answer === 'string'));
  const scored = await vlbench(['score', '--task', 'vizwiz', '--data-dir', data, '--split', 'val', '--predictions', predictions]);
  t.is(scored.code, 0, scored.stderr);
  t.is(JSON.parse(scored.stdout).overall, outcome.splits[0].report.metrics.overall);
});
