// SynthScenes generation speed: images/s for complete benchmarks (both domains, all files)
// of 500 and 2,000 images, next to the floor measured in the same run: sharp encoding a blank
// JPEG of the same size at the same concurrency, which any generator that writes JPEGs pays.
// Usage: npx tsx bench/synth.ts [--size 224] [--totals 500,2000]
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { JPEG_QUALITY } from '../tasks/synth/render.ts';
import { generateSynthScenes } from '../tasks/synth/index.ts';
import { parseBenchArguments } from './command-line.ts';
import { besideBaseline, timeRuns } from './measurement.ts';

const { values, integer } = parseBenchArguments('npx tsx bench/synth.ts [--size 224] [--totals 500,2000]', { size: { type: 'string', default: '224' }, totals: { type: 'string', default: '500,2000' } });
const size = integer('--size', values.size);
const totals = values.totals.split(',').map((total) => integer('--totals', total, 2));
const concurrency = Math.max(2, availableParallelism());

const scratch = await mkdtemp(join(tmpdir(), 'vlbench-bench-synth-'));
console.log(`${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, sharp concurrency ${concurrency}, ${size} px`);
try {
  for (const total of totals) {
    const blank = await timeRuns(() => blankJpegFloor(total), { warmup: 0, runs: 1 });
    let files = 0;
    const synth = await timeRuns(async () => {
      const manifest = await generateSynthScenes({ outDir: join(scratch, `synth-${total}`), images: total / 2, seed: 0, size, force: true });
      files = Object.keys(manifest.files).length;
    }, { warmup: 0, runs: 1 });
    console.log(`${total} images, ${files} files:`);
    console.log(besideBaseline({ label: 'blank JPEG encode (floor)', rate: total / blank.best, unit: 'images/s' }, [{ label: 'SynthScenes', rate: total / synth.best, unit: 'images/s', note: `${synth.best.toFixed(1)} s` }]));
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

async function blankJpegFloor(count: number): Promise<void> {
  const limit = pLimit(concurrency);
  await Promise.all(
    Array.from({ length: count }, () =>
      limit(() => sharp({ create: { width: size, height: size, channels: 3, background: '#f4f4f2' } }).jpeg({ quality: JPEG_QUALITY }).toBuffer()),
    ),
  );
}
