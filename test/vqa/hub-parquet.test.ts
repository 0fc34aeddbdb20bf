import test from 'ava';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import sharp from 'sharp';
import { InputError } from '../../core/errors.ts';
import { executeRun } from '../../harness/run.ts';
import { OPENAI_CLIP_PREPROCESSING, preprocessImage } from '../../models/image-pipeline.ts';
import { runScore } from '../../harness/score-files.ts';
import { loadVqaSplit } from '../../tasks/vqa/index.ts';
import { readVqaHubImage } from '../../tasks/vqa/hub-parquet.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { hubVqaParquet, writeHubCache, type HubVqaRow, type ShardOptions } from '../support/hub-parquet-writer.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

const COMMIT_A = 'a'.repeat(40);
const COMMIT_B = 'b'.repeat(40);

/** A 4×3 RGB image, different for each image id, as PNG: lossless, so the decoded pixels can be compared exactly. */
function pixelsOf(imageId: number): Buffer {
  return Buffer.from(Array.from({ length: 4 * 3 * 3 }, (_, index) => (imageId * 37 + index * 11) % 256));
}
async function pngOf(imageId: number): Promise<Uint8Array> {
  return new Uint8Array(await sharp(pixelsOf(imageId), { raw: { width: 4, height: 3, channels: 3 } }).png().toBuffer());
}

const ten = (answer: string) => Array<string>(10).fill(answer);
/** Nine questions on four images, with answers that exercise the official normalisation and the 0.3 steps. */
async function validationRows(): Promise<HubVqaRow[]> {
  const spec: [number, number, string, string, string, string, string[]][] = [
    [42000, 42, 'Is it raining?', 'is it', 'yes/no', 'yes', ten('yes')],
    [42001, 42, 'What color is the cat?', 'what color is the', 'other', 'blue', [...Array(3).fill('red'), ...Array(7).fill('blue')]],
    [42002, 42, 'How many dogs?', 'how many', 'number', '2', [...Array(7).fill('2'), 'two', 'three', '3']],
    [7000, 7, 'What is on the table?', 'what is on the', 'other', 'a cup', ['a cup', 'cup', 'the cup', 'cup', 'mug', 'cup.', 'cups', 'cup', 'mug', 'glass']],
    [7001, 7, 'Is this a kitchen?', 'is this a', 'yes/no', 'no', [...Array(9).fill('no'), 'yes']],
    [9000, 9, 'What sport is this?', 'what sport is', 'other', 'tennis', [...Array(2).fill('tennis'), ...Array(8).fill('badminton')]],
    [9001, 9, 'How many people?', 'how many', 'number', '1', [...Array(4).fill('1'), ...Array(6).fill('one')]],
    [11000, 11, 'Where is the bus?', 'where is the', 'other', 'street', ['street', 'on street', 'road', 'street', 'in street', 'street', 'road', 'street', 'city', 'street']],
    [11001, 11, "Don't you see it?", 'do you', 'yes/no', 'yes', [...Array(5).fill('yes'), ...Array(5).fill('Yes')]],
  ];
  return Promise.all(spec.map(async ([questionId, imageId, question, questionType, answerType, multipleChoiceAnswer, answers]) => ({
    question_id: questionId, image_id: imageId, question, question_type: questionType, answer_type: answerType, multiple_choice_answer: multipleChoiceAnswer, answers, image: await pngOf(imageId),
  })));
}

const PREDICTIONS: Record<number, string> = { 42000: 'Yes', 42001: 'red', 42002: 'two', 7000: 'the cup', 7001: 'no', 9000: 'tennis', 9001: '1', 11000: 'road', 11001: 'yes' };

/** The same rows as the official JSON files (annotations in row order, as the parquet lists them). */
async function writeOfficialJson(dir: string, rows: readonly HubVqaRow[], subtype = 'val2014'): Promise<{ questions: string; annotations: string }> {
  const header = { info: {}, task_type: 'Open-Ended', data_type: 'mscoco', license: {}, data_subtype: subtype };
  const questions = join(dir, `v2_OpenEnded_mscoco_${subtype}_questions.json`);
  const annotations = join(dir, `v2_mscoco_${subtype}_annotations.json`);
  await writeFile(questions, JSON.stringify({ ...header, questions: rows.map((row) => ({ image_id: row.image_id, question: row.question, question_id: row.question_id })) }));
  await writeFile(annotations, JSON.stringify({
    ...header,
    annotations: rows.map((row) => ({
      question_id: row.question_id, image_id: row.image_id, question_type: row.question_type, answer_type: row.answer_type, multiple_choice_answer: row.multiple_choice_answer,
      answers: row.answers!.map((answer, index) => ({ answer, answer_confidence: index % 3 === 2 ? 'maybe' : 'yes', answer_id: index + 1 })),
    })),
  }));
  return { questions, annotations };
}

/** Two shards, snappy then zstd, row groups of 2 and 3 rows. */
async function validationShards(rows: readonly HubVqaRow[], firstShard: Partial<ShardOptions> = {}): Promise<Record<string, Uint8Array>> {
  return {
    'data/validation-00000-of-00002.parquet': hubVqaParquet(rows.slice(0, 5), { codec: 'snappy', rowsPerGroup: 2, ...firstShard }),
    'data/validation-00001-of-00002.parquet': hubVqaParquet(rows.slice(5), { codec: 'zstd', rowsPerGroup: 3 }),
  };
}

interface Fixture {
  dir: string;
  rows: HubVqaRow[];
  cache: string;
  json: { questions: string; annotations: string };
  predictions: string;
}

async function fixture(): Promise<Fixture> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-vqa-'));
  const rows = await validationRows();
  // Revision B: one answer of the last question changed, so its files and scores differ.
  const changed = rows.map((row) => (row.question_id === 11001 ? { ...row, answers: ten('no') } : row));
  const testdev = hubVqaParquet(rows.slice(0, 3).map((row) => ({ ...row, answers: null, answer_type: null, question_type: null, multiple_choice_answer: null })), { codec: 'zstd', rowsPerGroup: 2 });
  const cache = await writeHubCache(join(dir, 'hub'), 'lmms-lab/VQAv2', {
    [COMMIT_A]: { ...(await validationShards(rows)), 'data/testdev-00000-of-00001.parquet': testdev },
    [COMMIT_B]: await validationShards(changed),
  }, COMMIT_A);
  const json = await writeOfficialJson(dir, rows);
  const predictions = join(dir, 'predictions.json');
  await writeFile(predictions, JSON.stringify(rows.map((row) => ({ question_id: row.question_id, answer: PREDICTIONS[row.question_id] }))));
  return { dir, rows, cache, json, predictions };
}

test('a datasets--lmms-lab--VQAv2 cache folder loads the examples the official JSON gives, from refs/main', async (t) => {
  const { cache, json } = await fixture();
  const parquet = await loadVqaSplit({ dataDir: cache, split: 'validation' });
  const official = await loadVqaSplit({ split: '', files: json });
  t.is(parquet.split, 'validation');
  t.deepEqual(parquet.info, { dataType: 'hub-parquet', dataSubtype: 'validation', annotated: true });
  t.deepEqual(parquet.files.map((file) => basename(file)), ['validation-00000-of-00002.parquet', 'validation-00001-of-00002.parquet']);
  t.true(parquet.files.every((file) => file.includes(join('snapshots', COMMIT_A))));
  const withoutImagePath = ({ imagePath: _imagePath, ...example }: { imagePath: string }) => example;
  t.deepEqual(parquet.examples.map(withoutImagePath), official.examples.map(withoutImagePath));
  // Questions 9000 and 9001 (rows 0 and 1 of the second shard) ask about image 9: both name its first row.
  t.deepEqual(parquet.examples.slice(5, 7).map((example) => example.imagePath), [`${parquet.files[1]}#row=0`, `${parquet.files[1]}#row=0`]);
  t.is(new Set(parquet.examples.map((example) => example.imagePath)).size, 4, 'one name per image, as the JSON layout has one file per image');
  t.deepEqual(parquet.examples[3].answers, ['a cup', 'cup', 'the cup', 'cup', 'mug', 'cup.', 'cups', 'cup', 'mug', 'glass']);
  t.not(parquet.fingerprint, official.fingerprint, 'a parquet copy is never the same split as the JSON files');
});

test('the fingerprint covers the revision and the files: --revision picks another snapshot, a plain copy of one differs from the cache', async (t) => {
  const { dir, cache } = await fixture();
  const main = await loadVqaSplit({ dataDir: cache, split: 'validation' });
  t.is((await loadVqaSplit({ dataDir: cache, split: 'validation', revision: 'main' })).fingerprint, main.fingerprint);
  t.is((await loadVqaSplit({ dataDir: join(cache, 'snapshots', COMMIT_A), split: 'validation' })).fingerprint, main.fingerprint, 'the snapshot folder itself is the same revision');
  const b = await loadVqaSplit({ dataDir: cache, split: 'validation', revision: COMMIT_B });
  t.true(b.files.every((file) => file.includes(join('snapshots', COMMIT_B))));
  t.not(b.fingerprint, main.fingerprint);
  t.deepEqual(b.examples[8].answers, ten('no'));
  // snapshot_download(local_dir=…): the files without the cache around them.
  const plain = join(dir, 'local-dir');
  await mkdir(join(plain, 'data'), { recursive: true });
  for (const file of main.files) await cp(file, join(plain, 'data', basename(file)), { dereference: true });
  const local = await loadVqaSplit({ dataDir: plain, split: 'val2014' });
  t.is(local.split, 'validation', 'the official split name finds the Hub split');
  t.not(local.fingerprint, main.fingerprint, 'no revision is known for a plain folder');
  t.is((await loadVqaSplit({ dataDir: plain, split: 'validation', revision: COMMIT_A })).fingerprint, main.fingerprint, 'the same files at the same revision: the same split');
  // What huggingface_hub notes beside a local_dir download: the commit and the etag (sha256) of each file.
  const noted = join(dir, 'local-dir-noted');
  await cp(plain, noted, { recursive: true });
  for (const file of main.files) {
    const metadata = join(noted, '.cache', 'huggingface', 'download', 'data', `${basename(file)}.metadata`);
    await mkdir(join(metadata, '..'), { recursive: true });
    await writeFile(metadata, `${COMMIT_A}\n${createHash('sha256').update(await readFile(file)).digest('hex')}\n${Date.now() / 1000 + 5}\n`);
  }
  t.is((await loadVqaSplit({ dataDir: noted, split: 'validation' })).fingerprint, main.fingerprint, 'the download metadata says the revision');
  const disagrees = await t.throwsAsync(loadVqaSplit({ dataDir: noted, split: 'validation', revision: COMMIT_B }), { instanceOf: InputError });
  t.is(disagrees.message, `${noted}, field "--revision": these files were downloaded at commit ${COMMIT_A} (.cache/huggingface/download), not at the revision "${COMMIT_B}" that was asked for`);
  await utimes(join(noted, 'data', basename(main.files[0])), new Date(), new Date(Date.now() + 60_000));
  t.is((await loadVqaSplit({ dataDir: noted, split: 'validation' })).fingerprint, local.fingerprint, 'a file changed after its download: its metadata no longer counts');

  const unknown = await t.throwsAsync(loadVqaSplit({ dataDir: cache, split: 'validation', revision: 'v2' }), { instanceOf: InputError });
  t.is(unknown.message, `${cache}, field "--revision": no snapshot or ref "v2" in this cache folder (snapshots there: ${COMMIT_A}, ${COMMIT_B}; refs: main → ${COMMIT_A}); it cannot be downloaded offline`);
  const several = await t.throwsAsync(loadVqaSplit({ dataDir: cache, split: '' }), { instanceOf: InputError });
  t.is(several.message, `${join(cache, 'snapshots', COMMIT_A)} (revision ${COMMIT_A}), field "--split": several splits here (testdev, validation): name one with --split`);
  const testdev = await loadVqaSplit({ dataDir: cache, split: 'test-dev2015' });
  t.deepEqual([testdev.split, testdev.info?.annotated, testdev.examples.map((example) => example.answers.length)], ['testdev', false, [0, 0, 0]]);
});

test.serial('vlbench score gives the same report to the last bit on the parquet copy and on the official JSON', async (t) => {
  const { cache, json, predictions } = await fixture();
  const fromJson = await runScore({ task: 'vqa', ...json, predictions });
  const fromParquet = await runScore({ task: 'vqa', dataDir: cache, split: 'validation', predictions });
  t.deepEqual(fromParquet.official, fromJson.official);
  t.deepEqual(Object.keys(fromParquet.metrics), Object.keys(fromJson.metrics));
  for (const [name, value] of Object.entries(fromJson.metrics)) t.true(Object.is(fromParquet.metrics[name], value), `${name}: ${fromParquet.metrics[name]} vs ${value}`);
  t.deepEqual(fromParquet.perExample.map(({ id, score }) => [id, score]), fromJson.perExample.map(({ id, score }) => [id, score]));
  // The official definition, worked out by hand: "Yes" against ten "yes" is not normalised (0);
  // "red" matched by 2 of the 9 others for each red answer and by 3 for each blue one (0.9).
  const score = (id: string) => fromParquet.perExample.find((entry) => entry.id === id)!.score;
  t.is(score('42000'), 0);
  t.is(Math.round(score('42001') * 1e9) / 1e9, 90);
  t.is(score('42002'), 100);

  const cli = await vlbench(['score', '--task', 'vqa', '--data-dir', cache, '--split', 'validation', '--predictions', predictions]);
  const cliJson = await vlbench(['score', '--task', 'vqa', '--questions', json.questions, '--annotations', json.annotations, '--predictions', predictions]);
  t.is(cli.code, 0, cli.stderr);
  t.is(cli.stdout, cliJson.stdout);
  const other = await vlbench(['score', '--task', 'vqa', '--data-dir', cache, '--revision', COMMIT_B, '--split', 'validation', '--predictions', predictions]);
  t.not(other.stdout, cli.stdout, 'revision B changed an answer');
});

test('an embedded image decodes from the parquet cell to its exact pixels, nothing written out', async (t) => {
  const { cache } = await fixture();
  const split = await loadVqaSplit({ dataDir: cache, split: 'validation' });
  for (const index of [0, 3, 8]) {
    const example = split.examples[index];
    const { data, info } = await sharp(await readVqaHubImage(example.imagePath)).raw().toBuffer({ resolveWithObject: true });
    t.deepEqual([info.width, info.height, info.channels], [4, 3, 3]);
    t.deepEqual(data, pixelsOf(example.imageId));
  }
});

async function snapshotWith(files: Record<string, Uint8Array>): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-bad-'));
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  return dir;
}

test.serial('malformed parquet: one error naming the file, and the row group, row and column where known', async (t) => {
  const rows = await validationRows();
  const good = await validationShards(rows);
  const first = 'data/validation-00000-of-00002.parquet';

  const truncatedDir = await snapshotWith({ ...good, [first]: good[first].subarray(0, Math.floor(good[first].length / 2)) });
  const truncated = await t.throwsAsync(loadVqaSplit({ dataDir: truncatedDir, split: 'validation' }), { instanceOf: InputError });
  t.true(truncated.message.startsWith(`${join(truncatedDir, first)}: not a readable parquet file (truncated or damaged: `), truncated.message);

  const missingDir = await snapshotWith(await validationShards(rows, { without: ['answer_type'] }));
  const missing = await t.throwsAsync(loadVqaSplit({ dataDir: missingDir, split: 'validation' }), { instanceOf: InputError });
  t.is(missing.message, `${join(missingDir, first)}, field "answer_type": missing column "answer_type"; the file has "question_type", "multiple_choice_answer", "answers", "image_id", "question_id", "question", "image"`);

  const shortDir = await snapshotWith(await validationShards(rows, { answerCountAt: { row: 4, count: 9 } }));
  const short = await t.throwsAsync(loadVqaSplit({ dataDir: shortDir, split: 'validation' }), { instanceOf: InputError });
  t.is(short.message, `${join(shortDir, first)}, record "row group 2, row 4", field "answers": expected a list of 10 answers, got a list of 9`);

  // A damaged page: the "question" column chunk of row group 1 overwritten (found from the footer, which is intact).
  const metadata = parquetMetadata(good[first].buffer.slice(good[first].byteOffset, good[first].byteOffset + good[first].byteLength) as ArrayBuffer);
  const chunk = metadata.row_groups[1].columns.find((column) => column.meta_data!.path_in_schema[0] === 'question')!.meta_data!;
  const chunkStart = Number(chunk.dictionary_page_offset ?? chunk.data_page_offset);
  const damaged = Buffer.from(good[first]).fill(0xff, chunkStart, chunkStart + Number(chunk.total_compressed_size));
  const damagedDir = await snapshotWith({ ...good, [first]: damaged });
  const page = await t.throwsAsync(loadVqaSplit({ dataDir: damagedDir, split: 'validation' }), { instanceOf: InputError });
  t.true(page.message.startsWith(`${join(damagedDir, first)}, record "row group 1, rows 2–3": cannot decode column "question": `), page.message);

  const noImageDir = await snapshotWith({ ...good, [first]: hubVqaParquet(rows.slice(0, 5).map((row, index) => (index === 3 ? { ...row, image: null } : row)), { codec: 'snappy', rowsPerGroup: 2 }) });
  const split = await loadVqaSplit({ dataDir: noImageDir, split: 'validation' });
  const noImage = await t.throwsAsync(readVqaHubImage(split.examples[3].imagePath), { instanceOf: InputError });
  t.is(noImage.message, `${join(noImageDir, first)}, record "row group 1, row 3", field "image.bytes": expected the image's bytes ({bytes, path} with bytes set)`);

  // A text-only copy (no image column) loads and scores; only reading an image from it fails.
  const textOnlyDir = await snapshotWith(await validationShards(rows, { without: ['image'] }));
  const textOnly = await loadVqaSplit({ dataDir: textOnlyDir, split: 'validation' });
  t.is(textOnly.examples.length, 9);
  const noColumn = await t.throwsAsync(readVqaHubImage(textOnly.examples[0].imagePath), { instanceOf: InputError });
  t.is(noColumn.message, `${join(textOnlyDir, first)}, field "image": missing column "image"; the file has "question_type", "multiple_choice_answer", "answers", "image_id", "answer_type", "question_id", "question"`);

  const predictions = join(shortDir, 'predictions.json');
  await writeFile(predictions, JSON.stringify(rows.map((row) => ({ question_id: row.question_id, answer: 'yes' }))));
  const cli = await vlbench(['score', '--task', 'vqa', '--data-dir', shortDir, '--split', 'validation', '--predictions', predictions]);
  t.is(cli.code, 2);
  t.is(cli.stderr, `vlbench: error: ${short.message}\n`, 'one line, no stack trace');
});

test.serial('vlbench run trains and scores on a parquet snapshot as on the same questions in the official layout: the same predictions, the same numbers', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-run-'));
  const rows = await validationRows();
  // Training questions: the same images, other question ids (the answers the head learns are the validation ones').
  const trainRows = rows.map((row) => ({ ...row, question_id: row.question_id + 500_000 }));
  const snapshot = join(dir, 'snapshot');
  await mkdir(join(snapshot, 'data'), { recursive: true });
  await writeFile(join(snapshot, 'data', 'train-00000-of-00001.parquet'), hubVqaParquet(trainRows, { codec: 'zstd', rowsPerGroup: 4 }));
  await writeFile(join(snapshot, 'data', 'validation-00000-of-00001.parquet'), hubVqaParquet(rows, { codec: 'snappy', rowsPerGroup: 4 }));
  const official = join(dir, 'official');
  await mkdir(official);
  for (const [subtype, splitRows] of [['train2014', trainRows], ['val2014', rows]] as const) {
    await writeOfficialJson(official, splitRows, subtype);
    // The image files of the official layout hold the very bytes the parquet embeds (PNG; sharp reads by content).
    await mkdir(join(official, subtype), { recursive: true });
    for (const row of splitRows) await writeFile(join(official, subtype, `COCO_${subtype}_${String(row.image_id).padStart(12, '0')}.jpg`), row.image!);
  }
  const model = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
  const common = { task: 'vqa', modelDir: model, method: 'ft', epochs: 2, backend: 'wasm' as const, seed: 3, selectOnEvaluation: true };
  const hooks = { db: join(dir, 'board.db'), runsDir: join(dir, 'runs'), log: () => undefined };
  const fromParquet = await executeRun({ ...common, dataDir: snapshot, trainSplit: 'train', validationSplit: 'validation', split: 'validation' }, hooks);
  const fromJson = await executeRun({ ...common, dataDir: official, trainSplit: 'train2014', validationSplit: 'val2014', split: 'val2014' }, hooks);
  const [parquetSplit] = fromParquet.splits;
  const [jsonSplit] = fromJson.splits;
  t.is(parquetSplit.split, 'validation');
  t.deepEqual(parquetSplit.report.perExample, jsonSplit.report.perExample);
  t.deepEqual(parquetSplit.report.metrics, jsonSplit.report.metrics);
  t.is(parquetSplit.report.perExample.length, 9);
  t.not(parquetSplit.record!.splitFingerprint, jsonSplit.record!.splitFingerprint, 'recorded as different splits');
});

test.serial('vlbench leaderboard add records predictions scored on a cache folder, beside the JSON copy but never ranked with it', async (t) => {
  const { dir, cache, json, predictions } = await fixture();
  const db = join(dir, 'board.db');
  const add = (name: string, data: string) => vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', data, '--predictions', predictions, '--name', name, '--db', db]);
  const parquet = await add('from-parquet', cache);
  t.is(parquet.code, 0, parquet.stderr);
  t.regex(parquet.stdout, /"from-parquet": vqa validation, overall /);
  const official = await add('from-json', dirname(json.questions));
  t.is(official.code, 0, official.stderr);
  const otherRevision = await vlbench(['leaderboard', 'add', '--task', 'vqa', '--data', cache, '--revision', COMMIT_B, '--predictions', predictions, '--name', 'revision-b', '--db', db]);
  t.is(otherRevision.code, 0, otherRevision.stderr);
  const board = await vlbench(['leaderboard', '--format', 'json', '--db', db]);
  const sections = (JSON.parse(board.stdout) as { sections: { key: { split: string }; rows: { name: string; primary: { mean: number } }[] }[] }).sections;
  t.deepEqual(sections.map((section) => [section.key.split, section.rows.map((row) => row.name)]).sort(), [['val2014', ['from-json']], ['validation', ['from-parquet']], ['validation', ['revision-b']]]);
  const mean = (name: string) => sections.find((section) => section.rows[0].name === name)!.rows[0].primary.mean;
  t.is(mean('from-parquet'), mean('from-json'));
  t.not(mean('revision-b'), mean('from-parquet'), 'revision B changed an answer');
});

test('an embedded image that does not decode is refused naming its shard and row, as a missing image file is named', async (t) => {
  const rows = await validationRows();
  const broken = rows.map((row, index) => (index === 3 ? { ...row, image: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]) } : row));
  const dir = await snapshotWith(await validationShards(broken));
  const split = await loadVqaSplit({ dataDir: dir, split: 'validation' });
  t.is((await preprocessImage(split.examples[0].imagePath, OPENAI_CLIP_PREPROCESSING)).length, 3 * 224 * 224, 'a good embedded image preprocesses');
  const error = await t.throwsAsync(preprocessImage(split.examples[3].imagePath, OPENAI_CLIP_PREPROCESSING), { instanceOf: InputError });
  t.true(error.message.startsWith(`${join(dir, 'data', 'validation-00000-of-00002.parquet')}#row=3: cannot decode image: `), error.message);
});
