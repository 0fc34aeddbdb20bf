import test from 'ava';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { runScore } from '../../harness/score-files.ts';
import {
  GENDER_NEUTRAL_NAMES,
  VCR_CSV_COLUMNS,
  argmaxFirst,
  checkVcrImageData,
  joinWords,
  renderVcrTokens,
  scoreVcr,
  vcrTask,
  type VcrPredictions,
  type VcrProbabilities,
} from '../../tasks/vcr/index.ts';

type Json = Record<string, unknown>;

/** What every refusal of a split without its images says after naming the file. */
const TRAINING_NEEDS =
  'Training and prediction need every image and its metadata json (boxes) under vcr1images/ (the release\'s vcr1images.zip, unpacked beside vcr1annots/); scoring needs only the jsonl';

/** A record in the official val.jsonl layout (rowanz/r2c), with only the fields that matter changed. */
function vcrRecord(n: number, overrides: Json = {}): Json {
  return {
    movie: '3015_CHARLIE_ST_CLOUD',
    objects: ['person', 'person', 'person', 'car'],
    interesting_scores: [0],
    answer_likelihood: 'possible',
    img_fn: `lsmdc_3015_CHARLIE_ST_CLOUD/3015_CHARLIE_ST_CLOUD_00.23.57.935-00.24.00.783@${n}.jpg`,
    metadata_fn: `lsmdc_3015_CHARLIE_ST_CLOUD/3015_CHARLIE_ST_CLOUD_00.23.57.935-00.24.00.783@${n}.json`,
    answer_orig: 'No she does not',
    question_orig: 'Does 3 feel comfortable?',
    rationale_orig: 'She is standing with her arms crossed and looks disturbed',
    question: ['Does', [2], 'feel', 'comfortable', '?'],
    answer_match_iter: [3, 0, 2, 1],
    answer_sources: [3287, 0, 10184, 2260],
    answer_choices: [
      ['Yes', 'because', [0, 1], 'are', 'smiling', '.'],
      ['No', 'she', 'does', 'not', '.'],
      ['Yes', ',', 'she', 'is', 'near', 'the', [3], '.'],
      [[0], "'s", 'hand', 'is', 'cold', '.'],
    ],
    answer_label: 1,
    rationale_choices: [
      ['There', 'is', 'snow', '.'],
      ['She', 'is', 'standing', 'with', 'her', 'arms', 'crossed', '.'],
      [[0, 1, 2], 'do', "n't", 'look', 'happy', '.'],
      [[2], 'is', 'laying', 'in', 'bed', '.'],
    ],
    rationale_sources: [1921, 0, 9750, 25743],
    rationale_match_iter: [3, 0, 2, 1],
    rationale_label: 1,
    img_id: `val-${n}`,
    question_number: 0,
    annot_id: `val-${n}`,
    match_fold: `val-${n}`,
    match_index: 0,
    ...overrides,
  };
}

const METADATA = {
  boxes: [
    [10, 20, 110, 220, 0.99],
    [120, 20, 220, 230, 0.98],
    [230, 30, 330, 240, 0.97],
    [340, 100, 500, 200, 0.9],
  ],
  segms: [[[[10, 20], [110, 20], [110, 220]]], [], [], []],
  names: ['person', 'person', 'person', 'car'],
  width: 640,
  height: 360,
};

/** Writes a dataset folder; `official` puts the images under vcr1images/ as the release does. */
function writeDataset(records: Json[], { official = true, split = 'val', metadata = METADATA as unknown } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-vcr-'));
  const imagesRoot = official ? join(dir, 'vcr1images') : dir;
  mkdirSync(join(imagesRoot, 'lsmdc_3015_CHARLIE_ST_CLOUD'), { recursive: true });
  for (const record of records) {
    const imgFn = String(record.img_fn);
    const metadataFn = String(record.metadata_fn);
    if (!imgFn.includes('..') && !imgFn.startsWith('/')) writeFileSync(join(imagesRoot, imgFn), 'jpg');
    if (!metadataFn.includes('..') && !metadataFn.startsWith('/')) writeFileSync(join(imagesRoot, metadataFn), JSON.stringify(metadata));
  }
  writeFileSync(join(dir, `${split}.jsonl`), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return dir;
}

function probabilities(answer: number[], rationaleRows: Record<number, number[]> = {}): VcrProbabilities {
  const uniform = [0.25, 0.25, 0.25, 0.25];
  return { answer, rationaleGivenAnswer: [0, 1, 2, 3].map((a) => rationaleRows[a] ?? uniform) };
}

test('R2C names, in R2C order, are given by object index; multi-object tags are joined', (t) => {
  t.deepEqual(GENDER_NEUTRAL_NAMES.slice(0, 4), ['Casey', 'Riley', 'Jessie', 'Jackie']);
  t.is(GENDER_NEUTRAL_NAMES.length, 15);
  const objects = ['person', 'person', 'dog', 'person', ...Array(11).fill('chair'), 'person', 'person'];
  t.is(renderVcrTokens(['Why', 'is', [0], 'pointing', 'at', [1, 2], '?'], objects).text, 'Why is Casey pointing at Riley and dog?');
  t.is(renderVcrTokens([[0, 1, 3], 'are', 'here', '.'], objects).text, 'Casey, Riley and Jackie are here.');
  // Index 15 wraps round to the first name, 16 to the second (GENDER_NEUTRAL_NAMES[index mod 15]).
  t.is(renderVcrTokens([[15], 'and', [16]], objects).text, 'Casey and Riley');
  const rendered = renderVcrTokens([[0], "'s", 'hat', 'and', [1, 2, 3], 'do', "n't", 'match', '(', 'really', ')', '.'], objects);
  t.is(rendered.text, "Casey's hat and Riley, dog and Jackie don't match (really).");
  t.deepEqual(rendered.words, ['Casey', "'s", 'hat', 'and', 'Riley', ',', 'dog', 'and', 'Jackie', 'do', "n't", 'match', '(', 'really', ')', '.']);
  t.deepEqual(rendered.wordTags, [0, -1, -1, -1, 1, -1, 2, -1, 3, -1, -1, -1, -1, -1, -1, -1]);
  t.is(joinWords(['Is', 'it', '?', '?']), 'Is it??');
});

test('loads r2c\'s layout (vcr1images/ inside the jsonl folder): paths, boxes, rendered texts, labels', async (t) => {
  const dir = writeDataset([vcrRecord(0), vcrRecord(1, { question_number: 1, answer_label: 3, rationale_label: 2 })]);
  const split = await vcrTask.load({ split: 'val', dataDir: dir });
  t.is(split.task, 'vcr');
  t.is(split.split, 'val');
  t.regex(split.fingerprint, /^[0-9a-f]{64}$/);
  t.deepEqual(split.files, [join(dir, 'val.jsonl')]);
  t.is(split.examples.length, 2);
  const [first, second] = split.examples;
  t.is(first.id, 'val-0');
  t.is(first.imagePath, join(dir, 'vcr1images', 'lsmdc_3015_CHARLIE_ST_CLOUD', '3015_CHARLIE_ST_CLOUD_00.23.57.935-00.24.00.783@0.jpg'));
  t.is(first.metadataPath, join(dir, 'vcr1images', 'lsmdc_3015_CHARLIE_ST_CLOUD', '3015_CHARLIE_ST_CLOUD_00.23.57.935-00.24.00.783@0.json'));
  t.deepEqual(first.boxes[3], [340, 100, 500, 200, 0.9]);
  t.is(first.imageWidth, 640);
  t.is(first.imageHeight, 360);
  t.deepEqual(first.objects, ['person', 'person', 'person', 'car']);
  t.is(first.question.text, 'Does Jessie feel comfortable?');
  t.deepEqual(first.question.tokens, ['Does', [2], 'feel', 'comfortable', '?']);
  t.deepEqual(first.answers.map((a) => a.text), [
    'Yes because Casey and Riley are smiling.',
    'No she does not.',
    'Yes, she is near the car.',
    "Casey's hand is cold.",
  ]);
  t.is(first.rationales[2].text, "Casey, Riley and Jessie don't look happy.");
  t.is(first.answerLabel, 1);
  t.is(first.rationaleLabel, 1);
  t.is(second.answerLabel, 3);
  t.is(second.rationaleLabel, 2);
  t.is(second.questionNumber, 1);
  t.is(second.movie, '3015_CHARLIE_ST_CLOUD');

  // Same bytes, same fingerprint; the jsonl file given directly finds the same images.
  // As `vlbench score --annotations val.jsonl` calls it: no split name, so the file names it.
  const again = await vcrTask.load({ split: '', files: { annotations: join(dir, 'val.jsonl') } });
  t.is(again.split, 'val');
  t.is(again.fingerprint, split.fingerprint);
  t.is(again.examples[0].imagePath, first.imagePath);
});

test('without vcr1images/, paths resolve against the dataset folder (SynthScenes and flat copies)', async (t) => {
  const dir = writeDataset([vcrRecord(0)], { official: false, split: 'val_source' });
  const split = await vcrTask.load({ split: 'val_source', dataDir: dir, splitLabel: 'val/source' });
  t.is(split.split, 'val/source');
  t.is(split.examples[0].imagePath, join(dir, 'lsmdc_3015_CHARLIE_ST_CLOUD', '3015_CHARLIE_ST_CLOUD_00.23.57.935-00.24.00.783@0.jpg'));
});

test('img_fn and metadata_fn that leave the dataset folder are refused', async (t) => {
  for (const [field, path] of [
    ['img_fn', '../../etc/passwd'],
    ['img_fn', '/etc/passwd'],
    ['metadata_fn', 'lsmdc_x/../../../secret.json'],
  ]) {
    const dir = writeDataset([vcrRecord(0), vcrRecord(1, { [field]: path })]);
    const error = await t.throwsAsync(vcrTask.load({ split: 'val', dataDir: dir }), { instanceOf: InputError });
    t.true(error!.message.includes(join(dir, 'val.jsonl')), error!.message);
    t.true(error!.message.includes('line 2 (val-1)'), error!.message);
    t.true(error!.message.includes(`field "${field}"`), error!.message);
    t.regex(error!.message, /absolute path|outside the dataset folder/);
  }
});

test('bad records are refused with file, line, annot_id and field', async (t) => {
  const cases: [Json, RegExp][] = [
    [{ answer_choices: [['a'], ['b'], ['c']] }, /line 2 \(val-1\)", field "answer_choices": expected 4 choices, got an array of 3/],
    [{ question: ['Is', [4], 'ok', '?'] }, /field "question\[1\]": expected a word or a detection tag of indexes 0\.\.3 into objects/],
    [{ answer_label: 4 }, /field "answer_label": expected an integer 0\.\.3, got number 4/],
    [{ rationale_label: undefined }, /field "rationale_label": expected both labels or neither/],
    [{ annot_id: 'val-0' }, /duplicate annot_id, first seen on line 1/],
    [{ img_id: 7 }, /field "img_id": expected a non-empty string, got number 7/],
  ];
  for (const [overrides, expected] of cases) {
    const dir = writeDataset([vcrRecord(0), vcrRecord(1, overrides)]);
    const error = await t.throwsAsync(vcrTask.load({ split: 'val', dataDir: dir }), { instanceOf: InputError });
    t.regex(error!.message, expected);
  }
  const broken = writeDataset([vcrRecord(0)]);
  writeFileSync(join(broken, 'val.jsonl'), JSON.stringify(vcrRecord(0)) + '\n{"annot_id": \n');
  await t.throwsAsync(vcrTask.load({ split: 'val', dataDir: broken }), { message: /val\.jsonl, record "line 2": not valid JSON/ });

  await t.throwsAsync(vcrTask.load({ split: 'val' }), { message: /VCR split "val": give the dataset folder and the split/ });

  const mixed = writeDataset([vcrRecord(0), vcrRecord(1, { answer_label: undefined, rationale_label: undefined })]);
  await t.throwsAsync(vcrTask.load({ split: 'val', dataDir: mixed }), { message: /some records have answer_label\/rationale_label and some do not/ });
});

test('metadata is checked when present: box count, box shape; an absent one loads, and its boxes cannot be read', async (t) => {
  const noMetadata = writeDataset([vcrRecord(0)]);
  writeFileSync(join(noMetadata, 'val.jsonl'), JSON.stringify(vcrRecord(0, { metadata_fn: 'lsmdc_3015_CHARLIE_ST_CLOUD/missing.json' })));
  const split = await vcrTask.load({ split: 'val', dataDir: noMetadata });
  const [example] = split.examples;
  t.true(example.metadataMissing);
  t.is(example.answerLabel, 1);
  const missing = join(noMetadata, 'vcr1images', 'lsmdc_3015_CHARLIE_ST_CLOUD', 'missing.json');
  const error = t.throws(() => example.boxes, { instanceOf: InputError });
  t.is(error!.message, `${missing}: metadata of line 1 (val-0) in ${join(noMetadata, 'val.jsonl')}: file not found. ${TRAINING_NEEDS}`);
  t.throws(() => example.imageWidth, { message: error!.message });

  // A metadata json consistent in itself (3 boxes, 3 segms) that describes fewer objects than the record names.
  const fewBoxes = writeDataset([vcrRecord(0)], { metadata: { ...METADATA, boxes: METADATA.boxes.slice(0, 3), segms: METADATA.segms.slice(0, 3), names: METADATA.names.slice(0, 3) } });
  await t.throwsAsync(vcrTask.load({ split: 'val', dataDir: fewBoxes }), { message: /field "boxes": 4 objects in .*val\.jsonl line 1 \(val-0\), but 3 boxes in the metadata/ });

  const badBox = writeDataset([vcrRecord(0)], { metadata: { ...METADATA, boxes: [[1, 2, 3, 4], ...METADATA.boxes.slice(1)] } });
  await t.throwsAsync(vcrTask.load({ split: 'val', dataDir: badBox }), { message: /record "box 0", field "boxes": expected \[x1, y1, x2, y2, score\]/ });
});

test('Q→A, QA→R (given the gold answer) and Q→AR, hand-computed, with first-index ties', async (t) => {
  const dir = writeDataset([
    vcrRecord(0, { answer_label: 2, rationale_label: 1 }),
    vcrRecord(1, { answer_label: 0, rationale_label: 3 }),
    vcrRecord(2, { answer_label: 0, rationale_label: 0 }),
    vcrRecord(3, { answer_label: 1, rationale_label: 2 }),
  ]);
  const split = await vcrTask.load({ split: 'val', dataDir: dir });
  const predictions: VcrPredictions = new Map([
    // answer right (2), rationale given gold answer 2 right (1): both right.
    ['val-0', probabilities([0.1, 0.2, 0.6, 0.1], { 0: [0.9, 0.1, 0, 0], 2: [0.1, 0.7, 0.1, 0.1] })],
    // answer wrong (picks 1); the rationale row of the GOLD answer 0 is right (3), the picked answer's row is not.
    ['val-1', probabilities([0.1, 0.8, 0.05, 0.05], { 0: [0, 0, 0, 1], 1: [1, 0, 0, 0] })],
    // four-way tie → choice 0 = answer_label; two-way rationale tie → 0 = rationale_label.
    ['val-2', probabilities([0.25, 0.25, 0.25, 0.25], { 0: [0.5, 0.5, 0, 0] })],
    // tie between 0 and 1 picks 0, label is 1: wrong; rationale picks 3, label 2: wrong.
    ['val-3', probabilities([0.4, 0.4, 0.1, 0.1], { 1: [0.1, 0.2, 0.3, 0.4] })],
  ]);
  const report = vcrTask.score(split, predictions);
  t.deepEqual(report.official, { q2a: 50, qa2r: 75, q2ar: 50 });
  t.deepEqual(report.metrics, { q2a: 50, qa2r: 75, q2ar: 50 });
  t.is(report.primary, 'q2ar');
  t.is(report.metric, 'vcr-accuracy');
  t.deepEqual(report.perExample, [
    { id: 'val-0', score: 100, image: 'val-0' },
    { id: 'val-1', score: 0, image: 'val-1' },
    { id: 'val-2', score: 100, image: 'val-2' },
    { id: 'val-3', score: 0, image: 'val-3' },
  ]);
  t.is(argmaxFirst([1, 3, 3, 2]), 1);

  // A third of the examples right: ×100 without rounding.
  const three = { ...split, examples: split.examples.slice(0, 3) };
  const partial: VcrPredictions = new Map([...predictions].slice(0, 3));
  t.deepEqual(scoreVcr(three, partial).official, { q2a: (100 * 2) / 3, qa2r: 100, q2ar: (100 * 2) / 3 });
});

test('leaderboard CSV: written in the r2c column layout, read back, any column order', async (t) => {
  const dir = writeDataset([vcrRecord(0), vcrRecord(1)]);
  const split = await vcrTask.load({ split: 'val', dataDir: dir });
  const predictions: VcrPredictions = new Map([
    ['val-0', { answer: [0.1, 0.2, 0.3, 0.4], rationaleGivenAnswer: [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [1e-7, 0.5, 0.25, 0.25], [0, 0, 0, 1]] }],
    ['val-1', { answer: [0.7, 0.1, 0.1, 0.1], rationaleGivenAnswer: [[0.3, 0.3, 0.3, 0.1], [0.25, 0.25, 0.25, 0.25], [0.1, 0.1, 0.1, 0.7], [1 / 3, 1 / 3, 1 / 6, 1 / 6]] }],
  ]);
  const file = join(dir, 'submission.csv');
  await vcrTask.writeSubmission(split, predictions, file);
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.is(lines[0], 'annot_id,answer_0,answer_1,answer_2,answer_3,' +
    [0, 1, 2, 3].flatMap((a) => [0, 1, 2, 3].map((r) => `rationale_conditioned_on_a${a}_${r}`)).join(','));
  t.is(lines.length, 3);
  t.true(lines[1].startsWith('val-0,0.1,0.2,0.3,0.4,0.1,'));
  t.deepEqual(await vcrTask.readPredictions(split, file), predictions);

  // Same data with the columns reversed and CRLF line ends reads the same.
  const rows = lines.map((line) => line.split(',').reverse().join(','));
  const reversed = join(dir, 'reversed.csv');
  writeFileSync(reversed, rows.join('\r\n') + '\r\n');
  t.deepEqual(await vcrTask.readPredictions(split, reversed), predictions);
  t.is(VCR_CSV_COLUMNS.length, 21);
});

test('bad prediction CSVs are refused with counts and the first ids', async (t) => {
  const dir = writeDataset([0, 1, 2, 3, 4, 5, 6].map((n) => vcrRecord(n)));
  const split = await vcrTask.load({ split: 'val', dataDir: dir });
  const header = VCR_CSV_COLUMNS.join(',');
  const row = (id: string, values = Array(20).fill('0.25')) => [id, ...values].join(',');
  const ids = split.examples.map((e) => e.id);
  const write = (name: string, lines: string[]) => {
    const file = join(dir, name);
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  };

  const missing = write('missing.csv', [header, ...ids.slice(0, 5).map((id) => row(id))]);
  await t.throwsAsync(vcrTask.readPredictions(split, missing), { message: /missing annot_ids of split "val": 2 \("val-5", "val-6"\)/ });

  const extra = write('extra.csv', [header, ...[...ids, 'test-1', 'x-1', 'x-2', 'x-3', 'x-4', 'x-5'].map((id) => row(id))]);
  await t.throwsAsync(vcrTask.readPredictions(split, extra), {
    message: /annot_ids not in split "val": 6 \(first 5: "test-1", "x-1", "x-2", "x-3", "x-4"\)/,
  });

  const duplicated = write('dup.csv', [header, ...ids.map((id) => row(id)), row('val-3'), row('val-3')]);
  await t.throwsAsync(vcrTask.readPredictions(split, duplicated), { message: /annot_ids that appear more than once: 1 \("val-3"\)/ });

  const nan = write('nan.csv', [header, row('val-0'), row('val-1', [...Array(7).fill('0.25'), 'NaN', ...Array(12).fill('0.25')])]);
  await t.throwsAsync(vcrTask.readPredictions(split, nan), { message: /record "line 3 \(val-1\)", field "rationale_conditioned_on_a0_3": expected a finite number, got "NaN"/ });

  const empty = write('empty-cell.csv', [header, row('val-0', [...Array(19).fill('0.25'), ''])]);
  await t.throwsAsync(vcrTask.readPredictions(split, empty), { message: /field "rationale_conditioned_on_a3_3": expected a finite number, got ""/ });

  const twentyColumns = write('short-header.csv', [VCR_CSV_COLUMNS.slice(0, 20).join(','), ...ids.map((id) => row(id, Array(19).fill('0.25')))]);
  await t.throwsAsync(vcrTask.readPredictions(split, twentyColumns), { message: /expected the 21 leaderboard columns .* got 20: missing columns 1 \("rationale_conditioned_on_a3_3"\)/ });

  const shortRow = write('short-row.csv', [header, row('val-0'), row('val-1', Array(19).fill('0.25'))]);
  await t.throwsAsync(vcrTask.readPredictions(split, shortRow), { message: /record "line 3": expected 21 fields, got 20/ });

  await t.throwsAsync(vcrTask.readPredictions(split, join(dir, 'nope.csv')), { message: /nope\.csv: predictions file not found/ });
});

test('the test split loads without labels, writes a submission, and refuses to be scored', async (t) => {
  const records = [0, 1].map((n) => vcrRecord(n, { annot_id: `test-${n}`, img_id: `test-${n}`, answer_label: undefined, rationale_label: undefined }));
  const dir = writeDataset(records, { split: 'test' });
  const split = await vcrTask.load({ split: 'test', dataDir: dir });
  t.is(split.examples[0].answerLabel, undefined);
  const predictions: VcrPredictions = new Map(split.examples.map((e) => [e.id, probabilities([0.1, 0.2, 0.3, 0.4])]));
  const file = join(dir, 'test-submission.csv');
  await vcrTask.writeSubmission(split, predictions, file);
  t.deepEqual(await vcrTask.readPredictions(split, file), predictions);
  t.throws(() => vcrTask.score(split, predictions), { message: /has no labels for 2 \("test-0", "test-1"\) examples/ });
  // Values that are not finite never reach a file.
  const bad: VcrPredictions = new Map([...predictions].map(([id, p]) => [id, { ...p, answer: [NaN, 0, 0, 0] }]));
  await t.throwsAsync(vcrTask.writeSubmission(split, bad, join(dir, 'bad.csv')), { message: /record "test-0", field "answer_0": expected a finite number, got NaN/ });
});

// ------------------------------------------------------------------------------------------------
// The release layout: vcr1annots/{train,val,test}.jsonl beside vcr1images/ (test/fixtures/vcr-release,
// written by scripts/make-vcr-release-fixture.ts: real record fields, [0, 2]-style tags, segms).

const release = join(import.meta.dirname, '..', 'fixtures', 'vcr-release');
const releaseVal = join(release, 'vcr1annots', 'val.jsonl');
const releaseImage = (name: string) => join(release, 'vcr1images', 'lsmdc_3015_CHARLIE_ST_CLOUD', `3015_CHARLIE_ST_CLOUD_${name}`);

/** Model outputs for the fixture's val split; labels (answer, rationale): val-0 (1, 1), val-1 (0, 0), val-2 (0, 0), val-3 (3, 2). */
const RELEASE_VAL_PREDICTIONS: VcrPredictions = new Map([
  // answer right, rationale given the gold answer right: Q→AR right.
  ['val-0', probabilities([0.1, 0.7, 0.1, 0.1], { 1: [0.2, 0.5, 0.2, 0.1] })],
  // answer right, rationale wrong.
  ['val-1', probabilities([0.6, 0.2, 0.1, 0.1], { 0: [0.1, 0.8, 0.05, 0.05] })],
  // answer wrong, rationale given the gold answer 0 right.
  ['val-2', probabilities([0.1, 0.2, 0.6, 0.1], { 0: [0.9, 0.05, 0.05, 0] })],
  // both right.
  ['val-3', probabilities([0.1, 0.1, 0.1, 0.7], { 3: [0, 0, 1, 0] })],
]);
const RELEASE_VAL_SCORES = { q2a: 75, qa2r: 75, q2ar: 50 };

test('the release layout loads from its root, from vcr1annots/ and from the jsonl alone, finding vcr1images/ beside it', async (t) => {
  const split = await vcrTask.load({ split: 'val', dataDir: release });
  t.is(split.split, 'val');
  t.deepEqual(split.files, [releaseVal]);
  t.deepEqual(split.examples.map((e) => e.id), ['val-0', 'val-1', 'val-2', 'val-3']);
  const [first, second, third] = split.examples;
  t.is(first.imagePath, releaseImage('00.23.57.935-00.24.00.783@0.jpg'));
  t.is(first.metadataPath, releaseImage('00.23.57.935-00.24.00.783@0.json'));
  t.is(first.metadataMissing, undefined);
  t.deepEqual(first.boxes, [[1, 1, 16, 35, 0.99], [17, 2, 32, 35, 0.98], [33, 1, 47, 35, 0.97], [48, 10, 63, 30, 0.9]]);
  t.is(first.imageWidth, 64);
  t.is(first.imageHeight, 36);
  t.is(first.question.text, 'Does Jessie feel comfortable?');
  // A two-object tag [0, 2]: both names, joined.
  t.is(second.question.text, 'Where are Casey and Jessie going?');
  t.is(second.rationales[0].text, 'Casey holds the keys of the car.');
  t.is(third.answers.map((a) => a.text).join(' | '), 'Coffee. | Soup. | Nothing. | Paint.');
  t.deepEqual(third.boxes, [[5, 5, 35, 35, 0.97], [40, 20, 50, 30, 0.81]]);
  t.notThrows(() => checkVcrImageData(split));

  for (const options of [{ split: 'val', dataDir: join(release, 'vcr1annots') }, { split: '', files: { annotations: releaseVal } }]) {
    const again = await vcrTask.load(options);
    t.is(again.split, 'val');
    t.is(again.fingerprint, split.fingerprint);
    t.deepEqual(again.examples.map((e) => e.imagePath), split.examples.map((e) => e.imagePath));
  }

  const train = await vcrTask.load({ split: 'train', dataDir: release });
  t.is(train.examples.length, 4);
  t.is(train.examples[0].question.text, 'Why is Casey looking at Riley?');
  const testSplit = await vcrTask.load({ split: 'test', dataDir: release });
  t.deepEqual(testSplit.examples.map((e) => e.answerLabel), [undefined, undefined]);
  await t.throwsAsync(vcrTask.load({ split: 'dev', dataDir: release }), {
    message: `${release}: VCR split "dev": no dev.jsonl (looked for ${join(release, 'dev.jsonl')} and ${join(release, 'vcr1annots', 'dev.jsonl')})`,
  });
});

test('vlbench score --task vcr --annotations vcr1annots/val.jsonl scores the release layout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-vcr-release-'));
  try {
    const split = await vcrTask.load({ split: 'val', dataDir: release });
    const csv = join(dir, 'val.csv');
    await vcrTask.writeSubmission(split, RELEASE_VAL_PREDICTIONS, csv);
    const report = await runScore({ task: 'vcr', annotations: releaseVal, predictions: csv });
    t.deepEqual(report.official, RELEASE_VAL_SCORES);
    t.deepEqual(report.perExample, [{ id: 'val-0', score: 100, image: 'val-2' }, { id: 'val-1', score: 0, image: 'val-2' }, { id: 'val-2', score: 0, image: 'val-3' }, { id: 'val-3', score: 100, image: 'val-3' }]);
    t.deepEqual((await runScore({ task: 'vcr', dataDir: release, split: 'val', predictions: csv })).official, RELEASE_VAL_SCORES);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a jsonl without its metadata and images scores the same, with the same fingerprint; training on it is refused clearly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-vcr-labels-only-'));
  try {
    // A leaderboard submitter's copy: vcr1annots/ only.
    const annotations = join(dir, 'vcr1annots', 'val.jsonl');
    mkdirSync(join(dir, 'vcr1annots'));
    copyFileSync(releaseVal, annotations);
    const full = await vcrTask.load({ split: 'val', dataDir: release });
    const labelsOnly = await vcrTask.load({ split: '', files: { annotations } });
    t.is(labelsOnly.fingerprint, full.fingerprint);
    t.deepEqual(labelsOnly.examples.map((e) => [e.id, e.answerLabel, e.rationaleLabel, e.metadataMissing]), [
      ['val-0', 1, 1, true], ['val-1', 0, 0, true], ['val-2', 0, 0, true], ['val-3', 3, 2, true],
    ]);
    t.deepEqual(labelsOnly.examples.map((e) => e.question.text), full.examples.map((e) => e.question.text));

    const csv = join(dir, 'val.csv');
    await vcrTask.writeSubmission(labelsOnly, RELEASE_VAL_PREDICTIONS, csv);
    t.deepEqual((await runScore({ task: 'vcr', annotations, predictions: csv })).official, RELEASE_VAL_SCORES);

    // The paths are where the images would be: beside vcr1annots/ (vcr1images/ does not exist, so the jsonl's folder).
    const metadataPath = join(dir, 'vcr1annots', 'lsmdc_3015_CHARLIE_ST_CLOUD', '3015_CHARLIE_ST_CLOUD_00.23.57.935-00.24.00.783@0.json');
    t.is(labelsOnly.examples[0].metadataPath, metadataPath);
    t.throws(() => checkVcrImageData(labelsOnly), {
      instanceOf: InputError,
      message: `${annotations}, record "val-0": VCR split "val": 4 of 4 examples have no metadata json (first: ${metadataPath}). ${TRAINING_NEEDS}`,
    });
    t.throws(() => labelsOnly.examples[2].boxes, { instanceOf: InputError, message: new RegExp(`metadata of line 3 \\(val-2\\) in ${escapeRegExp(annotations)}: file not found`) });

    // Metadata present but an image missing: also refused before any training.
    const partial = join(dir, 'partial');
    cpSync(release, partial, { recursive: true });
    const missingImage = join(partial, 'vcr1images', 'lsmdc_3015_CHARLIE_ST_CLOUD', '3015_CHARLIE_ST_CLOUD_00.24.13.102-00.24.16.001@3.jpg');
    rmSync(missingImage);
    const withoutImage = await vcrTask.load({ split: 'val', dataDir: partial });
    t.throws(() => checkVcrImageData(withoutImage), {
      message: `${join(partial, 'vcr1annots', 'val.jsonl')}, record "val-2": VCR split "val": 2 of 4 examples have no image file (first: ${missingImage}). ${TRAINING_NEEDS}`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
