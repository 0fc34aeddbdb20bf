import test from 'ava';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { activeWebGpuAdapter, discoverWebGpuAdapters, isSoftwareAdapter } from '../../models/backends/webgpu.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { bundledModelDir } from '../../models/encoders/bundled.ts';
import { infoNceLoss } from '../../models/objectives/info-nce.ts';
import { matMul } from '../../models/ops/matmul.ts';
import { assertClose, hostCopies, onBackend, wave, webGpuTest, type Backend } from './webgpu-support.ts';

/**
 * The WebGPU backend against the wasm backend on the same inputs. Tolerances: forward
 * outputs within 1e-6 + 1e-5·max|wasm| (measured on lavapipe: 1.7e-6 on embeddings up to
 * 4.2, i.e. 4e-7 of the largest); gradients within 1e-6 + 1e-4·max|wasm| per tensor. A
 * backward pass sums more terms, and some gradients are zero in exact arithmetic (a key
 * projection's bias: softmax ignores a shift shared by all keys) and float noise of ~1e-7 on
 * both backends; measured ≤ 2e-8 absolute elsewhere on the bundled CLIP.
 */
const FORWARD = { absolute: 1e-6, relative: 1e-5 };
const GRADIENT = { absolute: 1e-6, relative: 1e-4 };

const gpuTest = webGpuTest(test, 'test/backends/webgpu.test.ts');

test('lavapipe, SwiftShader and fallback adapters count as software; a GPU does not', (t) => {
  // GPUAdapterInfo as Dawn reports it on Mesa 25's lavapipe (this project's CI) and on an NVIDIA driver.
  const lavapipe = { vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1' };
  const nvidia = { vendor: 'nvidia', architecture: 'hopper', device: 'nvidia-h200', description: 'NVIDIA H200 (driver 550.54.15)' };
  t.true(isSoftwareAdapter(lavapipe));
  t.true(isSoftwareAdapter({ ...lavapipe, architecture: '' }), 'the llvmpipe name alone is enough');
  t.true(isSoftwareAdapter({ vendor: 'google', architecture: '', device: 'swiftshader-device', description: 'SwiftShader Device (Subzero)' }));
  t.true(isSoftwareAdapter({ ...nvidia, fallback: true }), "Dawn's fallback flag alone is enough");
  t.true(isSoftwareAdapter({ ...nvidia, adapterType: 'cpu' }));
  t.false(isSoftwareAdapter(nvidia));
  t.false(isSoftwareAdapter({ ...nvidia, adapterType: 'discrete GPU' }));
});

gpuTest('adapters are listed with vendor and architecture, and auto never runs on a software one', async (t) => {
  const { adapters } = await discoverWebGpuAdapters();
  t.true(adapters.length > 0);
  for (const adapter of adapters) t.true(adapter.vendor.length > 0 && adapter.architecture.length > 0);
  const auto = await selectBackend('auto');
  const webgpuStep = auto.attempts.find((a) => a.backend === 'webgpu');
  t.truthy(webgpuStep, 'auto tries webgpu');
  if (adapters[0].software) {
    t.not(auto.name, 'webgpu');
    t.false(webgpuStep!.ok);
    t.regex(webgpuStep!.reason, /only a software adapter.*only when asked for by name \(--backend webgpu\)/);
  } else {
    // A GPU: auto takes it unless tfjs-node-gpu came first.
    t.true(auto.name === 'webgpu' || auto.name === 'tensorflow-gpu');
  }
});

gpuTest('--backend webgpu runs on the adapter there is and says when it is a software one', async (t) => {
  const selected = await selectBackend('webgpu');
  t.is(selected.name, 'webgpu');
  t.is(tf.getBackend(), 'webgpu');
  const adapter = activeWebGpuAdapter()!;
  t.is(selected.device, `${adapter.description || adapter.device} (${adapter.software ? 'software' : 'hardware'} adapter)`);
  if (adapter.software) t.regex(selected.attempts[0].reason, /software adapter/);
  // Synchronous reads work in Node (no OffscreenCanvas): training code reads losses this way.
  t.deepEqual(Array.from(tf.tidy(() => tf.tensor1d([1, 2, 3]).mul(2).dataSync())), [2, 4, 6]);
});

gpuTest('the matMul op and its transpose-free gradient agree with wasm, ranks 2 and 3, every transpose', async (t) => {
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[7, 5], [5, 3], false, false],
    [[5, 7], [5, 3], true, false],
    [[7, 5], [3, 5], false, true],
    [[5, 7], [3, 5], true, true],
    [[2, 6, 4], [2, 4, 3], false, false],
    [[2, 4, 6], [2, 3, 4], true, true],
  ];
  const compute = (backend: Backend) =>
    onBackend(backend, () =>
      cases.map(([shapeA, shapeB, ta, tb], c) =>
        tf.tidy(() => {
          const a = tf.tensor(wave(shapeA.reduce((x, y) => x * y), c), shapeA);
          const b = tf.tensor(wave(shapeB.reduce((x, y) => x * y), c + 0.5), shapeB);
          const weights = tf.tensor(wave(matMul(a, b, ta, tb).size, c + 0.25));
          const loss = (x: tf.Tensor, y: tf.Tensor) => matMul(x, y, ta, tb).reshape([-1]).mul(weights).sum();
          const [da, db] = tf.grads(loss)([a, b]);
          return hostCopies({ value: matMul(a, b, ta, tb), da, db });
        }),
      ),
    );
  const wasm = await compute('wasm');
  const webgpu = await compute('webgpu');
  cases.forEach(([shapeA, shapeB, ta, tb], c) => {
    const what = `${JSON.stringify(shapeA)}${ta ? 'ᵀ' : ''}·${JSON.stringify(shapeB)}${tb ? 'ᵀ' : ''}`;
    assertClose(t, webgpu[c].value, wasm[c].value, FORWARD, `${what} value`);
    assertClose(t, webgpu[c].da, wasm[c].da, GRADIENT, `${what} ∂a`);
    assertClose(t, webgpu[c].db, wasm[c].db, GRADIENT, `${what} ∂b`);
  });
});

gpuTest('the bundled CLIP computes the same embeddings and tokens as on wasm (batch 2)', async (t) => {
  const dir = bundledModelDir();
  const compute = (backend: Backend) =>
    onBackend(backend, async () => {
      const model = await ClipModel.load(dir);
      try {
        const tokenizer = await ClipTokenizer.load(dir, model.config.text.max_position_embeddings);
        const size = model.config.vision.image_size;
        const pixels = wave(2 * 3 * size * size, 1.3, 1.8);
        const texts = tokenizer.encode(['a small red cube left of a blue sphere', 'two green cylinders'], 'longest');
        return tf.tidy(() => {
          const image = model.imageForward(tf.tensor4d(pixels, [2, 3, size, size]));
          const text = model.textForward(texts);
          return hostCopies({ imageEmbeds: image.embeds, imageTokens: image.tokens, textEmbeds: text.embeds, textTokens: text.tokens });
        });
      } finally {
        model.dispose();
      }
    });
  const wasm = await compute('wasm');
  const webgpu = await compute('webgpu');
  for (const name of Object.keys(wasm)) assertClose(t, webgpu[name], wasm[name], FORWARD, name);
});

gpuTest('CLIP gradients (every parameter, InfoNCE over both towers) agree with wasm', async (t) => {
  // The tiny fixture (2 layers per tower) takes every code path of the bundled model's
  // backward pass: patch matmul, attention with the causal mask, layer norm, quick-GELU, the
  // embedding lookup's scatter gradient with a repeated token; lavapipe does it in seconds.
  const dir = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
  const compute = (backend: Backend) =>
    onBackend(backend, async () => {
      const model = await ClipModel.load(dir);
      try {
        model.setFreezePolicy('all');
        const size = model.config.vision.image_size;
        const pixels = wave(3 * 3 * size * size, 0.4, 1.5);
        const tokenizer = await ClipTokenizer.load(dir, model.config.text.max_position_embeddings);
        // Padded rows (masked keys) and a repeated word (two rows summed in one scatter).
        const tokens = tokenizer.encode(['a photo of a cat', 'a dog', 'two two cats on a mat'], 'longest');
        const variables = model.trainableVariables();
        const { value, grads } = tf.variableGrads(
          () => infoNceLoss(model.imageForward(tf.tensor4d(pixels, [3, 3, size, size])).embeds, model.textForward(tokens).embeds, model.logitScale as tf.Scalar),
          variables,
        );
        const named: Record<string, tf.Tensor> = { loss: value };
        for (const name of model.parameterNames) named[name] = grads[model.parameter(name).name];
        const host = hostCopies(named);
        tf.dispose([value, ...Object.values(grads)]);
        return host;
      } finally {
        model.dispose();
      }
    });
  const wasm = await compute('wasm');
  const webgpu = await compute('webgpu');
  t.true(Object.keys(wasm).length > 40);
  assertClose(t, webgpu.loss, wasm.loss, FORWARD, 'InfoNCE loss');
  for (const name of Object.keys(wasm)) if (name !== 'loss') assertClose(t, webgpu[name], wasm[name], GRADIENT, `∂loss/∂${name}`);
});
