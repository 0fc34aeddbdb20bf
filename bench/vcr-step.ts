// What one VCR training step costs next to one VQA step at the same batch size, in the same
// process on the same backend (issue 34: a VCR item carries four choice rows through the fusion).
// Both tasks are built as `vlbench run` builds them (harness/run.ts buildRun: their adapters'
// defaults, VQA over the simulated detector's boxes as the demo runs it) on one SynthScenes folder;
// each step is the problem's computeGradients on a batch of training examples (a VCR example is
// one Q→A or QA→R item), the optimiser and validation left out. The same batches, in the same
// order, every run of the bench; the runs step in turns, so load from another process falls on
// all of them alike.
// Usage: npx tsx bench/vcr-step.ts [--data DIR] [--images N] [--batch N] [--steps N] [--vcr-methods ft,ft+adv] [--vcr-set key=value,...] [--backend auto|wasm|...]
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseBenchArguments } from './command-line.ts';
import { timeRuns } from './measurement.ts';
import { buildRun, type BuiltRun } from '../harness/run.ts';
import { resolveRun, type RunRequest } from '../harness/run-plan.ts';
import { describeBackend, parseBackendChoice, selectBackend } from '../models/backends/select.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { readClipConfig } from '../models/encoders/clip-config.ts';
import { SeededRandom } from '../core/random.ts';
import { generateSynthScenes, synthPaths } from '../tasks/synth/index.ts';

const { values, refuse, integer } = parseBenchArguments('npx tsx bench/vcr-step.ts [--data DIR] [--images N] [--batch N] [--steps N] [--vcr-methods ft,ft+adv] [--vcr-set key=value,...] [--backend auto|wasm|...]', {
  data: { type: 'string' },
  images: { type: 'string', default: '60' },
  batch: { type: 'string', default: '32' },
  steps: { type: 'string', default: '5' },
  'vcr-methods': { type: 'string', default: 'ft' },
  'vcr-set': { type: 'string', default: '' },
  backend: { type: 'string', default: 'auto' },
});
const batchSize = integer('--batch', values.batch!);
const steps = integer('--steps', values.steps!);
const vcrMethods = values['vcr-methods']!.split(',').filter((m) => m !== '');
if (vcrMethods.length === 0) refuse('--vcr-methods names no method');
// Run settings for the VCR rows alone (e.g. a fusion option), each row once without and once with them.
const vcrSets = Object.fromEntries(
  values['vcr-set']!
    .split(',')
    .filter((pair) => pair !== '')
    .map((pair) => (pair.indexOf('=') > 0 ? [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] : refuse(`--vcr-set expects key=value pairs separated by commas, got "${pair}"`))),
);

const work = await mkdtemp(join(tmpdir(), 'vlbench-vcr-step-'));
let data = values.data;
if (!data) {
  data = join(work, 'synth');
  const size = (await readClipConfig(join(bundledModelDir(), 'config.json'))).vision.image_size;
  await generateSynthScenes({ outDir: data, images: integer('--images', values.images!), seed: 0, size });
} else if (!existsSync(join(data, 'manifest.json'))) {
  refuse(`${data} is not a SynthScenes folder`);
}
const backendChoice = parseBackendChoice(values.backend!);
const backend = await selectBackend(backendChoice);
process.stderr.write(`${describeBackend(backend)}\n`);

/** One run built as `vlbench run` builds it, and its next training step. */
interface SteppedRun {
  label: string;
  built: BuiltRun;
  step(): void;
  seconds: number[];
}

async function prepare(label: string, request: RunRequest): Promise<SteppedRun> {
  const built = await buildRun(await resolveRun(request), backend, { cacheDir: join(work, 'cache'), log: () => {} });
  const problem = built.prepared.problem ?? refuse(`${label} trains nothing`);
  if (problem.exampleCount < batchSize) refuse(`${label}: ${problem.exampleCount} training examples, fewer than --batch ${batchSize}; give more --images`);
  // Consecutive batches of a fixed shuffle: the same examples in every run of the bench.
  const order = new SeededRandom(0).shuffled(Array.from({ length: problem.exampleCount }, (_, i) => i));
  let step = 0;
  return {
    label,
    built,
    seconds: [],
    step() {
      const start = (step * batchSize) % (order.length - batchSize + 1);
      const result = problem.computeGradients(order.slice(start, start + batchSize), { step, totalSteps: steps + 2, random: new SeededRandom(0).fork(`step-${step}`) });
      step += 1;
      tf.dispose([...result.gradients.values()]);
    },
  };
}

const runs = [await prepare('vqa ft', { task: 'vqa', dataDir: data, method: 'ft', seed: 0, backend: backendChoice, regionsFile: synthPaths.detections(data, 'detector') })];
for (const method of vcrMethods) {
  runs.push(await prepare(`vcr ${method}`, { task: 'vcr', dataDir: data, method, seed: 0, backend: backendChoice }));
  if (Object.keys(vcrSets).length > 0) runs.push(await prepare(`vcr ${method} ${values['vcr-set']}`, { task: 'vcr', dataDir: data, method, seed: 0, backend: backendChoice, sets: vcrSets }));
}
// Round-robin, one step of each run per round: load from other processes then falls on every row alike.
for (let round = 0; round < steps + 2; round++) {
  for (const run of runs) {
    const timing = await timeRuns(() => run.step(), { warmup: 0, runs: 1 });
    // The first two rounds warm up (kernels, caches) and are not counted.
    if (round >= 2) run.seconds.push(timing.best);
  }
}
for (const run of runs) {
  run.built.prepared.dispose();
  await run.built.encoder.dispose();
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};
const [vqa] = runs;
console.log(`training step at batch ${batchSize} (${backend.name}; best and median of ${steps} steps per run, taken in turns, after 2 warm-up rounds)`);
console.log('| run | best ms | median ms | best ÷ vqa ft | median ÷ vqa ft |\n|---|---|---|---|---|');
for (const run of runs) {
  const ms = (x: number) => (x * 1000).toFixed(0);
  console.log(`| ${run.label} | ${ms(Math.min(...run.seconds))} | ${ms(median(run.seconds))} | ${(Math.min(...run.seconds) / Math.min(...vqa.seconds)).toFixed(2)} | ${(median(run.seconds) / median(vqa.seconds)).toFixed(2)} |`);
}
