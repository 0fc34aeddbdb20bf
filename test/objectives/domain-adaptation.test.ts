import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { MMD_DEFAULTS, mmdLoss, multiKernelMmd, pairwiseSquaredDistances, parseMmdSettings } from '../../models/objectives/mmd.ts';
import { dannLambda, dannLoss, domainDiscriminatorLoss, gradientReversal, parseDannSettings } from '../../models/objectives/dann.ts';

test.before(async () => {
  await selectBackend('wasm');
});

const close = (t: { true: (v: boolean, m?: string) => void }, actual: number, expected: number, tolerance = 1e-5) =>
  t.true(Math.abs(actual - expected) <= tolerance, `${actual} ≠ ${expected}`);

test('MMD of identical batches is 0', (t) => {
  const value = tf.tidy(() => {
    const batch = tf.tensor2d([[0.5, -1, 2], [1, 0, 0], [-0.25, 3, 1], [2, 2, -2]]);
    return multiKernelMmd(batch, batch.clone() as tf.Tensor2D).dataSync()[0];
  });
  close(t, value, 0, 1e-6);
});

test('MMD is positive for shifted batches and grows with the shift', (t) => {
  const [small, large] = tf.tidy(() => {
    const source = tf.tensor2d([[0, 0], [1, 0], [0, 1], [1, 1]]);
    return [0.5, 2].map((shift) => multiKernelMmd(source, source.add(shift) as tf.Tensor2D).dataSync()[0]);
  });
  t.true(small > 0.01, `${small}`);
  t.true(large > small, `${large} vs ${small}`);
});

test('MMD matches hand computation (biased estimator, bandwidth from the joined batch)', (t) => {
  // Source {0}, target {1} in 1-D: squared distances [[0,1],[1,0]], mean m = 1/2, so σ_α² = α/2 and
  // MMD² = Σ_α (k(0,0) + k(1,1) − 2 k(0,1)) = Σ_α 2·(1 − exp(−1/α)).
  const single = tf.tidy(() => multiKernelMmd(tf.tensor2d([[0]]), tf.tensor2d([[1]]), [1]).dataSync()[0]);
  close(t, single, 2 - 2 / Math.E);
  const multi = tf.tidy(() => multiKernelMmd(tf.tensor2d([[0]]), tf.tensor2d([[1]])).dataSync()[0]);
  close(t, multi, MMD_DEFAULTS.kernelMultipliers.reduce((s, a) => s + 2 * (1 - Math.exp(-1 / a)), 0));
  // Unequal sizes: source {0, 0}, target {2}: four of the nine ordered pairs are 4 apart, m = 16/9;
  // with α = 1, k(0,2) = exp(−4/(2·16/9)) = exp(−9/8).
  const unequal = tf.tidy(() => multiKernelMmd(tf.tensor2d([[0], [0]]), tf.tensor2d([[2]]), [1]).dataSync()[0]);
  close(t, unequal, 2 - 2 * Math.exp(-9 / 8));
  const weighted = tf.tidy(() => mmdLoss(tf.tensor2d([[0]]), tf.tensor2d([[1]]), { weight: 0.5, kernelMultipliers: [1] }).dataSync()[0]);
  close(t, weighted, 1 - 1 / Math.E);
});

test('pairwise squared distances are exact on small integers', (t) => {
  t.deepEqual(tf.tidy(() => pairwiseSquaredDistances(tf.tensor2d([[0, 0], [3, 4], [1, 0]])).arraySync()), [
    [0, 25, 1],
    [25, 0, 20],
    [1, 20, 0],
  ]);
});

test('MMD settings parse kernel lists and refuse bad ones', (t) => {
  t.deepEqual(parseMmdSettings({ kernelMultipliers: '0.5, 1,2' }).kernelMultipliers, [0.5, 1, 2]);
  t.throws(() => parseMmdSettings({ kernelMultipliers: '1,,2' }), { message: /mmd\.kernelMultipliers/ });
  t.throws(() => parseMmdSettings({ kernelMultipliers: '1,-2' }), { message: /mmd\.kernelMultipliers/ });
  t.throws(() => parseMmdSettings({ weight: 'x' }), { message: /mmd\.weight.*got "x"/ });
});

test('gradient reversal is the identity forward and flips and scales the gradient', (t) => {
  const { forward, gradient } = tf.tidy(() => {
    const x = tf.tensor1d([1, -2, 3]);
    const c = tf.tensor1d([0.5, 2, -1]);
    const forward = gradientReversal(x, 0.25).arraySync();
    const gradient = tf.grad((input: tf.Tensor) => gradientReversal(input, 0.25).mul(c).sum())(x).arraySync();
    return { forward, gradient };
  });
  t.deepEqual(forward, [1, -2, 3]);
  t.deepEqual(gradient, [-0.125, -0.5, 0.25]);
});

test('the λ_p schedule starts at 0 and approaches 1', (t) => {
  t.is(dannLambda(0, 100), 0);
  close(t, dannLambda(50, 100), 0.9866142981514303, 1e-12); // tanh(2.5)
  close(t, dannLambda(100, 100), Math.tanh(5), 1e-12); // 0.99991
  t.true(dannLambda(10, 100) < dannLambda(20, 100));
  t.throws(() => dannLambda(1, 0));
});

test('the domain discriminator loss is ½(BCE(D(f_s),1) + BCE(D(f_t),0))', (t) => {
  close(t, tf.tidy(() => domainDiscriminatorLoss(tf.tensor1d([0, 0]), tf.tensor1d([0])).dataSync()[0]), Math.log(2));
  const softplus = (x: number) => Math.log(1 + Math.exp(x));
  const byHand = 0.5 * ((softplus(-2) + softplus(1)) / 2 + softplus(0.5));
  close(t, tf.tidy(() => domainDiscriminatorLoss(tf.tensor1d([2, -1]), tf.tensor1d([0.5])).dataSync()[0]), byHand);
});

test('DANN: the discriminator descends the domain loss while the features ascend it', (t) => {
  const w = tf.variable(tf.tensor2d([[0.5], [-0.25]]), true);
  const discriminator = { apply: (features: tf.Tensor2D) => tf.matMul(features, w).reshape([-1]) as tf.Tensor1D };
  const source = tf.variable(tf.tensor2d([[1, 2]]), true);
  const target = tf.variable(tf.tensor2d([[0, 1]]), true);
  const settings = { ...parseDannSettings({}), weight: 2 };
  const { value, grads } = tf.variableGrads(() => dannLoss(source, target, discriminator, 50, 100, settings).loss, [w, source, target]);
  // Without reversal: ∂(weight·L)/∂f_s = weight · ½ · (σ(s) − 1) · wᵀ with s = f_s·w.
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const sourceLogit = 1 * 0.5 + 2 * -0.25;
  const lambda = dannLambda(50, 100);
  const plain = [0.5, -0.25].map((wi) => 2 * 0.5 * (sigmoid(sourceLogit) - 1) * wi);
  Array.from(grads[source.name].dataSync()).forEach((g, i) => close(t, g, -lambda * plain[i], 1e-6));
  // The discriminator's own gradient is not reversed.
  const targetLogit = -0.25;
  const expectedW = [0, 1].map((i) => 2 * 0.5 * ((sigmoid(sourceLogit) - 1) * [1, 2][i] + sigmoid(targetLogit) * [0, 1][i]));
  Array.from(grads[w.name].dataSync()).forEach((g, i) => close(t, g, expectedW[i], 1e-6));
  close(t, value.dataSync()[0], 2 * 0.5 * (Math.log(1 + Math.exp(-sourceLogit)) + Math.log(1 + Math.exp(targetLogit))), 1e-6);
  tf.dispose([value, grads, w, source, target]);
  t.throws(() => parseDannSettings({ discriminatorHidden: '0' }), { message: /dann\.discriminatorHidden/ });
});

test('DANN reports its discriminator accuracy: each domain weighs half, 0.5 when it cannot tell them apart', (t) => {
  // A "discriminator" that reads the first feature as the source logit.
  const firstColumn = { apply: (features: tf.Tensor2D) => features.slice([0, 0], [-1, 1]).reshape([-1]) as tf.Tensor1D };
  const accuracy = (source: number[], target: number[]) =>
    tf.tidy(() => dannLoss(tf.tensor2d(source.map((v) => [v, 0])), tf.tensor2d(target.map((v) => [v, 0])), firstColumn, 5, 10).accuracy.dataSync()[0]);
  close(t, accuracy([1, 2, 3, 4], [-1, -2]), 1);
  // 3 of 4 source rows and 1 of 2 target rows on their side: ½(0.75 + 0.5).
  close(t, accuracy([1, 2, 3, -4], [-1, 2]), 0.625);
  close(t, accuracy([-1, -2], [1, 2]), 0);
});
