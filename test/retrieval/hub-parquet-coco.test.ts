import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { InputError } from '../../core/errors.ts';
import { executeRun } from '../../harness/run.ts';
import { runScore } from '../../harness/score-files.ts';
import { readHubParquetImage } from '../../tasks/hub-images.ts';
import { loadRetrievalSplit, writeNpyMatrix } from '../../tasks/retrieval/index.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { COCO_KARPATHY_FIELDS, parquetOf, writeHubCache } from '../support/hub-parquet-writer.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

const COMMIT = 'c'.repeat(40);

/** A COCO image as Karpathy's dataset_coco.json has it (some COCO images have more than five captions). */
interface CocoImage {
  imgid: number;
  cocoid: number;
  split: 'train' | 'restval' | 'val' | 'test';
  captions: string[];
}

const WORDS = ['giraffe', 'pizza', 'surfer', 'clock', 'train', 'kite'];
function imagesFrom(first: number, count: number, split: CocoImage['split']): CocoImage[] {
  return Array.from({ length: count }, (_, offset) => {
    const imgid = first + offset;
    const word = WORDS[imgid % WORDS.length];
    const captions = [`A ${word} on a table.`, `a ${word}`, `The ${word} is big`, `Look: a ${word}!`, `${word} ${imgid}`];
    return { imgid, cocoid: 391895 + imgid * 11, split, captions: imgid % 2 === 1 ? [...captions, `One more ${word}.`] : captions };
  });
}
const TEST_IMAGES = imagesFrom(0, 3, 'test');
const folderOf = (image: CocoImage) => (image.split === 'train' ? 'train2014' : 'val2014');
const filenameOf = (image: CocoImage) => `COCO_${folderOf(image)}_${String(image.cocoid).padStart(12, '0')}.jpg`;
const sentidOf = (image: CocoImage, k: number) => image.imgid * 10 + k;

function pixelsOf(imgid: number): Buffer {
  return Buffer.from(Array.from({ length: 4 * 5 * 3 }, (_, index) => ((imgid + 3) * 29 + index * 17) % 256));
}
async function pngOf(imgid: number): Promise<Uint8Array> {
  return new Uint8Array(await sharp(pixelsOf(imgid), { raw: { width: 4, height: 5, channels: 3 } }).png().toBuffer());
}

type RowEdit = (row: Record<string, unknown>, index: number) => Record<string, unknown>;

/** One row per caption, as bitmind/MS-COCO has them, the image's fields and bytes on each. */
async function cocoRows(images: readonly CocoImage[]): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const image of images) {
    const png = await pngOf(image.imgid);
    image.captions.forEach((raw, k) => rows.push({
      image: { bytes: png, path: filenameOf(image) },
      filepath: folderOf(image),
      sentids: image.captions.map((_, j) => sentidOf(image, j)),
      filename: filenameOf(image),
      imgid: image.imgid,
      split: image.split,
      sentences: { tokens: raw.toLowerCase().split(' '), raw, imgid: image.imgid, sentid: sentidOf(image, k) },
      cocoid: image.cocoid,
    }));
  }
  return rows;
}

function shard(rows: readonly Record<string, unknown>[], options: { edit?: RowEdit; without?: string[]; codec?: 'snappy' | 'zstd' } = {}): Uint8Array {
  return parquetOf(COCO_KARPATHY_FIELDS.filter((field) => !(options.without ?? []).includes(field.name)), options.edit ? rows.map(options.edit) : rows, { codec: options.codec ?? 'snappy', rowsPerGroup: 4 });
}

/** The test split in two shards; the second image's captions straddle them. */
async function testShards(options: { edit?: RowEdit; without?: string[] } = {}): Promise<Record<string, Uint8Array>> {
  const rows = await cocoRows(TEST_IMAGES);
  return {
    'data/test-00000-of-00002.parquet': shard(rows.slice(0, 8), options),
    'data/test-00001-of-00002.parquet': shard(rows.slice(8), { codec: 'zstd' }),
  };
}

async function writeOfficial(dir: string, images: readonly CocoImage[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'dataset_coco.json');
  await writeFile(file, JSON.stringify({
    images: images.map((image) => ({
      filepath: folderOf(image),
      sentids: image.captions.map((_, k) => sentidOf(image, k)),
      filename: filenameOf(image),
      imgid: image.imgid,
      split: image.split,
      sentences: image.captions.map((raw, k) => ({ tokens: raw.toLowerCase().split(' '), raw, imgid: image.imgid, sentid: sentidOf(image, k) })),
      cocoid: image.cocoid,
    })),
    dataset: 'coco',
  }));
  for (const image of images) {
    await mkdir(join(dir, folderOf(image)), { recursive: true });
    await writeFile(join(dir, folderOf(image), filenameOf(image)), await pngOf(image.imgid));
  }
  return file;
}

async function snapshotWith(files: Record<string, Uint8Array>): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-coco-'));
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  return dir;
}

const withoutPath = ({ path: _path, ...image }: { path: string }) => image;

test.serial('a Karpathy COCO parquet (bitmind/MS-COCO, a row per caption) gives the images the Karpathy JSON gives, and scores the same to the last bit', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-coco-'));
  const cache = await writeHubCache(join(dir, 'hub'), 'bitmind/MS-COCO', { [COMMIT]: await testShards() }, COMMIT);
  const annotations = await writeOfficial(join(dir, 'official'), TEST_IMAGES);
  const parquet = await loadRetrievalSplit({ dataDir: cache, split: 'test' });
  const json = await loadRetrievalSplit({ split: 'test', files: { annotations } });
  t.deepEqual(parquet.examples.map(withoutPath), json.examples.map(withoutPath));
  t.deepEqual(parquet.examples.map((image) => image.captions.length), [5, 6, 5]);
  t.deepEqual(parquet.examples.map((image) => image.path), [`${parquet.files[0]}#row=0`, `${parquet.files[0]}#row=5`, `${parquet.files[1]}#row=3`]);
  t.not(parquet.fingerprint, json.fingerprint);
  const { data } = await sharp(await readHubParquetImage(parquet.examples[2].path)).raw().toBuffer({ resolveWithObject: true });
  t.deepEqual(data, pixelsOf(2));

  const captions = TEST_IMAGES.flatMap((image) => image.captions);
  const matrix = new Float32Array(TEST_IMAGES.length * captions.length);
  TEST_IMAGES.forEach((image, row) => captions.forEach((caption, column) => {
    matrix[row * captions.length + column] = caption.includes(WORDS[image.imgid]) ? ((column * 3) % 4) / 4 : ((row * 5 + column) % 7) / 8;
  }));
  const similarities = join(dir, 'similarities.npy');
  await writeNpyMatrix(similarities, { data: matrix, rows: TEST_IMAGES.length, cols: captions.length });
  const fromJson = await runScore({ task: 'retrieval', annotations, split: 'test', similarities });
  const fromParquet = await runScore({ task: 'retrieval', dataDir: cache, split: 'test', similarities });
  t.deepEqual(fromParquet.official, fromJson.official);
  for (const [name, value] of Object.entries(fromJson.metrics)) t.true(Object.is(fromParquet.metrics[name], value), `${name}: ${fromParquet.metrics[name]} vs ${value}`);
  t.deepEqual(fromParquet.perExample, fromJson.perExample);
  const cli = await vlbench(['score', '--task', 'retrieval', '--data-dir', cache, '--split', 'test', '--similarities', similarities]);
  const cliJson = await vlbench(['score', '--task', 'retrieval', '--annotations', annotations, '--split', 'test', '--similarities', similarities]);
  t.is(cli.code, 0, cli.stderr);
  t.is(cli.stdout, cliJson.stdout);
});

test.serial('malformed Karpathy COCO parquet: one error naming the file, and the row group, row and column where known', async (t) => {
  const first = 'data/test-00000-of-00002.parquet';
  const load = (dir: string) => loadRetrievalSplit({ dataDir: dir, split: 'test' });
  const good = await testShards();

  const truncatedDir = await snapshotWith({ ...good, [first]: good[first].subarray(0, Math.floor(good[first].length / 2)) });
  const truncated = await t.throwsAsync(load(truncatedDir), { instanceOf: InputError });
  t.true(truncated.message.startsWith(`${join(truncatedDir, first)}: not a readable parquet file (truncated or damaged: `), truncated.message);

  const missingDir = await snapshotWith(await testShards({ without: ['cocoid'] }));
  const missing = await t.throwsAsync(load(missingDir), { instanceOf: InputError });
  t.is(missing.message, `${join(missingDir, first)}, field "cocoid": missing column "cocoid"; the file has "image", "filepath", "sentids", "filename", "imgid", "split", "sentences"`);

  const foreignDir = await snapshotWith(await testShards({ without: ['sentences'] }));
  const foreign = await t.throwsAsync(load(foreignDir), { instanceOf: InputError });
  t.true(foreign.message.startsWith(`${join(foreignDir, first)}: neither lmms-lab/flickr30k's columns`), foreign.message);

  const nullSentenceDir = await snapshotWith(await testShards({ edit: (row, index) => (index === 6 ? { ...row, sentences: null } : row) }));
  const nullSentence = await t.throwsAsync(load(nullSentenceDir), { instanceOf: InputError });
  t.is(nullSentence.message, `${join(nullSentenceDir, first)}, record "row group 1, row 6", field "sentences": expected a sentence {tokens, raw, imgid, sentid}, got null`);

  const strayDir = await snapshotWith(await testShards({ edit: (row, index) => (index === 7 ? { ...row, sentences: { ...(row.sentences as object), sentid: 99 } } : row) }));
  const stray = await t.throwsAsync(load(strayDir), { instanceOf: InputError });
  t.is(stray.message, `${join(strayDir, first)}, record "row group 1, row 7", field "sentids": expected the image's sentence ids, including this row's 99, got a list of 6`);

  const splitDir = await snapshotWith(await testShards({ edit: (row, index) => (index === 6 ? { ...row, split: 'val' } : row) }));
  const split = await t.throwsAsync(load(splitDir), { instanceOf: InputError });
  t.is(split.message, `${join(splitDir, first)}, record "row group 1, row 6", field "split": image 1 is in Karpathy split "test" at test-00000-of-00002.parquet row group 1, row 5, "val" here`);

  const predictions = join(splitDir, 'similarities.npy');
  await writeNpyMatrix(predictions, { data: new Float32Array(3 * 16), rows: 3, cols: 16 });
  const cli = await vlbench(['score', '--task', 'retrieval', '--data-dir', splitDir, '--split', 'test', '--similarities', predictions]);
  t.is(cli.code, 2);
  t.is(cli.stderr, `vlbench: error: ${split.message}\n`, 'one line, no stack trace');
});

test.serial('vlbench run trains and scores retrieval on a Karpathy COCO parquet snapshot as on the same images in the Karpathy layout', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-coco-run-'));
  const trainImages = [...imagesFrom(3, 2, 'train'), ...imagesFrom(5, 1, 'restval')];
  const snapshot = await snapshotWith({
    'data/train-00000-of-00001.parquet': shard(await cocoRows(trainImages), { codec: 'zstd' }),
    'data/test-00000-of-00001.parquet': shard(await cocoRows(TEST_IMAGES)),
  });
  const official = join(dir, 'official');
  await writeOfficial(official, [...trainImages, ...TEST_IMAGES]);
  const model = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
  const common = { task: 'retrieval', modelDir: model, method: 'ft', epochs: 2, backend: 'wasm' as const, seed: 3, selectOnEvaluation: true, validationSplit: 'test', split: 'test' };
  const hooks = { db: join(dir, 'board.db'), runsDir: join(dir, 'runs'), log: () => undefined };
  // The Hub's "train" is Karpathy's train+restval.
  const fromParquet = await executeRun({ ...common, dataDir: snapshot, trainSplit: 'train' }, hooks);
  const fromJson = await executeRun({ ...common, dataDir: official, trainSplit: 'train+restval' }, hooks);
  const [parquetSplit] = fromParquet.splits;
  const [jsonSplit] = fromJson.splits;
  t.deepEqual(parquetSplit.report.perExample, jsonSplit.report.perExample);
  t.deepEqual(parquetSplit.report.metrics, jsonSplit.report.metrics);
  t.is(parquetSplit.report.perExample.length, 3);
  t.truthy(parquetSplit.record, 'recorded in the leaderboard');
  t.not(parquetSplit.record!.splitFingerprint, jsonSplit.record!.splitFingerprint, 'recorded as different splits');
});
