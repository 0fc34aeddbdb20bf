import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { imageAddon, imageAddonStatus } from '../../models/image-native.ts';
import { OPENAI_CLIP_PREPROCESSING, preprocessBoxCrops, preprocessedBatches, preprocessImage } from '../../models/image-pipeline.ts';
import { RESAMPLE_CASES, nativeMismatches, testImage } from './image-resample-cases.ts';

/**
 * The native resampling (native/tfjs-blas/image_resample.c) against the JavaScript fallback,
 * which image-preprocessing.test.ts holds to PIL's bytes: the same bytes and the same float32
 * values, exactly, on every case, with each horizontal pass (AVX2 multiply-adds, AVX2 multiplies,
 * scalar), and through the pipeline's entry points.
 * Where the addon is not built every test is registered as skipped, and one more skipped test
 * says why and how to build it (never a pass).
 */
const status = imageAddonStatus();
const nativeTest = status.available ? test : test.skip;
if (!status.available) test.skip(`native image resampling tests: ${status.reason}`, () => undefined);

const dir = mkdtempSync(join(tmpdir(), 'vlbench-image-native-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

nativeTest(`${RESAMPLE_CASES.length} sizes (shrink, enlarge, odd, kept sides, off-center windows): native bytes and values are JavaScript's`, async (t) => {
  t.deepEqual(await nativeMismatches(), []);
  // Rescaling and normalisation off: the values are the bytes.
  t.deepEqual(await nativeMismatches({ ...OPENAI_CLIP_PREPROCESSING, doRescale: false, doNormalize: false }), []);
});

for (const simd of ['avx2-mullo', 'scalar']) {
  nativeTest(`the same with the ${simd} horizontal pass, in a process that forces it (VLBENCH_IMAGE_SIMD)`, (t) => {
    const script = `import { imageAddon } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'models', 'image-native.ts'))}; import { nativeMismatches } from ${JSON.stringify(join(import.meta.dirname, 'image-resample-cases.ts'))}; console.log(JSON.stringify({ simd: imageAddon()?.simd, mismatches: await nativeMismatches() }));`;
    const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, VLBENCH_IMAGE_SIMD: simd }, encoding: 'utf8' });
    const result = JSON.parse(output.trim().split('\n').at(-1)!) as { simd: string; mismatches: string[] };
    // Where the CPU has no AVX2 the addon runs the scalar pass whatever is asked.
    if (imageAddon()!.simd !== 'scalar') t.is(result.simd, simd);
    t.deepEqual(result.mismatches, []);
  });
}

nativeTest('preprocessImage, batches and box crops: native and JavaScript give the same values on JPEGs and PNGs', async (t) => {
  const files: string[] = [];
  for (const [i, [width, height]] of [[640, 480], [311, 517], [225, 224], [800, 97]].entries()) {
    const raw = Buffer.from(testImage(width, height, i));
    const file = join(dir, `image-${i}.${i % 2 ? 'png' : 'jpg'}`);
    await (i % 2 ? sharp(raw, { raw: { width, height, channels: 3 } }).png() : sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 })).toFile(file);
    files.push(file);
  }
  for (const file of files) {
    const native = await preprocessImage(file, OPENAI_CLIP_PREPROCESSING, { resampler: 'native' });
    const js = await preprocessImage(file, OPENAI_CLIP_PREPROCESSING, { resampler: 'js' });
    t.deepEqual(native, js, file);
  }
  const batches = async (resampler: 'native' | 'js') => {
    const out: Float32Array[] = [];
    for await (const batch of preprocessedBatches(files, OPENAI_CLIP_PREPROCESSING, { batchSize: 3, concurrency: 4, resampler })) out.push(batch.pixels);
    return out;
  };
  t.deepEqual(await batches('native'), await batches('js'));
  const boxes = [[10, 20, 60, 90], [0, 0, 5, 3], [300, 200, 639, 479], [100.5, 40.25, 180.75, 41]] as const;
  t.deepEqual(await preprocessBoxCrops(files[0], boxes, OPENAI_CLIP_PREPROCESSING, 0.25, { resampler: 'native' }), await preprocessBoxCrops(files[0], boxes, OPENAI_CLIP_PREPROCESSING, 0.25, { resampler: 'js' }));
});

nativeTest('the addon refuses arguments that do not fit, as a TypeError, before any work', (t) => {
  const addon = imageAddon()!;
  const rgb = new Uint8Array(4 * 4 * 3);
  const out = new Uint8Array(2 * 2 * 3);
  t.throws(() => addon.resampleCrop(rgb, 4, 5, 4, 5, null, null, null, null, null, null, null, null, 0, 0, 2, 2, null, out), { instanceOf: TypeError, message: /width × height × 3/ });
  t.throws(() => addon.resampleCrop(rgb, 4, 4, 4, 4, null, null, null, null, null, null, null, null, 3, 3, 2, 2, null, out), { instanceOf: TypeError, message: /crop is not inside/ });
  t.throws(() => addon.resampleCrop(rgb, 4, 4, 2, 4, null, null, null, null, null, null, null, null, 0, 0, 2, 2, null, out), { instanceOf: TypeError, message: /width must stay/ });
  const first = Int32Array.of(0, 3);
  const count = Int32Array.of(2, 2);
  t.throws(() => addon.resampleCrop(rgb, 4, 4, 2, 4, first, count, new Int32Array(4), 2, null, null, null, null, 0, 0, 2, 2, null, out), { instanceOf: TypeError, message: /outside the image/ });
  t.throws(() => addon.resampleCrop(rgb, 4, 4, 4, 4, null, null, null, null, null, null, null, null, 0, 0, 2, 2, new Float32Array(768), out), { instanceOf: TypeError, message: /Float32Array/ });
});
