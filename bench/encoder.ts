/**
 * Encoder throughput: images/s and texts/s for a ViT-B/32-shaped CLIP with random weights,
 * the tfjs CLIP on each available backend against ONNX Runtime (through transformers.js).
 *
 *   npx tsx bench/encoder.ts [--onnx DIR] [--batch 8] [--repeat 3] [--cpu]
 *
 * --onnx DIR: a ViT-B/32-shaped ONNX folder, made (it needs python3-torch) by
 *   python3 scripts/make-onnx-fixture.py --preset vit-b-32 --out DIR --no-reference
 * Without it, ONNX runs on the tiny test fixture only, which says little about speed.
 * --cpu adds the plain JavaScript backend, on a batch of 1 (it is ~30× slower than wasm).
 * Texts are 77 tokens (CLIP's max_length padding); the numbers are per single process.
 */
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendChoice } from '../models/backends/select.ts';
import { SeededRandom } from '../core/random.ts';
import { ClipModel, type TokenBatch } from '../models/encoders/clip.ts';
import { parseClipConfig, type ClipConfig } from '../models/encoders/clip-config.ts';
import { OnnxClipEncoder } from '../models/encoders/onnx-clip.ts';
import { parseBenchArguments } from './command-line.ts';
import { timeRuns } from './measurement.ts';

const { values, integer } = parseBenchArguments('npx tsx bench/encoder.ts [--onnx DIR] [--batch 8] [--repeat 3] [--cpu]', {
  onnx: { type: 'string' },
  batch: { type: 'string', default: '8' },
  repeat: { type: 'string', default: '3' },
  cpu: { type: 'boolean', default: false },
});
const batch = integer('--batch', values.batch);
const repeat = integer('--repeat', values.repeat);
const onnxDir = values.onnx;
const withCpu = values.cpu;

const VIT_B_32 = parseClipConfig(
  {
    projection_dim: 512,
    text_config: { vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8, max_position_embeddings: 77, eos_token_id: 2, bos_token_id: 0, pad_token_id: 1 },
    vision_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 32 },
  },
  'ViT-B/32 sizes',
);

interface Row {
  engine: string;
  backend: string;
  model: string;
  batch: number;
  imagesPerSecond: number;
  textsPerSecond: number;
}

function inputs(config: ClipConfig, n: number, random: SeededRandom): { pixels: Float32Array; shape: [number, 3, number, number]; tokens: TokenBatch } {
  const size = config.vision.image_size;
  const pixels = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = random.normal();
  const length = config.text.max_position_embeddings;
  const inputIds = new Int32Array(n * length);
  const attentionMask = new Int32Array(n * length);
  const eos = config.text.eos_token_id === 2 ? config.text.vocab_size - 1 : config.text.eos_token_id;
  for (let row = 0; row < n; row++) {
    const words = 8 + random.int(0, 12);
    for (let t = 0; t < length; t++) {
      // BOS, random words, EOS, then EOS padding (as CLIP's tokenizer pads).
      inputIds[row * length + t] = t === 0 ? config.text.vocab_size - 2 : t <= words ? random.int(0, config.text.vocab_size - 3) : eos;
      attentionMask[row * length + t] = t <= words + 1 ? 1 : 0;
    }
  }
  return { pixels, shape: [n, 3, size, size], tokens: { inputIds, attentionMask, batch: n, length } };
}

/** Seconds of the best of `times` runs after one warm-up (kernels compile, sessions allocate); until issue 33 the mean, which docs/benchmarks.md's older rows report. */
async function timed(run: () => Promise<void>, times: number): Promise<number> {
  return (await timeRuns(run, { warmup: 1, runs: times })).best;
}

async function benchTfjs(model: ClipModel, backend: string, n: number, random: SeededRandom): Promise<Row> {
  const { pixels, shape, tokens } = inputs(model.config, n, random);
  const imageSeconds = await timed(async () => {
    const embeds = tf.tidy(() => model.imageForward(tf.tensor4d(pixels, shape)).embeds);
    await embeds.data();
    embeds.dispose();
  }, backend === 'cpu' ? 1 : repeat);
  const textSeconds = await timed(async () => {
    const embeds = tf.tidy(() => model.textForward(tokens).embeds);
    await embeds.data();
    embeds.dispose();
  }, backend === 'cpu' ? 1 : repeat);
  return { engine: 'tfjs', backend, model: 'ViT-B/32 (random)', batch: n, imagesPerSecond: n / imageSeconds, textsPerSecond: n / textSeconds };
}

async function benchOnnx(dir: string, label: string, random: SeededRandom): Promise<Row> {
  const encoder = await OnnxClipEncoder.load(dir);
  try {
    const { pixels, shape, tokens } = inputs(encoder.config, batch, random);
    const imageSeconds = await timed(async () => void (await encoder.embedImages(pixels, shape)), repeat);
    const textSeconds = await timed(async () => void (await encoder.runText(tokens, false)), repeat);
    return { engine: 'onnx', backend: 'onnxruntime', model: label, batch, imagesPerSecond: batch / imageSeconds, textsPerSecond: batch / textSeconds };
  } finally {
    await encoder.dispose();
  }
}

const random = new SeededRandom(2024);
const rows: Row[] = [];
// wasm with BLAS kernels, then plain wasm: both rows from the same run and the same weights (one shared wasm heap).
const backends: BackendChoice[] = ['tensorflow', 'wasm-blas', 'wasm', ...(withCpu ? (['cpu'] as const) : [])];
let model: ClipModel | undefined;
for (const choice of backends) {
  let name: string;
  try {
    name = (await selectBackend(choice)).name;
  } catch (error) {
    process.stderr.write(`skip ${choice}: ${(error as Error).message.split('\n')[0]}\n`);
    continue;
  }
  if (!model) {
    process.stderr.write('initialising 151 M random ViT-B/32 weights...\n');
    model = ClipModel.initialise(VIT_B_32, random);
  }
  rows.push(await benchTfjs(model, name, choice === 'cpu' ? 1 : batch, random));
  process.stderr.write(`${JSON.stringify(rows[rows.length - 1])}\n`);
}
model?.dispose();

if (onnxDir) {
  rows.push(await benchOnnx(onnxDir, 'ViT-B/32 (random)', random));
} else {
  const tiny = join(import.meta.dirname, '..', 'test', 'fixtures', 'clip-tiny');
  process.stderr.write('no --onnx DIR: ONNX runs on the tiny fixture only (make a ViT-B/32 export with scripts/make-onnx-fixture.py --preset vit-b-32)\n');
  if (existsSync(tiny)) rows.push(await benchOnnx(tiny, 'clip-tiny fixture (not comparable)', random));
}

const cpu = cpus();
process.stdout.write(`machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, node ${process.version}, no GPU\n\n`);
process.stdout.write('| engine | backend | model | batch | images/s | texts/s (77 tokens) |\n| --- | --- | --- | --- | --- | --- |\n');
for (const row of rows) {
  process.stdout.write(`| ${row.engine} | ${row.backend} | ${row.model} | ${row.batch} | ${row.imagesPerSecond.toFixed(2)} | ${row.textsPerSecond.toFixed(2)} |\n`);
}
