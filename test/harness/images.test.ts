import test from 'ava';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { OPENAI_CLIP_PREPROCESSING, preprocessImage, preprocessedBatches, readPreprocessorConfig, resizedSize, type ImagePreprocessing } from '../../models/image-pipeline.ts';
import { boxInCrop } from '../../harness/adapters/scene-graphs.ts';

const noResize: ImagePreprocessing = { ...OPENAI_CLIP_PREPROCESSING, doResize: false, doCenterCrop: false };

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vlbench-images-'));
}

test('a lossless 2×1 PNG gives the exact normalised values, channels first', async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'two.png');
  const rgb = Buffer.from([0, 64, 255, 255, 128, 0]);
  await sharp(rgb, { raw: { width: 2, height: 1, channels: 3 } }).png().toFile(file);
  const pixels = await preprocessImage(file, noResize);
  const { mean, std } = OPENAI_CLIP_PREPROCESSING;
  const expected = new Float32Array(6);
  for (let c = 0; c < 3; c++) for (let p = 0; p < 2; p++) expected[c * 2 + p] = (rgb[p * 3 + c] * (1 / 255) - mean[c]) / std[c];
  t.deepEqual(Array.from(pixels), Array.from(expected));
});

test('resizing follows HF: shortest edge to the size, long side truncated', (t) => {
  t.deepEqual(resizedSize(640, 480, 224), { width: 298, height: 224 });
  t.deepEqual(resizedSize(480, 640, 224), { width: 224, height: 298 });
  t.deepEqual(resizedSize(100, 100, 224), { width: 224, height: 224 });
});

test('EXIF orientation is applied before cropping', async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'rotated.jpg');
  // 40 wide × 20 high: left half red, right half blue; orientation 6 shows it rotated 90° clockwise.
  const raw = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toFile(file);
  const prep: ImagePreprocessing = { ...OPENAI_CLIP_PREPROCESSING, resizeShortestEdge: 20, cropHeight: 20, cropWidth: 20, doNormalize: false };
  const pixels = await preprocessImage(file, prep);
  t.is(pixels.length, 3 * 20 * 20);
  const red = (row: number) => pixels[0 * 400 + row * 20 + 10];
  const blue = (row: number) => pixels[2 * 400 + row * 20 + 10];
  t.true(red(2) > 0.9 && blue(2) < 0.1, 'top of the displayed image is red');
  t.true(red(17) < 0.1 && blue(17) > 0.9, 'bottom of the displayed image is blue');
});

test('a corrupt file is refused with an error naming it', async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'broken.jpg');
  await writeFile(file, Buffer.from('this is not a jpeg'));
  const error = await t.throwsAsync(preprocessImage(file, OPENAI_CLIP_PREPROCESSING));
  t.regex(error!.message, /broken\.jpg: cannot decode image/);
});

test('a missing file is refused with an error naming it', async (t) => {
  const error = await t.throwsAsync(preprocessImage('/nonexistent/x.png', OPENAI_CLIP_PREPROCESSING));
  t.regex(error!.message, /\/nonexistent\/x\.png: cannot read image: ENOENT/);
});

test('a pixel bomb (over the input pixel limit) is refused', async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'bomb.png');
  // 10000 × 10000 of one colour compresses to a few KB but decodes to 300 MB.
  await sharp({ create: { width: 10000, height: 10000, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png({ compressionLevel: 9 }).toFile(file);
  const error = await t.throwsAsync(preprocessImage(file, OPENAI_CLIP_PREPROCESSING));
  t.regex(error!.message, /bomb\.png: cannot decode image: .*pixel limit/i);
});

test('batches keep file order and the [n, 3, H, W] shape', async (t) => {
  const dir = await tempDir();
  const files: string[] = [];
  for (let i = 0; i < 5; i++) {
    const file = join(dir, `${i}.png`);
    await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: i * 50, g: 0, b: 0 } } }).png().toFile(file);
    files.push(file);
  }
  const prep: ImagePreprocessing = { ...OPENAI_CLIP_PREPROCESSING, resizeShortestEdge: 4, cropHeight: 4, cropWidth: 4, doNormalize: false };
  const seen: number[] = [];
  const shapes: number[][] = [];
  for await (const batch of preprocessedBatches(files, prep, { batchSize: 2, concurrency: 3 })) {
    shapes.push(batch.shape);
    for (let i = 0; i < batch.files.length; i++) seen.push(Math.round(batch.pixels[i * 48] * 255));
  }
  t.deepEqual(shapes, [[2, 3, 4, 4], [2, 3, 4, 4], [1, 3, 4, 4]]);
  t.deepEqual(seen, [0, 50, 100, 150, 200]);
});

test('preprocessor_config.json is read with HF field names, and a non-bicubic resample refused', async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'preprocessor_config.json');
  await writeFile(file, JSON.stringify({ size: { shortest_edge: 32 }, crop_size: { height: 32, width: 32 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 3 }));
  const prep = await readPreprocessorConfig(file);
  t.is(prep.resizeShortestEdge, 32);
  t.is(prep.cropWidth, 32);
  t.deepEqual(prep.mean, [0.5, 0.5, 0.5]);
  await writeFile(file, JSON.stringify({ resample: 2 }));
  const error = await t.throwsAsync(readPreprocessorConfig(file));
  t.regex(error!.message, /field "resample": only bicubic/);
});

test("SigLIP's preprocessor config squashes to size {height, width} without a crop, and boxes follow the squash on each axis", async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'preprocessor_config.json');
  // As google/siglip-base-patch16-224 writes it: no do_center_crop and no crop_size at all.
  await writeFile(file, JSON.stringify({ image_processor_type: 'SiglipImageProcessor', do_resize: true, size: { height: 224, width: 224 }, resample: 3, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] }));
  const prep = await readPreprocessorConfig(file);
  t.deepEqual(prep.resizeExact, { width: 224, height: 224 });
  t.false(prep.doCenterCrop);
  // A 448×224 image: x halves, y stays; the box's right half of the picture is the right half of the input.
  t.deepEqual(boxInCrop([224, 0, 448, 112], 448, 224, prep), [0.5, 0, 1, 0.5]);
  // A CLIP config with size {height, width} and a crop: the exact resize, then the crop, as transformers does.
  await writeFile(file, JSON.stringify({ size: { height: 40, width: 60 }, crop_size: { height: 32, width: 32 } }));
  const clipLike = await readPreprocessorConfig(file);
  t.deepEqual(clipLike.resizeExact, { width: 60, height: 40 });
  t.true(clipLike.doCenterCrop);
});
