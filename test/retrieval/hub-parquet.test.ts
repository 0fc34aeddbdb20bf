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
import { FLICKR30K_FIELDS, parquetOf, writeHubCache } from '../support/hub-parquet-writer.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

const COMMIT_A = 'a'.repeat(40);
const COMMIT_B = 'b'.repeat(40);

/** A Flickr30k image as Karpathy's dataset_flickr30k.json has it: five captions, sentids imgid·5 + k. */
interface FlickrImage {
  imgid: number;
  filename: string;
  captions: string[];
}

const WORDS = ['dog', 'child', 'bicycle', 'beach', 'market', 'horse', 'guitar', 'snow'];
function imagesFrom(first: number, count: number): FlickrImage[] {
  return Array.from({ length: count }, (_, offset) => {
    const imgid = first + offset;
    const word = WORDS[imgid % WORDS.length];
    return { imgid, filename: `${1000092795 + imgid * 7}.jpg`, captions: [`A ${word} in the sun .`, `Someone near a ${word}.`, `The ${word}, seen from afar`, `Two people and a ${word} .`, `${word} ${imgid}`] };
  });
}
const TEST_IMAGES = imagesFrom(0, 4);

/** A 6×4 RGB image, different for each image, as PNG (lossless: the decoded pixels compare exactly). */
function pixelsOf(imgid: number): Buffer {
  return Buffer.from(Array.from({ length: 6 * 4 * 3 }, (_, index) => ((imgid + 1) * 41 + index * 13) % 256));
}
async function pngOf(imgid: number): Promise<Uint8Array> {
  return new Uint8Array(await sharp(pixelsOf(imgid), { raw: { width: 6, height: 4, channels: 3 } }).png().toBuffer());
}

type RowEdit = (row: Record<string, unknown>, index: number) => Record<string, unknown>;

/** The images as lmms-lab/flickr30k has them: one row per image, ids as text. */
async function flickrParquet(images: readonly FlickrImage[], options: { codec?: 'snappy' | 'zstd'; edit?: RowEdit; without?: string[] } = {}): Promise<Uint8Array> {
  const rows = await Promise.all(images.map(async (image, index) => {
    const row = {
      image: { bytes: await pngOf(image.imgid), path: image.filename },
      caption: image.captions,
      sentids: image.captions.map((_, k) => String(image.imgid * 5 + k)),
      img_id: String(image.imgid),
      filename: image.filename,
    };
    return options.edit ? options.edit(row, index) : row;
  }));
  return parquetOf(FLICKR30K_FIELDS.filter((field) => !(options.without ?? []).includes(field.name)), rows, { codec: options.codec ?? 'snappy', rowsPerGroup: 2 });
}

/** The same images in Karpathy's dataset_flickr30k.json, their files beside it. */
async function writeOfficial(dir: string, splits: Record<string, readonly FlickrImage[]>): Promise<string> {
  await mkdir(dir, { recursive: true });
  const images = Object.entries(splits).flatMap(([split, list]) => list.map((image) => ({
    filename: image.filename,
    imgid: image.imgid,
    sentences: image.captions.map((raw, k) => ({ tokens: raw.toLowerCase().split(' '), raw, imgid: image.imgid, sentid: image.imgid * 5 + k })),
    split,
    sentids: image.captions.map((_, k) => image.imgid * 5 + k),
  })));
  const file = join(dir, 'dataset_flickr30k.json');
  await writeFile(file, JSON.stringify({ images, dataset: 'flickr30k' }));
  for (const list of Object.values(splits)) for (const image of list) await writeFile(join(dir, image.filename), await pngOf(image.imgid));
  return file;
}

/** Two shards, snappy then zstd, two rows a group. */
async function testShards(images: readonly FlickrImage[], first: Parameters<typeof flickrParquet>[1] = {}): Promise<Record<string, Uint8Array>> {
  return {
    'data/test-00000-of-00002.parquet': await flickrParquet(images.slice(0, 3), first),
    'data/test-00001-of-00002.parquet': await flickrParquet(images.slice(3), { codec: 'zstd' }),
  };
}

async function fixture(): Promise<{ dir: string; cache: string; annotations: string; similarities: string }> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-flickr-'));
  // Revision B: image 1's last caption belongs to image 2 instead (same matrix shape), so its files and its scores differ.
  const moved: RowEdit = (row, index) => {
    const captions = row.caption as string[];
    const sentids = row.sentids as string[];
    if (index === 1) return { ...row, caption: captions.slice(0, 4), sentids: sentids.slice(0, 4) };
    if (index === 2) return { ...row, caption: [TEST_IMAGES[1].captions[4], ...captions], sentids: ['9', ...sentids] };
    return row;
  };
  const cache = await writeHubCache(join(dir, 'hub'), 'lmms-lab/flickr30k', { [COMMIT_A]: await testShards(TEST_IMAGES), [COMMIT_B]: await testShards(TEST_IMAGES, { edit: moved }) }, COMMIT_A);
  const annotations = await writeOfficial(join(dir, 'official'), { test: TEST_IMAGES });
  // Similarities with ties and misses: caption c of image i scores higher the closer its word is.
  const captions = TEST_IMAGES.flatMap((image) => image.captions);
  const data = new Float32Array(TEST_IMAGES.length * captions.length);
  TEST_IMAGES.forEach((image, row) => captions.forEach((caption, column) => {
    data[row * captions.length + column] = caption.includes(WORDS[image.imgid]) ? 0.5 + ((column * 7) % 5) / 10 : ((row + column) % 3) / 4;
  }));
  const similarities = join(dir, 'similarities.npy');
  await writeNpyMatrix(similarities, { data, rows: TEST_IMAGES.length, cols: captions.length });
  return { dir, cache, annotations, similarities };
}

const withoutPath = ({ path: _path, ...image }: { path: string }) => image;

test('a datasets--lmms-lab--flickr30k cache folder gives the images and captions the Karpathy JSON gives', async (t) => {
  const { cache, annotations } = await fixture();
  const parquet = await loadRetrievalSplit({ dataDir: cache, split: 'test' });
  const json = await loadRetrievalSplit({ split: 'test', files: { annotations } });
  t.is(parquet.split, 'test');
  t.deepEqual(parquet.examples.map(withoutPath), json.examples.map(withoutPath));
  t.deepEqual(parquet.examples.map((image) => image.path), [0, 1, 2].map((row) => `${parquet.files[0]}#row=${row}`).concat(`${parquet.files[1]}#row=0`));
  t.not(parquet.fingerprint, json.fingerprint, 'a parquet copy is never the same split as the JSON file');
  const b = await loadRetrievalSplit({ dataDir: cache, split: 'test', revision: COMMIT_B });
  t.not(b.fingerprint, parquet.fingerprint);
  const train = await t.throwsAsync(loadRetrievalSplit({ dataDir: cache, split: 'train' }), { instanceOf: InputError });
  t.is(train.message, `${join(cache, 'snapshots', COMMIT_A)} (revision ${COMMIT_A}), field "--split": no parquet files of split "train" here; splits there: test (lmms-lab/flickr30k has one, "test": all 31,783 images, without Karpathy's train/val/test assignment)`);
  for (const index of [0, 3]) {
    const { data } = await sharp(await readHubParquetImage(parquet.examples[index].path)).raw().toBuffer({ resolveWithObject: true });
    t.deepEqual(data, pixelsOf(parquet.examples[index].imgid));
  }
});

test.serial('vlbench score gives the same retrieval report to the last bit on the flickr30k parquet and on the Karpathy JSON', async (t) => {
  const { cache, annotations, similarities } = await fixture();
  const fromJson = await runScore({ task: 'retrieval', annotations, split: 'test', similarities });
  const fromParquet = await runScore({ task: 'retrieval', dataDir: cache, split: 'test', similarities });
  t.deepEqual(fromParquet.official, fromJson.official);
  for (const [name, value] of Object.entries(fromJson.metrics)) t.true(Object.is(fromParquet.metrics[name], value), `${name}: ${fromParquet.metrics[name]} vs ${value}`);
  t.deepEqual(fromParquet.perExample, fromJson.perExample);
  const cli = await vlbench(['score', '--task', 'retrieval', '--data-dir', cache, '--split', 'test', '--similarities', similarities]);
  const cliJson = await vlbench(['score', '--task', 'retrieval', '--annotations', annotations, '--split', 'test', '--similarities', similarities]);
  t.is(cli.code, 0, cli.stderr);
  t.is(cli.stdout, cliJson.stdout);
  const other = await vlbench(['score', '--task', 'retrieval', '--data-dir', cache, '--revision', COMMIT_B, '--split', 'test', '--similarities', similarities]);
  t.is(other.code, 0, other.stderr);
  t.not(other.stdout, cli.stdout, 'revision B gave a caption to another image');
});

async function snapshotWith(files: Record<string, Uint8Array>): Promise<string> {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-flickr-bad-'));
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), bytes);
  }
  return dir;
}

test.serial('malformed flickr30k parquet: one error naming the file, and the row group, row and column where known', async (t) => {
  const first = 'data/test-00000-of-00002.parquet';
  const good = await testShards(TEST_IMAGES);
  const load = (dir: string) => loadRetrievalSplit({ dataDir: dir, split: 'test' });

  const truncatedDir = await snapshotWith({ ...good, [first]: good[first].subarray(0, Math.floor(good[first].length / 2)) });
  const truncated = await t.throwsAsync(load(truncatedDir), { instanceOf: InputError });
  t.true(truncated.message.startsWith(`${join(truncatedDir, first)}: not a readable parquet file (truncated or damaged: `), truncated.message);

  const missingDir = await snapshotWith(await testShards(TEST_IMAGES, { without: ['sentids'] }));
  const missing = await t.throwsAsync(load(missingDir), { instanceOf: InputError });
  t.is(missing.message, `${join(missingDir, first)}, field "sentids": missing column "sentids"; the file has "image", "caption", "img_id", "filename"`);

  const shortDir = await snapshotWith(await testShards(TEST_IMAGES, { edit: (row, index) => (index === 2 ? { ...row, sentids: (row.sentids as string[]).slice(0, 4) } : row) }));
  const short = await t.throwsAsync(load(shortDir), { instanceOf: InputError });
  t.is(short.message, `${join(shortDir, first)}, record "row group 1, row 2", field "sentids": expected one sentence id per caption (5), got a list of 4`);

  const twiceDir = await snapshotWith(await testShards(TEST_IMAGES, { edit: (row, index) => (index === 1 ? { ...row, img_id: '0' } : row) }));
  const twice = await t.throwsAsync(load(twiceDir), { instanceOf: InputError });
  t.is(twice.message, `${join(twiceDir, first)}, record "row group 0, row 1", field "img_id": image id 0 appears twice in the split (first at test-00000-of-00002.parquet row group 0, row 0)`);

  const badIdDir = await snapshotWith(await testShards(TEST_IMAGES, { edit: (row, index) => (index === 2 ? { ...row, img_id: 'n2' } : row) }));
  const badId = await t.throwsAsync(load(badIdDir), { instanceOf: InputError });
  t.is(badId.message, `${join(badIdDir, first)}, record "row group 1, row 2", field "img_id": expected an image id (a non-negative integer, as text), got "n2"`);

  const { similarities } = await fixture();
  const cli = await vlbench(['score', '--task', 'retrieval', '--data-dir', shortDir, '--split', 'test', '--similarities', similarities]);
  t.is(cli.code, 2);
  t.is(cli.stderr, `vlbench: error: ${short.message}\n`, 'one line, no stack trace');
});

test.serial('vlbench run trains and scores retrieval on a flickr30k parquet snapshot as on the same images in the Karpathy layout', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-flickr-run-'));
  // lmms-lab/flickr30k has only "test"; a snapshot in its layout with a train split too (as a user's own export would have).
  const trainImages = imagesFrom(4, 4);
  const snapshot = join(dir, 'snapshot');
  await mkdir(join(snapshot, 'data'), { recursive: true });
  await writeFile(join(snapshot, 'data', 'train-00000-of-00001.parquet'), await flickrParquet(trainImages, { codec: 'zstd' }));
  await writeFile(join(snapshot, 'data', 'test-00000-of-00001.parquet'), await flickrParquet(TEST_IMAGES));
  const official = join(dir, 'official');
  await writeOfficial(official, { train: trainImages, test: TEST_IMAGES });
  const model = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
  const common = { task: 'retrieval', modelDir: model, method: 'ft', epochs: 2, backend: 'wasm' as const, seed: 3, selectOnEvaluation: true, trainSplit: 'train', validationSplit: 'test', split: 'test' };
  const hooks = { db: join(dir, 'board.db'), runsDir: join(dir, 'runs'), log: () => undefined };
  const fromParquet = await executeRun({ ...common, dataDir: snapshot }, hooks);
  const fromJson = await executeRun({ ...common, dataDir: official }, hooks);
  const [parquetSplit] = fromParquet.splits;
  const [jsonSplit] = fromJson.splits;
  t.deepEqual(parquetSplit.report.perExample, jsonSplit.report.perExample);
  t.deepEqual(parquetSplit.report.metrics, jsonSplit.report.metrics);
  t.is(parquetSplit.report.perExample.length, 4);
  t.truthy(parquetSplit.record, 'recorded in the leaderboard');
  t.not(parquetSplit.record!.splitFingerprint, jsonSplit.record!.splitFingerprint, 'recorded as different splits');
});

test.serial('zero-shot retrieval on lmms-lab/flickr30k as it is, one "test" split: no --train-split needed; a training run still asks for one', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-hub-flickr-zeroshot-'));
  const snapshot = join(dir, 'snapshot');
  await mkdir(join(snapshot, 'data'), { recursive: true });
  await writeFile(join(snapshot, 'data', 'test-00000-of-00001.parquet'), await flickrParquet(TEST_IMAGES));
  const official = join(dir, 'official');
  await writeOfficial(official, { test: TEST_IMAGES });
  const model = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
  const common = { task: 'retrieval', modelDir: model, method: 'zeroshot', backend: 'wasm' as const, seed: 3, split: 'test' };
  const hooks = { db: join(dir, 'board.db'), runsDir: join(dir, 'runs'), log: () => undefined };
  const fromParquet = await executeRun({ ...common, dataDir: snapshot }, hooks);
  const fromJson = await executeRun({ ...common, dataDir: official }, hooks);
  t.is(fromParquet.splits[0].report.perExample.length, 4);
  t.deepEqual(fromParquet.splits[0].report.metrics, fromJson.splits[0].report.metrics);
  t.truthy(fromParquet.splits[0].record, 'recorded in the leaderboard');
  await t.throwsAsync(executeRun({ ...common, method: 'ft', epochs: 1, dataDir: snapshot }, hooks), { instanceOf: InputError, message: /needs --train-split and --split/ });
});
