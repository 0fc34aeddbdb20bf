/**
 * Where a forward pass (or a training step) spends its time, kernel by kernel: tf.profile of
 * one call after a warm-up, the kernels' wall times summed by name, largest first.
 *
 *   npx tsx bench/kernel-profile.ts [--model vit-b-32|small] [--batch 32] [--backend wasm-blas] [--train]
 *
 * vit-b-32: the image tower of a ViT-B/32-shaped CLIP (random weights), as bench/encoder.ts;
 * small: the bundled model's shape, as bench/pretrain.ts --config small. --train profiles the
 * gradient of the image embeddings' squared norm instead of the forward alone.
 *
 * Utilisation (issue 34): the matrix products' floating-point operations are counted from the
 * profiled kernels' shapes (2·M·N·K each), and the step's achieved GFLOP/s is printed against
 * this backend's sgemm peak, measured in the same run on large square products — so "how far
 * from the limit" is a number, not a ratio to another framework.
 */
import { parseBenchArguments } from './command-line.ts';
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../core/random.ts';
import { selectBackend, type BackendChoice } from '../models/backends/select.ts';
import { ClipModel } from '../models/encoders/clip.ts';
import { parseClipConfig } from '../models/encoders/clip-config.ts';

const { values, refuse } = parseBenchArguments('npx tsx bench/kernel-profile.ts [--model vit-b-32|small] [--batch 32] [--backend wasm-blas] [--train]', {
  model: { type: 'string', default: 'vit-b-32' },
  batch: { type: 'string', default: '32' },
  backend: { type: 'string', default: 'wasm-blas' },
  train: { type: 'boolean', default: false },
});

const SHAPES: Record<string, { vision: Record<string, number>; text: Record<string, number>; projection_dim: number }> = {
  'vit-b-32': {
    projection_dim: 512,
    text: { vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8, max_position_embeddings: 77, eos_token_id: 2, bos_token_id: 0, pad_token_id: 1 },
    vision: { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 32 },
  },
  small: {
    projection_dim: 128,
    text: { vocab_size: 1000, hidden_size: 128, intermediate_size: 512, num_hidden_layers: 3, num_attention_heads: 2, max_position_embeddings: 32, eos_token_id: 2, bos_token_id: 0, pad_token_id: 1 },
    vision: { hidden_size: 192, intermediate_size: 768, num_hidden_layers: 4, num_attention_heads: 4, image_size: 96, patch_size: 12 },
  },
};
const shape = SHAPES[values.model!];
if (!shape) refuse(`--model expects one of ${Object.keys(SHAPES).join(', ')}, got "${values.model}"`);
const config = parseClipConfig({ projection_dim: shape.projection_dim, text_config: shape.text, vision_config: shape.vision }, `${values.model} sizes`);
const batch = Number(values.batch);

const backend = await selectBackend(values.backend as BackendChoice);
const random = new SeededRandom(7);
const model = ClipModel.initialise(config, random);
if (values.train) model.setFreezePolicy('all');
const size = config.vision.image_size;
const pixels = tf.tensor4d(Float32Array.from({ length: batch * 3 * size * size }, () => random.normal()), [batch, 3, size, size]);

const step = () =>
  tf.tidy(() => {
    if (!values.train) return model.imageForward(pixels).embeds;
    const variables = [...model.trainableVariables()];
    const { value, grads } = tf.variableGrads(() => model.imageForward(pixels).embeds.square().sum() as tf.Scalar, variables);
    for (const g of Object.values(grads)) g.dispose();
    return value;
  });

// Warm-up, then one profiled and one timed call.
(await step().data(), undefined);
const info = await tf.profile(async () => {
  const out = step();
  await out.data();
  out.dispose();
});
const start = performance.now();
const out = step();
await out.data();
out.dispose();
const seconds = (performance.now() - start) / 1000;

const byKernel = new Map<string, { ms: number; calls: number }>();
for (const kernel of info.kernels) {
  // tf.profile also lists op scopes (fusedMatMul__op, unnamed scope) around the kernels they run: count kernels only.
  if (!tf.getKernel(kernel.name, backend.name)) continue;
  const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
  entry.ms += Number(kernel.kernelTimeMs) || 0;
  entry.calls += 1;
  byKernel.set(kernel.name, entry);
}
const total = [...byKernel.values()].reduce((sum, e) => sum + e.ms, 0);

/**
 * 2·M·N·K of one matrix-product kernel, from its profiled shapes: the output is [..., M, N]
 * (a batch in front for BatchMatMul) and K is what is left of the first input once its batch
 * and M are divided out, whichever side a transpose put it on.
 */
function productFlops(kernel: { name: string; inputShapes: number[][]; outputShapes: number[][] }): number {
  if (kernel.name !== 'BatchMatMul' && kernel.name !== '_FusedMatMul' && kernel.name !== 'MatMul') return 0;
  const out = kernel.outputShapes[0];
  const a = kernel.inputShapes[0];
  const outputElements = out.reduce((n, d) => n * d, 1);
  const m = out[out.length - 2];
  const batchCount = out.slice(0, -2).reduce((n, d) => n * d, 1);
  const inner = a.reduce((n, d) => n * d, 1) / (batchCount * m);
  return 2 * outputElements * inner;
}
const productKernels = info.kernels.filter((kernel) => productFlops(kernel as never) > 0);
const stepFlops = productKernels.reduce((sum, kernel) => sum + productFlops(kernel as never), 0);
const productMs = productKernels.reduce((sum, kernel) => sum + (Number(kernel.kernelTimeMs) || 0), 0);

/** Best of five n×n×n products through tf.matMul on this backend (after a warm-up): its sgemm peak as this process sees it. */
async function sgemmPeak(n: number): Promise<number> {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  let best = Infinity;
  for (let trial = 0; trial < 6; trial++) {
    const started = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
    if (trial > 0) best = Math.min(best, (performance.now() - started) / 1000);
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / best / 1e9;
}
const peak = Math.max(await sgemmPeak(1024), await sgemmPeak(2048));
process.stdout.write(`${values.model} ${values.train ? 'training step' : 'image forward'}, batch ${batch}, backend ${backend.name}: ${seconds.toFixed(3)} s (${(batch / seconds).toFixed(2)} images/s unprofiled); kernels ${total.toFixed(0)} ms\n\n`);
const achieved = stepFlops / seconds / 1e9;
const inProducts = stepFlops / (productMs / 1000) / 1e9;
process.stdout.write(
  `utilisation: ${(stepFlops / 1e9).toFixed(2)} GFLOP in matrix products per ${values.train ? 'step' : 'forward'}; ` +
    `${achieved.toFixed(1)} GFLOP/s over the whole ${values.train ? 'step' : 'forward'} (unprofiled), ${inProducts.toFixed(1)} GFLOP/s inside the products (profiled); ` +
    `sgemm peak of this backend in this run ${peak.toFixed(1)} GFLOP/s (best of 1024² and 2048² products): ${((100 * achieved) / peak).toFixed(0)}% of peak over the ${values.train ? 'step' : 'forward'}, ${((100 * inProducts) / peak).toFixed(0)}% inside the products\n\n`,
);
process.stdout.write('| kernel | calls | ms | share |\n| --- | --- | --- | --- |\n');
for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms)) {
  process.stdout.write(`| ${name} | ${e.calls} | ${e.ms.toFixed(1)} | ${((100 * e.ms) / total).toFixed(1)}% |\n`);
}
