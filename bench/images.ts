// Images/s for 224 px CLIP preprocessing of a folder of JPEGs (default: 200 generated 640×480
// ones) next to the baseline measured in the same run: PIL + torchvision running CLIP's own
// transform, one process per core (bench/python/pil_clip_transform.py). Rows: decode only (the
// floor of any pipeline using sharp), vlbench with the native resampling (native/tfjs-blas, the
// default where it is built), vlbench with the JavaScript fallback. One warm-up pass each, then
// --runs rounds, each timing every row once in turn (so a busy spell on a shared machine falls
// on all of them), and the best round of each is printed. Then where the time goes: CPU ms per
// image of each step, one image at a time, for vlbench and for PIL + torchvision.
// Usage: npx tsx bench/images.ts [FOLDER] [--concurrency N] [--runs 3] [--processes N] [--python PYTHON]
import { execFile } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { imageAddon, imageAddonStatus } from '../models/image-native.ts';
import { OPENAI_CLIP_PREPROCESSING, decodeRgb, preprocessedBatches, resampleCropInto, resizeAndCrop, type Resampler } from '../models/image-pipeline.ts';
import { SeededRandom } from '../core/random.ts';
import { parseBenchArguments } from './command-line.ts';
import { besideBaseline, type RateRow } from './measurement.ts';

const USAGE = 'npx tsx bench/images.ts [FOLDER] [--concurrency N] [--runs 3] [--processes N] [--python PYTHON]';
const { values, refuse, integer, positionals } = parseBenchArguments(
  USAGE,
  { concurrency: { type: 'string', default: '4' }, runs: { type: 'string', default: '3' }, processes: { type: 'string', default: String(availableParallelism()) }, python: { type: 'string' } },
  { positionals: true },
);
const concurrency = integer('--concurrency', values.concurrency);
const runs = integer('--runs', values.runs);
const processes = integer('--processes', values.processes);
if (positionals.length > 1) refuse(`one FOLDER at most, got ${positionals.length}`);
let folder = positionals[0];
const run = promisify(execFile);
const BASELINE_SCRIPT = join(import.meta.dirname, 'python', 'pil_clip_transform.py');
const INSTALL_HINT = 'apt-get install -y python3-torch python3-torchvision python3-pil (Debian 12), or pip install torch torchvision pillow; --python names the interpreter';

if (!folder) {
  folder = await mkdtemp(join(tmpdir(), 'vlbench-bench-images-'));
  const random = new SeededRandom(7);
  const limit = pLimit(4);
  // 640×480 noisy JPEGs, about the size and entropy of COCO photos.
  await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      limit(async () => {
        const raw = Buffer.alloc(640 * 480 * 3);
        for (let p = 0; p < raw.length; p++) raw[p] = (p % 640) / 3 + random.int(0, 40);
        await sharp(raw, { raw: { width: 640, height: 480, channels: 3 } }).jpeg({ quality: 85 }).toFile(join(folder!, `img_${i}.jpg`));
      }),
    ),
  );
  console.log(`generated 200 640×480 JPEGs in ${folder}`);
}

const files = (await readdir(folder)).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).map((f) => join(folder!, f));
if (files.length === 0) refuse(`no JPEG, PNG or WebP files in ${folder}`);

/** The first interpreter (--python, VLBENCH_PYTHON, python3, /usr/bin/python3) that imports torch, torchvision and PIL. */
async function findPython(): Promise<{ python?: string; why: string }> {
  const candidates = values.python ? [values.python] : [...new Set([process.env.VLBENCH_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p))];
  const failures: string[] = [];
  for (const python of candidates) {
    try {
      await run(python, ['-c', 'import torch, torchvision, PIL'], { timeout: 120_000 });
      return { python, why: '' };
    } catch (error) {
      const lines = ((error as { stderr?: string }).stderr || (error as Error).message).trim().split('\n');
      failures.push(`${python}: ${lines.at(-1)}`);
    }
  }
  return { why: failures.join('; ') };
}

interface BaselineResult {
  images_per_s: number;
  processes: number;
  versions: Record<string, string>;
  split_ms?: { decode: number; resize_crop: number; to_tensor_normalise: number };
}

async function baseline(python: string, extra: string[] = []): Promise<BaselineResult> {
  const { stdout } = await run(python, [BASELINE_SCRIPT, folder!, '--processes', String(processes), '--runs', '1', ...extra], { timeout: 600_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as BaselineResult;
}

/** Seconds of one pass of `work`. */
async function seconds(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

const decodeOnly = async () => {
  const limit = pLimit(concurrency);
  await Promise.all(files.map((f) => limit(() => sharp(f).raw().toBuffer())));
};
const pipeline = (resampler: Resampler) => async () => {
  for await (const batch of preprocessedBatches(files, OPENAI_CLIP_PREPROCESSING, { batchSize: 32, concurrency, resampler })) void batch;
};

const native = imageAddon();
const found = await findPython();
const rows: { label: string; note: string; work?: () => Promise<unknown>; best: number }[] = [
  { label: 'decode only (sharp)', note: 'sharp to raw RGB, the floor of the pipeline', work: decodeOnly, best: Infinity },
  ...(native ? [{ label: 'vlbench CLIP preprocessing', note: `decode + EXIF + PIL-exact bicubic 224 + crop + normalise, resampled natively (${native.simd ?? 'C'}) on the threadpool`, work: pipeline('native'), best: Infinity }] : []),
  { label: `vlbench${native ? ', JavaScript resampling' : ' CLIP preprocessing'}`, note: `the same values, resampled in JavaScript on the main thread${native ? ' (the fallback)' : `: ${imageAddonStatus().reason}`}`, work: pipeline('js'), best: Infinity },
];
const pil = { label: `PIL + torchvision, ${processes} processes`, best: 0, result: undefined as BaselineResult | undefined, error: '' };

const loadBefore = loadavg().map((l) => l.toFixed(2)).join(', ');
for (const row of rows) await row.work!(); // warm-up (the baseline warms up inside each of its runs)
for (let round = 0; round < runs; round++) {
  for (const row of rows) row.best = Math.min(row.best, await seconds(row.work!));
  if (found.python) {
    try {
      const result = await baseline(found.python);
      pil.result = result;
      pil.best = Math.max(pil.best, result.images_per_s);
    } catch (error) {
      pil.error = ((error as { stderr?: string }).stderr || (error as Error).message).trim().split('\n').at(-1)!;
    }
  }
}

console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(', ')} (before: ${loadBefore})`);
console.log(`${files.length} files in ${folder}, concurrency ${concurrency}, ${availableParallelism()} cores, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, sharp.concurrency ${sharp.concurrency()}, best of ${runs} interleaved rounds after one warm-up`);
const ours: RateRow[] = rows.map((row) => ({ label: row.label, rate: files.length / row.best, unit: 'images/s', note: row.note }));
if (pil.best > 0) {
  const v = pil.result!.versions;
  console.log(besideBaseline({ label: pil.label, rate: pil.best, unit: 'images/s', note: `CLIP's transform: PIL decode, Resize(224, BICUBIC), CenterCrop, ToTensor, Normalize; torch ${v.torch}, torchvision ${v.torchvision}, PIL ${v.PIL}, python ${v.python}, 1 torch thread per process` }, ours));
} else {
  const why = found.python ? `it failed: ${pil.error}` : `no python with torch, torchvision and PIL (${found.why}); to install: ${INSTALL_HINT}`;
  console.log(`baseline PIL + torchvision unavailable: ${why}`);
  console.log(besideBaseline(ours[0], ours.slice(1)));
}

// Where the time goes: CPU ms (all threads) per image of each step, one image at a time.
const sample = files.slice(0, 50);
const cpuMs = async (work: () => Promise<unknown>) => {
  const before = process.cpuUsage();
  await work();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
};
const decoded = await Promise.all(sample.map((f) => decodeRgb(f)));
const prep = OPENAI_CLIP_PREPROCESSING;
/** The mean over the sample of the CPU ms of `work` on each image, best of three passes (the first warms up). */
const perImage = async (work: (image: (typeof decoded)[number], file: string) => Promise<unknown>) => {
  let best = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    let total = 0;
    for (const [i, image] of decoded.entries()) total += await cpuMs(() => work(image, sample[i]));
    best = Math.min(best, total / decoded.length);
  }
  return best;
};
const step = (resampler: Resampler, normalise: boolean) =>
  perImage((image) => {
    const { resized, window } = resizeAndCrop(image.width, image.height, prep);
    const out = normalise ? new Float32Array(3 * window.width * window.height) : new Uint8Array(3 * window.width * window.height);
    return resampleCropInto(image.data, image.width, image.height, resized.width, resized.height, window, prep, out, resampler);
  });
const decodeMs = await perImage((_image, file) => decodeRgb(file));
const split = async (resampler: Resampler) => {
  const bytes = await step(resampler, false);
  const floats = await step(resampler, true);
  return { resample: bytes, normalise: Math.max(0, floats - bytes), total: decodeMs + Math.max(bytes, floats) };
};
const fmt = (ms: number) => (ms < 0.05 ? '<0.05' : ms.toFixed(2)).padStart(6);
console.log(`\nwhere the time goes, CPU ms per image (all threads), one image at a time over ${sample.length} files:`);
console.log('                               read+decode  resize+crop  normalise    total  → images/s on all cores at that cost');
const line = (label: string, s: { decode: number; resample: number; normalise: number; total: number }) =>
  console.log(`${label.padEnd(31)}${fmt(s.decode)}       ${fmt(s.resample)}      ${fmt(s.normalise)}   ${fmt(s.total)}    ${((1000 / s.total) * availableParallelism()).toFixed(0)}`);
if (native) line('vlbench, native resampling', { decode: decodeMs, ...(await split('native')) });
line('vlbench, JavaScript resampling', { decode: decodeMs, ...(await split('js')) });
if (found.python && pil.best > 0) {
  try {
    const s = (await baseline(found.python, ['--split'])).split_ms!;
    line('PIL + torchvision', { decode: s.decode, resample: s.resize_crop, normalise: s.to_tensor_normalise, total: s.decode + s.resize_crop + s.to_tensor_normalise });
  } catch (error) {
    console.log(`PIL + torchvision split failed: ${(error as Error).message.split('\n')[0]}`);
  }
}
console.log('(native: resize+crop writes bytes, normalise is the extra of writing float32 values through the table in the same pass; PIL: Resize+CenterCrop, then ToTensor+Normalize)');
