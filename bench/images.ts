// Images/s for 224 px CLIP preprocessing of a folder of JPEGs, next to the decode-only floor
// measured in the same run: one warm-up pass each, then the best of --runs.
// Usage: npx tsx bench/images.ts [FOLDER] [--concurrency N] [--runs 3]
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { OPENAI_CLIP_PREPROCESSING, preprocessedBatches } from '../models/image-pipeline.ts';
import { SeededRandom } from '../core/random.ts';
import { parseBenchArguments } from './command-line.ts';
import { besideBaseline, timeRuns } from './measurement.ts';

const { values, refuse, integer, positionals } = parseBenchArguments('npx tsx bench/images.ts [FOLDER] [--concurrency N] [--runs 3]', { concurrency: { type: 'string', default: '4' }, runs: { type: 'string', default: '3' } }, { positionals: true });
const concurrency = integer('--concurrency', values.concurrency);
const runs = integer('--runs', values.runs);
if (positionals.length > 1) refuse(`one FOLDER at most, got ${positionals.length}`);
let folder = positionals[0];

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

// Baseline: decode only (sharp to raw pixels), same concurrency: the floor any pipeline pays.
const decode = await timeRuns(async () => {
  const limit = pLimit(concurrency);
  await Promise.all(files.map((f) => limit(() => sharp(f).raw().toBuffer())));
}, { runs });
const preprocess = await timeRuns(async () => {
  for await (const batch of preprocessedBatches(files, OPENAI_CLIP_PREPROCESSING, { batchSize: 32, concurrency })) void batch;
}, { runs });
console.log(`${files.length} files, concurrency ${concurrency}, best of ${runs} after one warm-up`);
console.log(
  besideBaseline({ label: 'decode only', rate: files.length / decode.best, unit: 'images/s' }, [
    { label: 'vlbench CLIP preprocessing', rate: files.length / preprocess.best, unit: 'images/s', note: 'decode + EXIF + bicubic 224 + crop + normalise to float32' },
  ]),
);
