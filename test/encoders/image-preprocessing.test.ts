import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { OPENAI_CLIP_PREPROCESSING, preprocessImage, resizedSize, type ImagePreprocessing } from '../../models/image-pipeline.ts';

/**
 * The image pipeline against an independent reference: Hugging Face's CLIPImageProcessor steps
 * done with PIL (scripts/pil-reference-pixels.py wrote test/fixtures/pil-reference), on images
 * built here from the same formulas. HF resizes with PIL's bicubic filter; the pipeline
 * reproduces it, so every value must be PIL's exactly: the resized size, the crop offsets and
 * each of the 3 × crop × crop bytes. (sharp's own cubic resize, used before, was up to 2/255 off
 * when shrinking and 5/255 when enlarging, half a pixel out of alignment.)
 */
const reference = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'pil-reference', 'clip-preprocessing.json'), 'utf8')) as {
  pil: string;
  cases: { name: string; width: number; height: number; size?: number; crop?: number; squash?: [number, number]; resized: [number, number]; top: number; left: number; uint8: number[][][] }[];
};
const FORMULAS: Record<string, (i: number, x: number, y: number, c: number) => number> = {
  'sawtooth-96x40': (i) => (i * 7) % 256,
  'ramp-20x24': (_i, x, y, c) => x * 9 + y * 2 + c * 15,
  'noise-480x200': (i) => Math.imul(i, 2654435761) >>> 24,
};

const dir = mkdtempSync(join(tmpdir(), 'vlbench-pil-reference-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** CLIP's preprocessing at the reference's sizes, with rescaling and normalisation off: the raw 0..255 values. */
function rawValues(size: number, crop: number): ImagePreprocessing {
  return { ...OPENAI_CLIP_PREPROCESSING, resizeShortestEdge: size, cropHeight: crop, cropWidth: crop, rescaleFactor: 1, doNormalize: false };
}

/** SigLIP's preprocessing form at the reference's size: squashed to exactly width × height, no crop, raw 0..255 values. */
function squashedValues(width: number, height: number): ImagePreprocessing {
  return { ...OPENAI_CLIP_PREPROCESSING, resizeShortestEdge: Math.min(width, height), resizeExact: { width, height }, doCenterCrop: false, rescaleFactor: 1, doNormalize: false };
}

for (const example of reference.cases.filter((c) => c.squash)) {
  test(`${example.name}: a resize to an exact size (SigLIP's form, no crop) matches PIL's resize to that size`, async (t) => {
    const { width, height } = example;
    const bytes = Buffer.alloc(width * height * 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = FORMULAS[example.name.replace(/-squash$/, '')](i, 0, 0, 0);
    const file = join(dir, `${example.name}.png`);
    await sharp(bytes, { raw: { width, height, channels: 3 } }).png().toFile(file);
    const [outWidth, outHeight] = example.squash!;
    for (const resampler of ['native', 'js'] as const) {
      const got = await preprocessImage(file, squashedValues(outWidth, outHeight), { resampler });
      t.deepEqual(Array.from(got), example.uint8.flat(2), `${resampler} resampling`);
    }
  });
}

for (const example of reference.cases.filter((c) => !c.squash)) {
  test(`${example.name}: resize, center crop and values match PIL's CLIPImageProcessor steps`, async (t) => {
    const { width, height } = example;
    const bytes = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) {
      const i = (y * width + x) * 3 + c;
      bytes[i] = FORMULAS[example.name](i, x, y, c);
    }
    const file = join(dir, `${example.name}.png`);
    await sharp(bytes, { raw: { width, height, channels: 3 } }).png().toFile(file);

    const size = example.size!;
    const crop = example.crop!;
    t.deepEqual(resizedSize(width, height, size), { width: example.resized[0], height: example.resized[1] });
    const got = await preprocessImage(file, rawValues(size, crop));
    const plane = crop * crop;
    t.is(got.length, 3 * plane);
    const expected = example.uint8.flat(2);
    const mismatches = expected.filter((value, i) => got[i] !== value).length;
    t.is(mismatches, 0, `${mismatches} of ${3 * plane} values differ from PIL ${reference.pil}`);
    t.deepEqual(Array.from(got), expected);

    // Normalised as CLIP does: (v / 255 - mean) / std, per channel, on the same pixel.
    const normalised = await preprocessImage(file, { ...rawValues(size, crop), rescaleFactor: 1 / 255, doNormalize: true });
    for (let c = 0; c < 3; c++) {
      const p = c * plane + 7 * crop + 9;
      t.is(normalised[p], Math.fround((got[p] / 255 - OPENAI_CLIP_PREPROCESSING.mean[c]) / OPENAI_CLIP_PREPROCESSING.std[c]));
    }
  });
}

test('a flat colour goes through resize and crop unchanged: the exact normalised CLIP values', async (t) => {
  const file = join(dir, 'flat.png');
  await sharp({ create: { width: 40, height: 48, channels: 3, background: { r: 220, g: 20, b: 30 } } }).png().toFile(file);
  const got = await preprocessImage(file, { ...OPENAI_CLIP_PREPROCESSING, resizeShortestEdge: 32, cropHeight: 32, cropWidth: 32 });
  // (220/255 - 0.48145466) / 0.26862954, (20/255 - 0.4578275) / 0.26130258, (30/255 - 0.40821073) / 0.27577711.
  const expected = [1.4193913, -1.4519418, -1.0536178];
  for (let c = 0; c < 3; c++) for (const p of [0, 511, 1023]) t.true(Math.abs(got[c * 1024 + p] - expected[c]) < 1e-6, `channel ${c} pixel ${p}: ${got[c * 1024 + p]}`);
});
