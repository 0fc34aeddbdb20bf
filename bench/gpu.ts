/**
 * The GPU check: one prepared script for a machine with a GPU, under 5 minutes. It prints
 * `vlbench env` (the backend `auto` picks, the WebGPU adapters seen), then, for every backend
 * present side by side, training-step samples/s (forward, backward and an AdamW update of
 * every parameter, InfoNCE over both towers) for the bundled CLIP's shape and for a
 * ViT-B/16-sized CLIP with random weights, and encode images/s of the bundled model; then a
 * short `vlbench run` on webgpu. It ends with one table.
 *
 *   npx tsx bench/gpu.ts [--quick] [--budget SECONDS] [--backends webgpu,wasm,...]
 *
 * --quick: tiny shapes and one step each, to prove the script works on a software adapter
 *   (lavapipe computes at ~1 GFLOP/s; its numbers say nothing about a GPU).
 * --budget: seconds each measurement may take (default 20; 4 with --quick); a measurement
 *   runs one warm-up step (shader compilation) and then as many timed steps as fit.
 * --backends: which to measure (default: every --backend choice but auto, cpu and
 *   webgpu-software; one that is not present is listed with the reason).
 * On an NVIDIA container, Vulkan needs the driver's graphics capability: see README.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../core/random.ts';
import { BACKEND_CHOICES, selectBackend, type BackendChoice } from '../models/backends/select.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { ClipModel, type TokenBatch } from '../models/encoders/clip.ts';
import { parseClipConfig, readClipConfig, type ClipConfig } from '../models/encoders/clip-config.ts';
import { infoNceLoss } from '../models/objectives/info-nce.ts';
import { AdamW, TRAINING_DEFAULTS } from '../models/train.ts';
import { executeRun } from '../harness/run.ts';
import { parseBenchArguments } from './command-line.ts';

const { values, refuse, integer } = parseBenchArguments('npx tsx bench/gpu.ts [--quick] [--budget SECONDS] [--backends webgpu,wasm,...]', {
  quick: { type: 'boolean', default: false },
  budget: { type: 'string' },
  backends: { type: 'string' },
});
const quick = values.quick;
const budgetSeconds = integer('--budget', values.budget ?? (quick ? '4' : '20'));
const root = join(import.meta.dirname, '..');
const cli = (...command: string[]) =>
  execFileSync(process.execPath, ['--import', 'tsx', join(root, 'cli', 'main.ts'), ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: root });

const VIT_B_16 = parseClipConfig(
  {
    projection_dim: 512,
    text_config: { vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8, max_position_embeddings: 77, eos_token_id: 2, bos_token_id: 0, pad_token_id: 1 },
    vision_config: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 16 },
  },
  'ViT-B/16 sizes',
);
/** --quick: a CLIP small enough for a software adapter, with every layer kind of the real one. */
const QUICK_LARGE = parseClipConfig(
  {
    projection_dim: 32,
    text_config: { vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 16, eos_token_id: 2, bos_token_id: 0, pad_token_id: 1 },
    vision_config: { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 2, image_size: 64, patch_size: 16 },
  },
  'quick stand-in for ViT-B/16',
);

interface Shape {
  name: string;
  config: ClipConfig;
  /** Batch on a GPU backend; CPU backends take `cpuBatch` so that one step fits the budget. */
  batch: number;
  cpuBatch: number;
  textLength: number;
}

const bundledConfig = await readClipConfig(join(bundledModelDir(), 'config.json'));
const SHAPES: Shape[] = quick
  ? [
      { name: 'bundled CLIP', config: bundledConfig, batch: 2, cpuBatch: 2, textLength: 12 },
      { name: 'ViT-B/16 stand-in (--quick)', config: QUICK_LARGE, batch: 2, cpuBatch: 2, textLength: 8 },
    ]
  : [
      { name: 'bundled CLIP', config: bundledConfig, batch: 64, cpuBatch: 16, textLength: 24 },
      // ~50 GFLOP per sample forward and backward: 2 samples take seconds on 16 CPU cores.
      { name: 'ViT-B/16 (random weights)', config: VIT_B_16, batch: 16, cpuBatch: 2, textLength: 77 },
    ];
const ENCODE_BATCH = quick ? 2 : 64;

const requested = values.backends?.split(',') ?? BACKEND_CHOICES.filter((c) => c !== 'auto' && c !== 'cpu' && c !== 'webgpu-software');
for (const name of requested) if (!(BACKEND_CHOICES as readonly string[]).includes(name)) refuse(`--backends: "${name}" is not one of ${BACKEND_CHOICES.join(', ')}`);

function tokensFor(config: ClipConfig, batch: number, length: number): TokenBatch {
  const inputIds = new Int32Array(batch * length);
  const vocab = config.text.vocab_size;
  const eos = config.text.eos_token_id === 2 ? vocab - 1 : config.text.eos_token_id;
  for (let row = 0; row < batch; row++) {
    for (let t = 0; t < length; t++) inputIds[row * length + t] = (row * 31 + t * 7) % (vocab - 2);
    inputIds[row * length + length - 1] = eos;
  }
  return { inputIds, attentionMask: new Int32Array(batch * length).fill(1), batch, length };
}

function pixelsFor(config: ClipConfig, batch: number): Float32Array {
  const size = config.vision.image_size;
  const pixels = new Float32Array(batch * 3 * size * size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(0.37 * i);
  return pixels;
}

/** Runs `step` once to warm up (shader compilation, allocation), then times as many as fit the budget. */
async function rate(items: number, step: () => Promise<void>): Promise<number> {
  await step();
  const started = performance.now();
  let steps = 0;
  do {
    await step();
    steps++;
  } while (performance.now() - started < budgetSeconds * 1000 && steps < 50);
  return (items * steps) / ((performance.now() - started) / 1000);
}

async function trainingRate(shape: Shape, batch: number): Promise<number> {
  const model = ClipModel.initialise(shape.config, new SeededRandom(1));
  model.setFreezePolicy('all');
  const optimizer = new AdamW(TRAINING_DEFAULTS);
  try {
    const variables = model.trainableParameters();
    const size = shape.config.vision.image_size;
    const pixels = pixelsFor(shape.config, batch);
    const tokens = tokensFor(shape.config, batch, shape.textLength);
    return await rate(batch, async () => {
      const { value, grads } = tf.variableGrads(
        () => infoNceLoss(model.imageForward(tf.tensor4d(pixels, [batch, 3, size, size])).embeds, model.textForward(tokens).embeds, model.logitScale as tf.Scalar),
        [...variables.values()],
      );
      const byName = new Map([...variables].map(([name, variable]) => [name, grads[variable.name]]));
      optimizer.apply(variables, byName, 1e-5);
      await value.data(); // waits for the step to finish on the device
      tf.dispose([value, ...Object.values(grads)]);
    });
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

async function encodeRate(): Promise<number> {
  const model = await ClipModel.load(bundledModelDir());
  try {
    const size = model.config.vision.image_size;
    const pixels = pixelsFor(model.config, ENCODE_BATCH);
    return await rate(ENCODE_BATCH, async () => {
      const embeds = tf.tidy(() => model.imageForward(tf.tensor4d(pixels, [ENCODE_BATCH, 3, size, size])).embeds);
      await embeds.data();
      embeds.dispose();
    });
  } finally {
    model.dispose();
  }
}

const started = performance.now();
console.log('== vlbench env');
try {
  process.stdout.write(cli('env'));
} catch (error) {
  // env exits 2 when auto refuses: its output still says why.
  process.stdout.write(String((error as { stdout?: string }).stdout ?? error));
}

type Row = { backend: string; device: string; cells: Record<string, string> };
const rows: Row[] = [];
const columns = [...SHAPES.map((s) => `train ${s.name}, samples/s (batch)`), `encode bundled, images/s (batch ${ENCODE_BATCH})`];
for (const choice of requested as BackendChoice[]) {
  console.log(`== ${choice}`);
  let backendName: string;
  let device = '';
  try {
    const selected = await selectBackend(choice);
    backendName = selected.name;
    device = selected.device ?? selected.attempts.at(-1)!.reason;
  } catch (error) {
    rows.push({ backend: choice, device: `not present: ${(error as Error).message.replace(/^no usable tfjs backend for --backend \S+: /, '').slice(0, 160)}`, cells: {} });
    continue;
  }
  const cells: Record<string, string> = {};
  const onGpu = backendName === 'webgpu' || backendName === 'tensorflow-gpu';
  const measure = async (column: string, work: () => Promise<number>, batchNote = '') => {
    try {
      const value = await work();
      cells[column] = `${value.toFixed(value < 10 ? 2 : 1)}${batchNote}`;
    } catch (error) {
      cells[column] = `failed: ${(error as Error).message.split('\n')[0].slice(0, 80)}`;
    }
    console.log(`  ${column}: ${cells[column]}`);
  };
  for (const [i, shape] of SHAPES.entries()) {
    const batch = onGpu ? shape.batch : shape.cpuBatch;
    await measure(columns[i], () => trainingRate(shape, batch), ` (${batch})`);
  }
  await measure(columns.at(-1)!, encodeRate);
  rows.push({ backend: backendName, device, cells });
}

let runLine = 'vlbench run on webgpu: not tried (webgpu not among --backends)';
if (requested.includes('webgpu')) {
  console.log('== vlbench run --task vqa --method ft+sg+adv --backend webgpu (SynthScenes)');
  const work = mkdtempSync(join(tmpdir(), 'vlbench-gpu-bench-'));
  try {
    cli('synth', '--out', join(work, 'data'), '--images', quick ? '40' : '100');
    const runStarted = performance.now();
    const outcome = await executeRun(
      { task: 'vqa', dataDir: join(work, 'data'), method: 'ft+sg+adv', sets: {}, seed: 0, epochs: 1, backend: 'webgpu' },
      { db: join(work, 'runs', 'leaderboard.db'), runsDir: join(work, 'runs'), log: (line) => console.log(`  ${line}`) },
    );
    const steps = outcome.training?.steps ?? 0;
    runLine = `vlbench run on webgpu: ${((performance.now() - runStarted) / 1000).toFixed(1)} s, ${steps} training steps at ${outcome.training?.samplesPerSecond.toFixed(1) ?? '?'} samples/s, recorded backend ${outcome.splits[0]?.record?.backend ?? 'none'}`;
  } catch (error) {
    runLine = `vlbench run on webgpu: failed: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const header = ['backend', 'device', ...columns];
const table = rows.map((row) => [row.backend, row.device, ...columns.map((c) => row.cells[c] ?? '—')]);
console.log(`\n| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|`);
for (const line of table) console.log(`| ${line.join(' | ')} |`);
console.log(`\n${runLine}`);
console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s${quick ? ' (--quick: tiny shapes, numbers prove the script, not the speed)' : ''}`);
