import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { InputError } from '../../core/errors.ts';
import { readImageBytes } from '../../core/image-bytes.ts';
import { executeRun } from '../../harness/run.ts';
import { runScore } from '../../harness/score-files.ts';
import { loadGqaSplit } from '../../tasks/gqa/index.ts';
import { readHubParquetImage } from '../../tasks/hub-images.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { GQA_IMAGE_FIELDS, GQA_INSTRUCTION_FIELDS, parquetOf, writeHubCache } from '../support/hub-parquet-writer.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

const COMMIT_A = 'a'.repeat(40);
const COMMIT_B = 'b'.repeat(40);

/** A GQA question as the official questions file has it (the fields vlbench reads), keyed by `id`. */
interface Question {
  id: string;
  imageId: string;
  question: string;
  answer: string;
  fullAnswer: string;
  isBalanced: boolean;
  structural: string;
  semantic: string;
  detailed: string;
  global: string | null;
  entailed: string[];
  equivalent: string[];
  program: { operation: string; argument: string; dependencies: number[] }[];
}

const select = (name: string) => ({ operation: 'select', argument: `${name} (1)`, dependencies: [] });
/** Eight questions on three images: query and verify, one unbalanced, entailed pairs for consistency, answer groups for distribution. */
const QUESTIONS: Question[] = [
  { id: '201307251', imageId: '2354786', question: 'Is it overcast?', answer: 'no', fullAnswer: 'No, it is clear.', isBalanced: true, structural: 'verify', semantic: 'global', detailed: 'weatherVerify', global: null, entailed: ['201307252'], equivalent: ['201307251'], program: [{ operation: 'verify weather', argument: 'overcast', dependencies: [] }] },
  { id: '201307252', imageId: '2354786', question: 'Is the sky clear?', answer: 'yes', fullAnswer: 'Yes, the sky is clear.', isBalanced: true, structural: 'verify', semantic: 'attr', detailed: 'verifyAttr', global: null, entailed: ['201307251'], equivalent: ['201307252'], program: [select('sky'), { operation: 'verify', argument: 'clear', dependencies: [0] }] },
  { id: '201307253', imageId: '2354786', question: 'What color is the t-shirt?', answer: 't-shirt', fullAnswer: 'The shirt is a t-shirt.', isBalanced: true, structural: 'query', semantic: 'attr', detailed: 'chooseAttr', global: 'shirt', entailed: [], equivalent: [], program: [select('shirt'), { operation: 'query', argument: 'color', dependencies: [0] }] },
  { id: '20968379', imageId: '2375429', question: 'Who is wearing the hat?', answer: 'man', fullAnswer: 'The man is wearing the hat.', isBalanced: true, structural: 'query', semantic: 'rel', detailed: 'relS', global: 'person', entailed: [], equivalent: ['20968379'], program: [select('hat'), { operation: 'relate', argument: 'person,wearing,s (2)', dependencies: [0] }, { operation: 'query', argument: 'name', dependencies: [1] }] },
  { id: '20968380', imageId: '2375429', question: 'What is the man wearing?', answer: 'hat', fullAnswer: 'The man is wearing a hat.', isBalanced: false, structural: 'query', semantic: 'rel', detailed: 'relO', global: 'clothing', entailed: [], equivalent: [], program: [select('man')] },
  { id: '20968381', imageId: '2375429', question: 'Are there both hats and men?', answer: 'yes', fullAnswer: 'Yes, there are both.', isBalanced: true, structural: 'logical', semantic: 'obj', detailed: 'existAnd', global: null, entailed: [], equivalent: [], program: [select('hat'), { operation: 'exist', argument: '?', dependencies: [0] }, select('man'), { operation: 'exist', argument: '?', dependencies: [2] }, { operation: 'and', argument: '', dependencies: [1, 3] }] },
  { id: '05451384', imageId: 'n161313', question: 'Which kind of animal is it?', answer: 'dog', fullAnswer: 'It is a dog.', isBalanced: true, structural: 'query', semantic: 'cat', detailed: 'categoryThat', global: 'animal', entailed: [], equivalent: [], program: [select('animal'), { operation: 'query', argument: 'name', dependencies: [0] }] },
  { id: '05451385', imageId: 'n161313', question: 'Is the dog on the left?', answer: 'no', fullAnswer: 'No, the dog is on the right.', isBalanced: true, structural: 'verify', semantic: 'rel', detailed: 'positionVerify', global: null, entailed: [], equivalent: [], program: [select('dog'), { operation: 'verify hposition', argument: 'left', dependencies: [0] }] },
];

const PREDICTIONS: Record<string, string> = { '201307251': 'no', '201307252': 'no', '201307253': 't shirt', '20968379': 'man', '20968380': 'hat', '20968381': 'yes', '05451384': 'cat', '05451385': 'no' };

const IMAGE_IDS = ['2354786', '2375429', 'n161313'];
/** A 5×4 RGB image, different for each image, as PNG: lossless, so the decoded pixels can be compared exactly. */
function pixelsOf(imageId: string): Buffer {
  const seed = IMAGE_IDS.indexOf(imageId) + 1;
  return Buffer.from(Array.from({ length: 5 * 4 * 3 }, (_, index) => (seed * 53 + index * 7) % 256));
}
async function pngOf(imageId: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(pixelsOf(imageId), { raw: { width: 5, height: 4, channels: 3 } }).png().toBuffer());
}

/** The official questions file's record of a question. */
function officialRecord(question: Question): Record<string, unknown> {
  return {
    semantic: question.program,
    entailed: question.entailed,
    equivalent: question.equivalent,
    question: question.question,
    imageId: question.imageId,
    isBalanced: question.isBalanced,
    groups: { global: question.global, local: `${question.structural}-${question.id}` },
    answer: question.answer,
    semanticStr: question.program.map((step) => `${step.operation}: ${step.argument}`).join('->'),
    annotations: { answer: {}, question: {}, fullAnswer: {} },
    types: { structural: question.structural, semantic: question.semantic, detailed: question.detailed },
    fullAnswer: question.fullAnswer,
  };
}

type RowEdit = (row: Record<string, unknown>, index: number) => Record<string, unknown>;

/** The questions as lmms-lab/GQA's instructions config has them: `entailed` and `equivalent` as text, as its card types them. */
function instructionsParquet(questions: readonly Question[], options: { rowsPerGroup?: number; edit?: RowEdit; without?: string[] } = {}): Uint8Array {
  const rows = questions.map((question, index) => {
    const record = officialRecord(question);
    const row: Record<string, unknown> = {
      ...record,
      id: question.id,
      entailed: JSON.stringify(question.entailed),
      equivalent: JSON.stringify(question.equivalent),
      annotations: { question: [], answer: [{ objectId: '2354786-1', value: question.answer }], fullAnswer: [] },
    };
    return options.edit ? options.edit(row, index) : row;
  });
  const fields = GQA_INSTRUCTION_FIELDS.filter((field) => !(options.without ?? []).includes(field.name));
  return parquetOf(fields, rows, { codec: 'snappy', rowsPerGroup: options.rowsPerGroup ?? 3 });
}

async function imagesParquet(imageIds: readonly string[]): Promise<Uint8Array> {
  const rows = await Promise.all(imageIds.map(async (id) => ({ id, image: { bytes: await pngOf(id), path: `${id}.jpg` } })));
  return parquetOf(GQA_IMAGE_FIELDS, rows, { codec: 'zstd', rowsPerGroup: 2 });
}

async function writeOfficial(dir: string, files: Record<string, readonly Question[]>): Promise<void> {
  await mkdir(join(dir, 'images'), { recursive: true });
  for (const [name, questions] of Object.entries(files)) {
    // Written key by key: a JavaScript object would put the integer-like ids first, in numeric order, and the file order is the split's order.
    await writeFile(join(dir, name), `{${questions.map((question) => `${JSON.stringify(question.id)}: ${JSON.stringify(officialRecord(question))}`).join(', ')}}`);
  }
  for (const imageId of IMAGE_IDS) await writeFile(join(dir, 'images', `${imageId}.jpg`), await pngOf(imageId));
}

interface Fixture {
  dir: string;
  cache: string;
  official: string;
  predictions: string;
}

async function fixture(): Promise<Fixture> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-gqa-'));
  // Revision B: one answer changed, so its files and its scores differ.
  const changed = QUESTIONS.map((question) => (question.id === '05451384' ? { ...question, answer: 'cat' } : question));
  const images = await imagesParquet(IMAGE_IDS);
  const cache = await writeHubCache(join(dir, 'hub'), 'lmms-lab/GQA', {
    [COMMIT_A]: {
      'testdev_balanced_instructions/testdev-00000-of-00001.parquet': instructionsParquet(QUESTIONS),
      'testdev_balanced_images/testdev-00000-of-00001.parquet': images,
      'testdev_all_instructions/testdev-00000-of-00001.parquet': instructionsParquet(QUESTIONS.slice(0, 2)),
    },
    [COMMIT_B]: {
      'testdev_balanced_instructions/testdev-00000-of-00001.parquet': instructionsParquet(changed),
      'testdev_balanced_images/testdev-00000-of-00001.parquet': images,
    },
  }, COMMIT_A);
  const official = join(dir, 'official');
  await writeOfficial(official, { 'testdev_balanced_questions.json': QUESTIONS });
  const predictions = join(dir, 'predictions.json');
  await writeFile(predictions, JSON.stringify(QUESTIONS.map((question) => ({ questionId: question.id, prediction: PREDICTIONS[question.id] }))));
  return { dir, cache, official, predictions };
}

const withoutImagePath = ({ imagePath: _imagePath, ...example }: { imagePath: string }) => example;

test('a datasets--lmms-lab--GQA cache folder gives the examples the official questions file gives, images joined by image id', async (t) => {
  const { cache, official } = await fixture();
  const parquet = await loadGqaSplit({ dataDir: cache, split: 'testdev' });
  const json = await loadGqaSplit({ dataDir: official, split: 'testdev' });
  t.is(parquet.split, 'testdev_balanced', 'testdev is its balanced questions, as in the official layout');
  t.deepEqual(parquet.files.map((file) => basename(file)), ['testdev-00000-of-00001.parquet', 'testdev-00000-of-00001.parquet']);
  t.true(parquet.files[0].includes(join('snapshots', COMMIT_A, 'testdev_balanced_instructions')));
  t.deepEqual(parquet.examples.map(withoutImagePath), json.examples.map(withoutImagePath));
  t.deepEqual(parquet.examples.map((example) => example.steps), [1, 2, 2, 2, 1, 3, 1, 2]);
  t.deepEqual(parquet.examples[0].entailed, ['201307252']);
  // Image n161313 is row 2 of the images shard (the second row group's first row).
  const images = parquet.files[1];
  t.deepEqual(parquet.examples.map((example) => example.imagePath), [0, 0, 0, 1, 1, 1, 2, 2].map((row) => `${images}#row=${row}`));
  t.not(parquet.fingerprint, json.fingerprint, 'a parquet copy is never the same split as the JSON files');
  t.is((await loadGqaSplit({ dataDir: cache, split: 'testdev_all' })).examples.length, 2);
  const several = await t.throwsAsync(loadGqaSplit({ dataDir: cache, split: '' }), { instanceOf: InputError });
  t.is(several.message, `${join(cache, 'snapshots', COMMIT_A)} (revision ${COMMIT_A}), field "--split": several splits here (testdev_all, testdev_balanced): name one with --split`);
  const noSplit = await t.throwsAsync(loadGqaSplit({ dataDir: cache, split: 'val' }), { instanceOf: InputError });
  t.is(noSplit.message, `${join(cache, 'snapshots', COMMIT_A)} (revision ${COMMIT_A}), field "--split": no instructions of split "val" here; splits there: testdev_all, testdev_balanced`);
  const b = await loadGqaSplit({ dataDir: cache, split: 'testdev', revision: COMMIT_B });
  t.not(b.fingerprint, parquet.fingerprint, 'another revision, another split');
  t.is(b.examples[6].answer, 'cat');
  t.is((await loadGqaSplit({ dataDir: join(cache, 'snapshots', COMMIT_A), split: 'testdev' })).fingerprint, parquet.fingerprint, 'the snapshot folder itself is the same revision');
  // The Hub's parquet conversion (refs/convert/parquet) lays a config out as <config>/<split>/NNNN.parquet.
  const converted = await snapshotWith({
    'testdev_balanced_instructions/testdev/0000.parquet': instructionsParquet(QUESTIONS),
    'testdev_balanced_images/testdev/0000.parquet': await imagesParquet(IMAGE_IDS),
  });
  const fromConversion = await loadGqaSplit({ dataDir: converted, split: 'testdev' });
  t.deepEqual(fromConversion.examples.map(withoutImagePath), json.examples.map(withoutImagePath));
  t.is(fromConversion.examples[7].imagePath, `${join(converted, 'testdev_balanced_images', 'testdev', '0000.parquet')}#row=2`);
});

test('an embedded GQA image decodes from the images config to its exact pixels, nothing written out', async (t) => {
  const { cache } = await fixture();
  const split = await loadGqaSplit({ dataDir: cache, split: 'testdev_balanced' });
  for (const index of [0, 3, 7]) {
    const example = split.examples[index];
    const { data, info } = await sharp(await readHubParquetImage(example.imagePath)).raw().toBuffer({ resolveWithObject: true });
    t.deepEqual([info.width, info.height, info.channels], [5, 4, 3]);
    t.deepEqual(data, pixelsOf(example.imageId));
  }
});

test.serial('vlbench score gives the same GQA report to the last bit on the parquet copy and on the official JSON', async (t) => {
  const { cache, official, predictions } = await fixture();
  const fromJson = await runScore({ task: 'gqa', questions: join(official, 'testdev_balanced_questions.json'), predictions });
  const fromParquet = await runScore({ task: 'gqa', dataDir: cache, split: 'testdev', predictions });
  t.deepEqual(fromParquet.official, fromJson.official);
  t.deepEqual(Object.keys(fromParquet.metrics), Object.keys(fromJson.metrics));
  for (const [name, value] of Object.entries(fromJson.metrics)) t.true(Object.is(fromParquet.metrics[name], value), `${name}: ${fromParquet.metrics[name]} vs ${value}`);
  t.deepEqual(fromParquet.perExample, fromJson.perExample);
  // By hand: 7 balanced questions, 4 right ("t shirt" is not "t-shirt": no normalisation); the
  // consistency of the one right question with an entailed one (201307251 → 201307252, wrong): 0.
  t.is(fromParquet.metrics.accuracy, 57.14);
  t.is(fromParquet.metrics.consistency, 0);
  t.true('distribution' in fromParquet.metrics);

  const cli = await vlbench(['score', '--task', 'gqa', '--data-dir', cache, '--split', 'testdev', '--predictions', predictions]);
  const cliJson = await vlbench(['score', '--task', 'gqa', '--questions', join(official, 'testdev_balanced_questions.json'), '--predictions', predictions]);
  t.is(cli.code, 0, cli.stderr);
  t.is(cli.stdout, cliJson.stdout);
  const other = await vlbench(['score', '--task', 'gqa', '--data-dir', cache, '--revision', COMMIT_B, '--split', 'testdev', '--predictions', predictions]);
  t.is(other.code, 0, other.stderr);
  t.not(other.stdout, cli.stdout, 'revision B changed an answer');
});

async function snapshotWith(files: Record<string, Uint8Array>): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-gqa-bad-'));
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  return dir;
}

test.serial('malformed GQA parquet: one error naming the file, and the row group, row and column where known', async (t) => {
  const instructions = 'testdev_balanced_instructions/testdev-00000-of-00001.parquet';
  const imagesPath = 'testdev_balanced_images/testdev-00000-of-00001.parquet';
  const images = await imagesParquet(IMAGE_IDS);
  const good = instructionsParquet(QUESTIONS);
  const load = (dir: string) => loadGqaSplit({ dataDir: dir, split: 'testdev' });

  const truncatedDir = await snapshotWith({ [instructions]: good.subarray(0, Math.floor(good.length / 2)), [imagesPath]: images });
  const truncated = await t.throwsAsync(load(truncatedDir), { instanceOf: InputError });
  t.true(truncated.message.startsWith(`${join(truncatedDir, instructions)}: not a readable parquet file (truncated or damaged: `), truncated.message);

  const missingDir = await snapshotWith({ [instructions]: instructionsParquet(QUESTIONS, { without: ['isBalanced'] }), [imagesPath]: images });
  const missing = await t.throwsAsync(load(missingDir), { instanceOf: InputError });
  t.true(missing.message.startsWith(`${join(missingDir, instructions)}, field "isBalanced": missing column "isBalanced"; the file has "id", "imageId", "question", "answer", `), missing.message);

  const nullBalanceDir = await snapshotWith({ [instructions]: instructionsParquet(QUESTIONS, { edit: (row, index) => (index === 4 ? { ...row, isBalanced: null } : row) }), [imagesPath]: images });
  const nullBalance = await t.throwsAsync(load(nullBalanceDir), { instanceOf: InputError });
  t.is(nullBalance.message, `${join(nullBalanceDir, instructions)}, record "row group 1, row 4", field "isBalanced": expected true or false, got null`);

  const entailedDir = await snapshotWith({ [instructions]: instructionsParquet(QUESTIONS, { edit: (row, index) => (index === 6 ? { ...row, entailed: '201307251, 201307252' } : row) }), [imagesPath]: images });
  const entailed = await t.throwsAsync(load(entailedDir), { instanceOf: InputError });
  t.is(entailed.message, `${join(entailedDir, instructions)}, record "row group 2, row 6", field "entailed": expected a list of question ids (as text, e.g. ["201640614"]), got "201307251, 201307252"`);

  const lostImageDir = await snapshotWith({ [instructions]: good, [imagesPath]: await imagesParquet(IMAGE_IDS.slice(0, 2)) });
  const lostImage = await t.throwsAsync(load(lostImageDir), { instanceOf: InputError });
  t.is(lostImage.message, `${join(lostImageDir, instructions)}, record "row group 2, row 6", field "imageId": image "n161313" is not in the images config (2 images in ${imagesPath})`);

  const twiceDir = await snapshotWith({ [instructions]: instructionsParquet(QUESTIONS, { edit: (row, index) => (index === 5 ? { ...row, id: '201307251' } : row) }), [imagesPath]: images });
  const twice = await t.throwsAsync(load(twiceDir), { instanceOf: InputError });
  t.is(twice.message, `${join(twiceDir, instructions)}, record "row group 1, row 5", field "id": question id "201307251" appears twice in the split (first at testdev-00000-of-00001.parquet row group 0, row 0)`);

  // Without the images config the questions load and score; reading an image names where it was looked for.
  const textOnlyDir = await snapshotWith({ [instructions]: good });
  const textOnly = await load(textOnlyDir);
  t.is(textOnly.examples.length, 8);
  t.is(textOnly.examples[0].imagePath, join(textOnlyDir, 'testdev_balanced_images', '2354786.jpg'));
  const noImage = await t.throwsAsync(readImageBytes(textOnly.examples[0].imagePath), { instanceOf: InputError });
  t.is(noImage.message, `${textOnly.examples[0].imagePath}: cannot read image: ENOENT`);

  const predictions = join(entailedDir, 'predictions.json');
  await writeFile(predictions, JSON.stringify(QUESTIONS.map((question) => ({ questionId: question.id, prediction: 'yes' }))));
  const cli = await vlbench(['score', '--task', 'gqa', '--data-dir', entailedDir, '--split', 'testdev', '--predictions', predictions]);
  t.is(cli.code, 2);
  t.is(cli.stderr, `vlbench: error: ${entailed.message}\n`, 'one line, no stack trace');
});

test.serial('vlbench run trains and scores on a GQA parquet snapshot as on the same questions in the official layout: the same predictions, the same numbers', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-gqa-run-'));
  // Training questions: the same images, other question ids.
  const train = QUESTIONS.map((question) => ({ ...question, id: `9${question.id}`, entailed: question.entailed.map((id) => `9${id}`), equivalent: question.equivalent.map((id) => `9${id}`) }));
  const snapshot = join(dir, 'snapshot');
  const images = await imagesParquet(IMAGE_IDS);
  for (const [path, bytes] of Object.entries({
    'train_balanced_instructions/train-00000-of-00001.parquet': instructionsParquet(train, { rowsPerGroup: 5 }),
    'train_balanced_images/train-00000-of-00001.parquet': images,
    'testdev_balanced_instructions/testdev-00000-of-00001.parquet': instructionsParquet(QUESTIONS),
    'testdev_balanced_images/testdev-00000-of-00001.parquet': images,
  })) {
    await mkdir(join(snapshot, path, '..'), { recursive: true });
    await writeFile(join(snapshot, path), bytes);
  }
  const official = join(dir, 'official');
  await writeOfficial(official, { 'train_balanced_questions.json': train, 'testdev_balanced_questions.json': QUESTIONS });
  const model = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
  const common = { task: 'gqa', modelDir: model, method: 'ft', epochs: 2, backend: 'wasm' as const, seed: 3, selectOnEvaluation: true, trainSplit: 'train', validationSplit: 'testdev', split: 'testdev' };
  const hooks = { db: join(dir, 'board.db'), runsDir: join(dir, 'runs'), log: () => undefined };
  const fromParquet = await executeRun({ ...common, dataDir: snapshot }, hooks);
  const fromJson = await executeRun({ ...common, dataDir: official }, hooks);
  const [parquetSplit] = fromParquet.splits;
  const [jsonSplit] = fromJson.splits;
  t.is(parquetSplit.split, 'testdev_balanced');
  t.deepEqual(parquetSplit.report.perExample, jsonSplit.report.perExample);
  t.deepEqual(parquetSplit.report.metrics, jsonSplit.report.metrics);
  t.is(parquetSplit.report.perExample.length, 7);
  t.truthy(parquetSplit.record, 'recorded in the leaderboard');
  t.not(parquetSplit.record!.splitFingerprint, jsonSplit.record!.splitFingerprint, 'recorded as different splits');
});

test.serial('vlbench leaderboard add records GQA predictions scored on a cache folder, beside the JSON copy but never ranked with it', async (t) => {
  const { dir, cache, official, predictions } = await fixture();
  const db = join(dir, 'board.db');
  const add = (name: string, data: string, ...more: string[]) => vlbench(['leaderboard', 'add', '--task', 'gqa', '--data', data, '--split', 'testdev', '--predictions', predictions, '--name', name, '--db', db, ...more]);
  for (const [name, data, more] of [['from-parquet', cache, []], ['from-json', official, []], ['revision-b', cache, ['--revision', COMMIT_B]]] as const) {
    const added = await add(name, data, ...more);
    t.is(added.code, 0, added.stderr);
  }
  const board = await vlbench(['leaderboard', '--format', 'json', '--db', db]);
  const sections = (JSON.parse(board.stdout) as { sections: { key: { split: string }; rows: { name: string; primary: { mean: number } }[] }[] }).sections;
  t.deepEqual(sections.map((section) => [section.key.split, section.rows.map((row) => row.name)]).sort(), [['testdev', ['from-json']], ['testdev_balanced', ['from-parquet']], ['testdev_balanced', ['revision-b']]]);
  const mean = (name: string) => sections.find((section) => section.rows[0].name === name)!.rows[0].primary.mean;
  t.is(mean('from-parquet'), mean('from-json'));
  t.not(mean('revision-b'), mean('from-parquet'), 'revision B changed an answer');
});
