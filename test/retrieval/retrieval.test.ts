import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { runScore } from '../../harness/score-files.ts';
import {
  captionImageIndexOf,
  encodeNpyMatrix,
  retrievalCaptions,
  retrievalTask,
  scoreRetrieval,
  type RetrievalImage,
} from '../../tasks/retrieval/index.ts';

type Json = Record<string, unknown>;
let nextSentid = 0;

/** A COCO Karpathy image record (dataset_coco.json layout). */
function cocoImage(imgid: number, split: string, captions: number, overrides: Json = {}): Json {
  const cocoid = 100 + imgid;
  const folder = split === 'train' ? 'train2014' : 'val2014';
  const sentences = Array.from({ length: captions }, (_, k) => {
    const sentid = nextSentid++;
    return { tokens: ['a', 'cat', String(k)], raw: `A cat ${imgid}.${k}.`, imgid, sentid };
  });
  return {
    filepath: folder,
    sentids: sentences.map((s) => s.sentid),
    filename: `COCO_${folder}_${String(cocoid).padStart(12, '0')}.jpg`,
    imgid,
    split,
    sentences,
    cocoid,
    ...overrides,
  };
}

/** A Flickr30k Karpathy image record: no filepath, no cocoid. */
function flickrImage(imgid: number, split: string, captions: number): Json {
  const { filepath: _f, cocoid: _c, ...rest } = cocoImage(imgid, split, captions, { filename: `${1000 + imgid}.jpg` });
  return rest;
}

function writeKarpathy(dataset: string, images: Json[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-karpathy-'));
  const file = join(dir, `dataset_${dataset}.json`);
  writeFileSync(file, JSON.stringify({ images, dataset }));
  return file;
}

/** A split with the given captions per image, without a file: for scoring tests. */
function fakeSplit(captionsPerImage: number[]): LoadedSplit<RetrievalImage> {
  let index = 0;
  const examples = captionsPerImage.map((count, row) => ({
    id: String(row),
    imgid: row,
    filename: `${row}.jpg`,
    path: `/images/${row}.jpg`,
    karpathySplit: 'test',
    captions: Array.from({ length: count }, () => ({ id: index, text: `caption ${index}`, index: index++, imageIndex: row })),
  }));
  return { task: 'retrieval', taskVersion: '1', split: 'test', fingerprint: '0'.repeat(64), files: [], examples };
}

test('COCO layout: split selection, file order, variable captions, image paths, fingerprint', async (t) => {
  nextSentid = 0;
  const file = writeKarpathy('coco', [
    cocoImage(0, 'train', 5),
    cocoImage(1, 'test', 7),
    cocoImage(2, 'restval', 5),
    cocoImage(3, 'val', 5),
    cocoImage(4, 'test', 5),
    cocoImage(5, 'train', 6),
    cocoImage(6, 'test', 6),
  ]);
  const test5k = await retrievalTask.load({ split: 'test', files: { annotations: file } });
  t.is(test5k.task, 'retrieval');
  t.deepEqual(test5k.examples.map((image) => image.id), ['1', '4', '6']);
  t.deepEqual(test5k.examples.map((image) => image.captions.length), [7, 5, 6]);
  t.deepEqual(test5k.examples.map((image) => image.cocoid), [101, 104, 106]);
  t.is(test5k.examples[0].path, join(file, '..', 'val2014', 'COCO_val2014_000000000101.jpg'));
  const captions = retrievalCaptions(test5k);
  t.is(captions.length, 18);
  t.deepEqual(captions.slice(0, 8).map((c) => c.text), [0, 1, 2, 3, 4, 5, 6].map((k) => `A cat 1.${k}.`).concat('A cat 4.0.'));
  t.deepEqual(captions.map((c) => c.index), [...Array(18).keys()]);
  t.deepEqual(captions[7], { id: 5 + 7 + 5 + 5, text: 'A cat 4.0.', index: 7, imageIndex: 1 });
  t.deepEqual([...captionImageIndexOf(test5k)], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);

  const trainRestval = await retrievalTask.load({ split: 'train+restval', files: { annotations: file }, imagesDir: '/data/coco' });
  t.deepEqual(trainRestval.examples.map((image) => [image.id, image.karpathySplit]), [['0', 'train'], ['2', 'restval'], ['5', 'train']]);
  t.is(trainRestval.examples[2].path, '/data/coco/train2014/COCO_train2014_000000000105.jpg');
  const train = await retrievalTask.load({ split: 'train', files: { annotations: file } });
  t.deepEqual(train.examples.map((image) => image.id), ['0', '5']);
  const val = await retrievalTask.load({ split: 'val', dataDir: join(file, '..') });
  t.deepEqual(val.examples.map((image) => image.id), ['3']);

  const again = await retrievalTask.load({ split: 'test', files: { annotations: file } });
  t.is(again.fingerprint, test5k.fingerprint);
  t.not(train.fingerprint, test5k.fingerprint);
  await t.throwsAsync(retrievalTask.load({ split: 'testing', files: { annotations: file } }), { message: /unknown Karpathy split "testing"; expected one of test, val, train, restval, train\+restval/ });
});

test('Flickr30k layout: no filepath, images beside the JSON unless imagesDir says otherwise', async (t) => {
  const file = writeKarpathy('flickr30k', [flickrImage(0, 'test', 5), flickrImage(1, 'train', 5)]);
  const split = await retrievalTask.load({ split: 'test', files: { annotations: file } });
  t.is(split.examples[0].path, join(file, '..', '1000.jpg'));
  t.is(split.examples[0].cocoid, undefined);
  const elsewhere = await retrievalTask.load({ split: 'test', files: { annotations: file }, imagesDir: '/data/flickr30k-images' });
  t.is(elsewhere.examples[0].path, '/data/flickr30k-images/1000.jpg');
});

test('bad Karpathy files are refused naming the file, the image record and the field', async (t) => {
  const escape = writeKarpathy('coco', [cocoImage(0, 'test', 5), cocoImage(1, 'test', 5, { filepath: '../..', filename: 'etc/passwd' })]);
  const imagesFolder = dirname(escape);
  await t.throwsAsync(retrievalTask.load({ split: 'test', files: { annotations: escape } }), {
    instanceOf: InputError,
    message: `${escape}, record "images[1] (imgid 1)", field "filepath/filename": image path "../../etc/passwd" resolves outside the images folder ${imagesFolder}`,
  });
  const absolute = writeKarpathy('flickr30k', [{ ...flickrImage(0, 'test', 5), filename: '/etc/passwd' }]);
  await t.throwsAsync(retrievalTask.load({ split: 'test', files: { annotations: absolute } }), {
    message: `${absolute}, record "images[0] (imgid 0)", field "filename": expected a path relative to the images folder ${dirname(absolute)}, got "/etc/passwd"`,
  });

  const noSentences = writeKarpathy('coco', [cocoImage(0, 'test', 5), cocoImage(1, 'test', 0)]);
  await t.throwsAsync(retrievalTask.load({ split: 'test', files: { annotations: noSentences } }), {
    message: `${noSentences}, record "images[1] (imgid 1)", field "sentences": expected a non-empty array of sentences, got an array of 0`,
  });
  const badSplit = writeKarpathy('coco', [cocoImage(0, 'testing', 5)]);
  await t.throwsAsync(retrievalTask.load({ split: 'test', files: { annotations: badSplit } }), {
    message: `${badSplit}, record "images[0] (imgid 0)", field "split": expected "train", "val", "test" or "restval", got "testing"`,
  });
  const onlyTrain = writeKarpathy('coco', [cocoImage(0, 'train', 5)]);
  await t.throwsAsync(retrievalTask.load({ split: 'test', files: { annotations: onlyTrain } }), { message: `${onlyTrain}: no images in split "test" (the file's splits: train)` });
  const twice = writeKarpathy('coco', [cocoImage(0, 'test', 5), cocoImage(0, 'test', 5)]);
  await t.throwsAsync(retrievalTask.load({ split: 'test', files: { annotations: twice } }), { message: `${twice}, record "images[1] (imgid 0)", field "imgid": imgid appears twice in the split` });
});

test('ties count against the model; an image with 6 captions is a hit when any of them ranks', (t) => {
  // Image 0 has captions 0..5, image 1 has caption 6.
  const split = fakeSplit([6, 1]);
  // prettier-ignore
  const s = new Float32Array([
    0.1, 0.9, 0.5, 0.2, 0.2, 0.2, 0.9,
    0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4,
  ]);
  // i2t: image 0's best own caption (0.9) ties with caption 6 (0.9) → rank 2.
  //      image 1's caption (0.4) is beaten by all six others → rank 7.
  // t2i: caption 1 (0.9 vs 0.5) → rank 1; caption 2 ties (0.5 vs 0.5) → rank 2; captions 0, 3, 4, 5 → rank 2;
  //      caption 6 (0.4 vs 0.9) → rank 2.
  const scores = scoreRetrieval(s, 2, captionImageIndexOf(split));
  t.deepEqual([...scores.imageRanks], [2, 7]);
  t.deepEqual([...scores.captionRanks], [2, 1, 2, 2, 2, 2, 2]);
  t.deepEqual(scores.i2t, { r1: 0, r5: 50, r10: 100 });
  t.deepEqual(scores.t2i, { r1: 100 / 7, r5: 100, r10: 100 });
  t.is(scores.rsum, 0 + 50 + 100 + 100 / 7 + 100 + 100);
  t.is(scores.meanRecall, scores.rsum / 6);

  const report = retrievalTask.score(split, { data: s, rows: 2, cols: 7 });
  t.deepEqual(report.official, { i2t: { r1: 0, r5: 50, r10: 100 }, t2i: { r1: 100 / 7, r5: 100, r10: 100 }, rsum: 0 + 50 + 100 + 100 / 7 + 100 + 100, meanRecall: (0 + 50 + 100 + 100 / 7 + 100 + 100) / 6 });
  t.is(report.primary, 'rsum');
  // Per image: 100 × own i2t hits + 100 × (2 images / 7 captions) × its captions' t2i hits.
  t.deepEqual(report.perExample.map((e) => e.id), ['0', '1']);
  t.true(Math.abs(report.perExample[0].score - (200 + (100 * 2 / 7) * (3 + 2 * 5))) < 1e-9);
  t.true(Math.abs(report.perExample[1].score - (100 + (100 * 2 / 7) * 2)) < 1e-9);
  t.true(Math.abs((report.perExample[0].score + report.perExample[1].score) / 2 - report.metrics.rsum) < 1e-9);

  // Same score everywhere: every query ranks last, nothing is a hit at 1.
  const flat = scoreRetrieval(new Float64Array(14).fill(0.3), 2, captionImageIndexOf(split));
  t.deepEqual([...flat.imageRanks], [2, 7]);
  t.deepEqual([...flat.captionRanks], [2, 2, 2, 2, 2, 2, 2]);
  t.is(flat.i2t.r1 + flat.t2i.r1, 0);
});

test('R@1, R@5 and R@10 boundaries and median ranks, hand-computed on 12 images', (t) => {
  const n = 12;
  // Caption c of image c: the gold cell scores 0.5; the images listed score 0.6 (ranked above), the rest 0.4.
  const above: Record<number, number[]> = { 1: [2, 3, 4, 5], 2: [3, 4, 5, 6, 7], 3: [4, 5, 6, 7, 8, 9, 10, 11, 0], 4: [5, 6, 7, 8, 9, 10, 11, 0, 1, 2] };
  const s = new Float32Array(n * n).fill(0.4);
  for (let c = 0; c < n; c++) {
    s[c * n + c] = 0.5;
    for (const image of above[c] ?? []) s[image * n + c] = 0.6;
  }
  const scores = scoreRetrieval(s, n, Int32Array.from({ length: n }, (_, i) => i));
  t.deepEqual([...scores.captionRanks], [1, 5, 6, 10, 11, 1, 1, 1, 1, 1, 1, 1]);
  // Image i ranks 1 + the number of captions whose "above" list holds i.
  t.deepEqual([...scores.imageRanks], [3, 2, 3, 3, 4, 5, 4, 4, 3, 3, 3, 3]);
  t.deepEqual(scores.t2i, { r1: (100 * 8) / 12, r5: (100 * 9) / 12, r10: (100 * 11) / 12 });
  t.deepEqual(scores.i2t, { r1: 0, r5: 100, r10: 100 });
  t.is(scores.t2iMedianRank, 1);
  t.is(scores.i2tMedianRank, 3);
  t.is(scores.t2iMeanRank, (8 + 5 + 6 + 10 + 11) / 12);
});

test('folds score each block of images alone and average the recalls', (t) => {
  // 4 images, one caption each; 2 folds = images {0, 1} and {2, 3}.
  const s = new Float64Array(16);
  for (let i = 0; i < 4; i++) s[i * 4 + i] = 0.5;
  s[1 * 4 + 0] = 0.7; // image 1 beats caption 0's image, inside fold 0
  s[2 * 4 + 0] = 0.9; // image 2 beats it too, but from fold 1
  const index = Int32Array.from([0, 1, 2, 3]);
  const whole = scoreRetrieval(s, 4, index);
  t.deepEqual([...whole.captionRanks], [3, 1, 1, 1]);
  t.deepEqual([...whole.imageRanks], [1, 2, 2, 1]);
  t.deepEqual(whole.t2i, { r1: 75, r5: 100, r10: 100 });
  t.deepEqual(whole.i2t, { r1: 50, r5: 100, r10: 100 });

  const folded = scoreRetrieval(s, 4, index, { folds: 2 });
  t.deepEqual([...folded.captionRanks], [2, 1, 1, 1]);
  t.deepEqual([...folded.imageRanks], [1, 2, 1, 1]);
  // fold 0: 50 / 50 at R@1, fold 1: 100 / 100 → mean 75.
  t.deepEqual(folded.t2i, { r1: 75, r5: 100, r10: 100 });
  t.deepEqual(folded.i2t, { r1: 75, r5: 100, r10: 100 });
  t.is(folded.rsum, 550);
  t.is(folded.folds, 2);

  // Through the task: --folds 2 on a split whose folds hold different caption counts.
  const split = fakeSplit([2, 1, 1, 3]);
  const matrix = new Float32Array(4 * 7);
  captionImageIndexOf(split).forEach((image, c) => (matrix[image * 7 + c] = 1));
  const report = retrievalTask.score(split, matrix, { folds: 2 });
  t.is(report.metrics.rsum, 600);
  t.is(report.metrics.folds, 2);
  t.true(Math.abs(report.perExample.reduce((sum, e) => sum + e.score, 0) / 4 - 600) < 1e-9);
  t.throws(() => retrievalTask.score(split, matrix, { folds: 3 }), { message: /expected a number of folds that divides the 4 images evenly, got 3/ });
});

test('similarity matrices: .npy read and write, shape and NaN refused with the cell', async (t) => {
  const split = fakeSplit([2, 1]);
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-npy-'));
  const file = join(dir, 'sims.npy');
  const data = new Float32Array([0.9, 0.8, 0.1, 0.2, 0.3, 0.7]);
  await retrievalTask.writeSubmission(split, { data, rows: 2, cols: 3 }, file);
  const read = await retrievalTask.readPredictions(split, file);
  t.deepEqual(read, { data, rows: 2, cols: 3, file });
  t.deepEqual(retrievalTask.score(split, read).official, { i2t: { r1: 100, r5: 100, r10: 100 }, t2i: { r1: 100, r5: 100, r10: 100 }, rsum: 600, meanRecall: 100 });

  const wrongShape = fakeSplit([2, 2]);
  await t.throwsAsync(retrievalTask.readPredictions(wrongShape, file), {
    message: /sims\.npy: expected a similarity matrix of shape \[2, 4\] \(images × captions of split "test"\), got \[2, 3\]/,
  });
  t.throws(() => retrievalTask.score(split, new Float32Array(5)), { message: /expected a matrix \[2, 3\] .* = 6 values, got 5 values/ });

  const nan = new Float64Array([0.9, 0.8, 0.1, 0.2, Number.NaN, 0.7]);
  t.throws(() => retrievalTask.score(split, { data: nan, rows: 2, cols: 3 }), { message: /expected finite similarities, got NaN at \[image 1, caption 1\]/ });
  const infinite = new Float32Array([0.9, Infinity, 0.1, 0.2, 0.3, 0.7]);
  t.throws(() => retrievalTask.score(split, infinite), { message: /got Infinity at \[image 0, caption 1\]/ });
  await t.throwsAsync(retrievalTask.writeSubmission(split, { data: nan, rows: 2, cols: 3 }, join(dir, 'nan.npy')), { message: /got NaN at \[image 1, caption 1\]/ });
});

test('a NaN in a .npy file is refused naming the file and the cell, through the task and through vlbench score', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-npy-nan-'));
  const annotations = writeKarpathy('coco', [cocoImage(0, 'test', 2), cocoImage(1, 'test', 2)]);
  const split = await retrievalTask.load({ split: 'test', files: { annotations } });
  const file = join(dir, 'sims.npy');
  // Row 1 (image 1), column 3 (its second caption) is NaN.
  writeFileSync(file, encodeNpyMatrix({ data: new Float32Array([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.7, Number.NaN]), rows: 2, cols: 4 }));
  const predictions = await retrievalTask.readPredictions(split, file);
  const expected = `${file}: expected finite similarities, got NaN at [image 1, caption 3] (0-based row, column)`;
  t.throws(() => retrievalTask.score(split, predictions), { instanceOf: InputError, message: expected });
  await t.throwsAsync(runScore({ task: 'retrieval', annotations, split: 'test', similarities: file }), { instanceOf: InputError, message: expected });
});
