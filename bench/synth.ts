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

const { values, integer } = parseBenchArguments('npx tsx bench/synth.ts [--size 224] [--totals 500,2000]', { size: { type: 'string', default: '224' }, totals: { type: 'string', default: '500,2000' } });
const size = integer('--size', values.size);
const totals = values.totals.split(',').map((total) => integer('--totals', total, 2));
const concurrency = Math.max(2, availableParallelism());

const scratch = await mkdtemp(join(tmpdir(), 'vlbench-bench-synth-'));
console.log(`${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, sharp concurrency ${concurrency}, ${size} px`);
try {
  for (const total of totals) {
    const blank = await blankJpegFloor(total);
    const started = performance.now();
    const manifest = await generateSynthScenes({ outDir: join(scratch, `synth-${total}`), images: total / 2, seed: 0, size });
    const seconds = (performance.now() - started) / 1000;
    const files = Object.keys(manifest.files).length;
    console.log(
      `${String(total).padStart(5)} images: SynthScenes ${seconds.toFixed(1)} s = ${(total / seconds).toFixed(0)} images/s (${files} files)` +
        ` | floor, blank JPEG encode: ${(total / blank).toFixed(0)} images/s`,
    );
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

async function blankJpegFloor(count: number): Promise<number> {
  const limit = pLimit(concurrency);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: count }, () =>
      limit(() => sharp({ create: { width: size, height: size, channels: 3, background: '#f4f4f2' } }).jpeg({ quality: JPEG_QUALITY }).toBuffer()),
    ),
  );
  return (performance.now() - started) / 1000;
}
