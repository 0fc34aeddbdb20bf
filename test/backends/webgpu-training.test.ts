import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ClipModel } from '../../models/encoders/clip.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { pretrainClip, type PretrainingPairs } from '../../models/pretrain.ts';
import type { TrainingHooks, TrainingResult, TrainingSettings } from '../../models/train.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';
import { assertClose, onBackend, wave, webGpuTest, type Backend } from './webgpu-support.ts';

/**
 * Training on webgpu: contrastive pretraining of the tiny CLIP fixture (every parameter,
 * AdamW, warm-up and cosine schedule, gradient clipping: the loop `vlbench run` and
 * `vlbench pretrain` use) for a few steps, against wasm; and a checkpoint and resume on
 * webgpu against the same run uninterrupted.
 *
 * Tolerances: per-step losses within 1e-5 + 1e-5·|wasm|; weights after the steps within
 * 1e-5 + 1e-4·max|wasm| of each tensor (Adam divides by √v, so a step moves every weight by
 * about the learning rate whatever its gradient's size; float differences of the gradients
 * enter through that ratio). Resume on one backend must be bit for bit.
 */
const LOSS = { absolute: 1e-5, relative: 1e-5 };
const WEIGHTS = { absolute: 1e-5, relative: 1e-4 };

const gpuTest = webGpuTest(test, 'test/backends/webgpu-training.test.ts');
const temporaryDir = temporaryFolders(test);

const fixture = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
const SETTINGS: Partial<TrainingSettings> = { epochs: 2, batchSize: 2, learningRate: 1e-3, warmupFraction: 0.25, checkpointEvery: 1, seed: 11 };

interface Trained {
  result: TrainingResult;
  weights: Map<string, Float32Array>;
}

async function pretrainTiny(backend: Backend, hooks: TrainingHooks = {}): Promise<Trained> {
  return onBackend(backend, async () => {
    const model = await ClipModel.load(fixture);
    try {
      const tokenizer = await ClipTokenizer.load(fixture, model.config.text.max_position_embeddings);
      const size = model.config.vision.image_size;
      const pairs: PretrainingPairs = {
        pixels: wave(4 * 3 * size * size, 0.3, 1.6),
        imageSize: size,
        captions: [['a photo of a cat', 'a cat'], ['a dog on a mat'], ['two birds'], ['a red car', 'a car parked']],
      };
      const result = await pretrainClip(model, tokenizer, pairs, SETTINGS, hooks);
      const weights = new Map((await model.exportTensors()).map(([name, tensor]) => [name, Float32Array.from(tensor.data)]));
      return { result, weights };
    } finally {
      model.dispose();
    }
  });
}

let webgpuRun: Trained | undefined;

gpuTest('four pretraining steps on webgpu follow wasm: losses and every weight', async (t) => {
  const wasm = await pretrainTiny('wasm');
  webgpuRun = await pretrainTiny('webgpu');
  t.is(webgpuRun.result.steps, 4);
  t.is(wasm.result.steps, 4);
  t.is(tf.getBackend(), 'webgpu');
  assertClose(t, webgpuRun.result.curve.map((p) => p.loss), wasm.result.curve.map((p) => p.loss), LOSS, 'loss per step');
  assertClose(t, webgpuRun.result.curve.map((p) => p.gradNorm), wasm.result.curve.map((p) => p.gradNorm), LOSS, 'gradient norm per step');
  // The steps moved the weights: parity after training is not parity of untouched weights.
  const initial = await onBackend('wasm', async () => {
    const model = await ClipModel.load(fixture);
    const tensors = await model.exportTensors();
    model.dispose();
    return new Map(tensors.map(([name, tensor]) => [name, tensor.data]));
  });
  const moved = [...wasm.weights].filter(([name, data]) => data.some((v, i) => v !== initial.get(name)![i])).length;
  t.true(moved > wasm.weights.size / 2, `${moved} of ${wasm.weights.size} tensors changed`);
  for (const [name, expected] of wasm.weights) {
    // A key projection's bias has gradient zero in exact arithmetic (softmax ignores a shift
    // shared by all keys): what each backend computes is float noise, and Adam's m/√v turns
    // noise into steps of the learning rate's size, different on each backend.
    if (name.endsWith('self_attn.k_proj.bias')) continue;
    assertClose(t, webgpuRun.weights.get(name)!, expected, WEIGHTS, name);
  }
});

gpuTest('a run on webgpu interrupted after its checkpoint and resumed ends bit for bit where the uninterrupted one ends', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-webgpu-resume-'));
  await t.throwsAsync(pretrainTiny('webgpu', { checkpointDir: dir, interruptAfterStep: 2 }));
  const resumed = await pretrainTiny('webgpu', { checkpointDir: dir, resume: true });
  t.is(resumed.result.resumedFromStep, 2);
  const uninterrupted = webgpuRun ?? (await pretrainTiny('webgpu'));
  t.deepEqual(
    resumed.result.curve.map((p) => p.loss),
    uninterrupted.result.curve.map((p) => p.loss),
  );
  for (const [name, expected] of uninterrupted.weights) t.deepEqual(resumed.weights.get(name), expected, name);
});
