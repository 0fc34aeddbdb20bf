import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { adversarialGradients, ADVERSARIAL_DEFAULTS, type PerturbationDeltas } from '../../models/objectives/adversarial.ts';

/**
 * At the encoder, adv's η and ε are relative to each example's clean embedding norm: after
 * one ascent step an L2 δ has norm η·‖x_i‖ exactly (the step is η·‖x_i‖·g/‖g‖ from δ = 0), and
 * the ε ball has radius ε·‖x_i‖.
 */
test.before(async () => {
  await selectBackend('wasm');
});

const x = tf.tensor3d(Array.from({ length: 24 }, (_, i) => Math.sin(i + 1)), [2, 3, 4]);
const w = tf.variable(tf.tensor2d(Array.from({ length: 8 }, (_, i) => Math.cos(i)), [4, 2]));
const reference = [2, 10];

function lossAndLogits(deltas: PerturbationDeltas) {
  const logits = tf.matMul(x.add(deltas.text).mean(1) as tf.Tensor2D, w) as tf.Tensor2D;
  return { loss: tf.losses.softmaxCrossEntropy(tf.tensor2d([[1, 0], [0, 1]]), logits) as tf.Scalar, logits };
}

function run(settings: Partial<typeof ADVERSARIAL_DEFAULTS>, referenceNorms?: { text: number[] }) {
  const result = adversarialGradients(lossAndLogits, { textShape: [2, 3, 4], imageShape: [2, 1, 1], variables: [w], settings: { ...ADVERSARIAL_DEFAULTS, modality: 'text', ...settings }, referenceNorms });
  tf.dispose(Object.values(result.grads));
  return result.perturbationNorms.text;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));

test('one L2 ascent step has norm η times each example\'s reference norm', (t) => {
  const norms = run({ steps: 2, eta: 0.1 }, { text: reference });
  t.true(close(norms[0], 0.2) && close(norms[1], 1.0), JSON.stringify(norms));
  // Without references the same step is absolute: η for every example.
  const absolute = run({ steps: 2, eta: 0.1 });
  t.true(close(absolute[0], 0.1) && close(absolute[1], 0.1), JSON.stringify(absolute));
});

test('the ε ball is relative too, in both norms', (t) => {
  const l2 = run({ steps: 3, eta: 1, epsilon: 0.05 }, { text: reference });
  t.true(close(l2[0], 0.1) && close(l2[1], 0.5), JSON.stringify(l2));
  const linf = run({ steps: 3, eta: 1, epsilon: 0.05, norm: 'linf' }, { text: reference });
  t.true(close(linf[0], 0.1) && close(linf[1], 0.5), JSON.stringify(linf));
});
