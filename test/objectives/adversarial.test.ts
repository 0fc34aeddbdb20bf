import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import {
  ADVERSARIAL_DEFAULTS,
  adversarialGradients,
  ascentStep,
  parseAdversarialSettings,
  perExampleNorm,
  projectPerturbation,
  symmetricKl,
  type AdversarialSettings,
  type PerturbedLossAndLogits,
} from '../../models/objectives/adversarial.ts';
import { multipleChoiceLoss } from '../../models/objectives/multiple-choice-ce.ts';

test.before(async () => {
  await selectBackend('wasm');
});

const close = (t: { true: (v: boolean, m?: string) => void }, actual: number, expected: number, tolerance = 1e-5) =>
  t.true(Math.abs(actual - expected) <= tolerance, `${actual} ≠ ${expected}`);

test('the ascent step is normalised per example, with a guarded denominator', (t) => {
  const step = tf.tidy(() => ascentStep(tf.tensor3d([[[3, 0]], [[0, 4]], [[0, 0]]]), 2, 'l2').arraySync());
  t.deepEqual(step, [[[2, 0]], [[0, 2]], [[0, 0]]]);
  const linf = tf.tidy(() => ascentStep(tf.tensor2d([[1, -4], [0.5, 0.25]]), 1, 'linf').arraySync());
  t.deepEqual(linf, [[0.25, -1], [1, 0.5]]);
  const tiny = tf.tidy(() => ascentStep(tf.tensor2d([[1e-9, 0]]), 1, 'l2').arraySync()) as number[][];
  close(t, tiny[0][0], 0.1, 1e-6);
});

test('projection keeps each example inside the ε ball', (t) => {
  const l2 = tf.tidy(() => projectPerturbation(tf.tensor2d([[3, 4], [0.3, 0.4]]), 1, 'l2').arraySync()) as number[][];
  close(t, l2[0][0], 0.6, 1e-6);
  close(t, l2[0][1], 0.8, 1e-6);
  close(t, l2[1][0], 0.3, 1e-7);
  close(t, l2[1][1], 0.4, 1e-7);
  const linf = tf.tidy(() => projectPerturbation(tf.tensor2d([[3, -4], [0.125, 0.25]]), 0.5, 'linf').arraySync());
  t.deepEqual(linf, [[0.5, -0.5], [0.125, 0.25]]);
  t.deepEqual(tf.tidy(() => projectPerturbation(tf.tensor2d([[3, -4]]), 0, 'l2').arraySync()), [[3, -4]]);
});

test('symmetric KL is 0 for equal predictions and matches hand computation', (t) => {
  t.is(tf.tidy(() => symmetricKl(tf.tensor2d([[1, 2, 3]]), tf.tensor2d([[1, 2, 3]])).dataSync()[0]), 0);
  const p = [Math.exp(1) / (Math.exp(1) + 1), 1 / (Math.exp(1) + 1)];
  const q = [0.5, 0.5];
  const byHand = p.reduce((s, pi, i) => s + (pi - q[i]) * (Math.log(pi) - Math.log(q[i])), 0);
  close(t, tf.tidy(() => symmetricKl(tf.tensor2d([[1, 0], [1, 0]]), tf.tensor2d([[0, 0], [5, 5]])).dataSync()[0]), byHand);
});

/** A toy linear model: logits = flatten(text + δ_text) · W + flatten(image + δ_image) · V, CE against labels. */
function toyModel(seed: number) {
  const random = (shape: number[], scale: number) => tf.randomNormal(shape, 0, scale, 'float32', seed++);
  const text = random([4, 2, 3], 1);
  const image = random([4, 1, 3], 1);
  const W = tf.variable(random([6, 3], 0.5), true);
  const V = tf.variable(random([3, 3], 0.5), true);
  const labels = [0, 1, 2, 1];
  const forward: PerturbedLossAndLogits = (deltas) => {
    const logits = tf.matMul(text.add(deltas.text).reshape([4, 6]), W).add(tf.matMul(image.add(deltas.image).reshape([4, 3]), V)) as tf.Tensor2D;
    return { loss: multipleChoiceLoss(logits, labels), logits };
  };
  const dispose = () => tf.dispose([text, image, W, V]);
  return { forward, W, V, textShape: text.shape, imageShape: image.shape, dispose };
}

const settingsWith = (overrides: Partial<AdversarialSettings>): AdversarialSettings => ({ ...ADVERSARIAL_DEFAULTS, ...overrides });

test('the perturbation increases the task loss on a toy linear model', (t) => {
  for (const modality of ['text', 'image', 'both'] as const) {
    const model = toyModel(1);
    const result = adversarialGradients(model.forward, {
      textShape: model.textShape,
      imageShape: model.imageShape,
      variables: [model.W, model.V],
      settings: settingsWith({ steps: 4, eta: 0.5, modality }),
    });
    t.true(result.taskLosses[1] > result.taskLosses[0] && result.taskLosses[3] > result.taskLosses[1], `${modality}: ${result.taskLosses}`);
    t.true(result.klLosses[0] === 0 && result.klLosses[3] > 0);
    t.is(result.perturbationNorms.text.length, modality === 'image' ? 0 : 4);
    t.is(result.perturbationNorms.image.length, modality === 'text' ? 0 : 4);
    tf.dispose(result.grads);
    model.dispose();
  }
});

test('the adversarial step respects ε in both norms', (t) => {
  for (const norm of ['l2', 'linf'] as const) {
    const model = toyModel(2);
    const before = tf.memory().numTensors;
    const result = adversarialGradients(model.forward, {
      textShape: model.textShape,
      imageShape: model.imageShape,
      variables: [model.W, model.V],
      settings: settingsWith({ steps: 5, eta: 1, epsilon: 0.1, norm, modality: 'both' }),
    });
    for (const value of [...result.perturbationNorms.text, ...result.perturbationNorms.image]) t.true(value <= 0.1 + 1e-6, `${norm}: ${value}`);
    // Steps of size 1 against a radius of 0.1: every example ends on the sphere.
    for (const value of result.perturbationNorms.text) close(t, value, 0.1, 1e-5);
    tf.dispose(result.grads);
    t.is(tf.memory().numTensors, before, 'no tensors leak');
    model.dispose();
  }
});

test('with K = 1 the gradients are the clean task gradients', (t) => {
  const model = toyModel(3);
  const result = adversarialGradients(model.forward, { textShape: model.textShape, imageShape: model.imageShape, variables: [model.W, model.V], settings: settingsWith({ steps: 1 }) });
  const clean = tf.variableGrads(() => model.forward({ text: tf.zeros(model.textShape), image: tf.zeros(model.imageShape) }).loss, [model.W, model.V]);
  for (const variable of [model.W, model.V]) {
    const a = result.grads[variable.name].dataSync();
    const b = clean.grads[variable.name].dataSync();
    a.forEach((value, i) => close(t, value, b[i], 1e-6));
  }
  close(t, result.loss, clean.value.dataSync()[0], 1e-6);
  tf.dispose([clean.value, clean.grads, result.grads]);
  model.dispose();
});

test('gradients are accumulated over the K steps, each divided by K', (t) => {
  const model = toyModel(4);
  const eta = 0.3;
  const result = adversarialGradients(model.forward, {
    textShape: model.textShape,
    imageShape: model.imageShape,
    variables: [model.W, model.V],
    settings: settingsWith({ steps: 2, eta, alpha: 0, modality: 'text' }),
  });
  // By hand: δ₁ = η·g/‖g‖ for g = ∂task/∂δ at δ = 0; grads = (∇task(x) + ∇task(x + δ₁)) / 2.
  const zerosImage = tf.zeros(model.imageShape);
  const g = tf.grad((delta: tf.Tensor) => model.forward({ text: delta, image: zerosImage }).loss)(tf.zeros(model.textShape));
  const delta1 = ascentStep(g, eta, 'l2');
  const at = (delta: tf.Tensor) => tf.variableGrads(() => model.forward({ text: delta, image: zerosImage }).loss, [model.W, model.V]);
  const clean = at(tf.zeros(model.textShape));
  const perturbed = at(delta1);
  for (const variable of [model.W, model.V]) {
    const expected = clean.grads[variable.name].add(perturbed.grads[variable.name]).div(2).dataSync();
    result.grads[variable.name].dataSync().forEach((value, i) => close(t, value, expected[i], 1e-5));
  }
  close(t, result.loss, (clean.value.dataSync()[0] + perturbed.value.dataSync()[0]) / 2, 1e-5);
  close(t, result.perturbationNorms.text[0], eta, 1e-5);
  model.dispose();
});

test('cleanGradient only changes the gradient, not the loss', (t) => {
  const run = (cleanGradient: boolean) => {
    const model = toyModel(5);
    const result = adversarialGradients(model.forward, { textShape: model.textShape, imageShape: model.imageShape, variables: [model.W, model.V], settings: settingsWith({ steps: 3, eta: 0.5, cleanGradient }) });
    const grads = Array.from(result.grads[model.W.name].dataSync());
    tf.dispose(result.grads);
    model.dispose();
    return { loss: result.loss, grads };
  };
  const withClean = run(true);
  const constant = run(false);
  close(t, withClean.loss, constant.loss, 1e-5);
  t.true(withClean.grads.some((value, i) => Math.abs(value - constant.grads[i]) > 1e-6));
});

test('adversarial settings: VILLA\'s K, α, ε, both modalities, a step relative to the embeddings; bad values are refused', (t) => {
  t.deepEqual(parseAdversarialSettings({}), { steps: 3, eta: 1e-2, alpha: 1.5, epsilon: 0, norm: 'l2', modality: 'both', cleanGradient: true, at: 'auto', relative: true });
  t.deepEqual(parseAdversarialSettings({ eta: '0.001', modality: 'text', norm: 'linf', cleanGradient: 'false', relative: 'false' }), {
    ...ADVERSARIAL_DEFAULTS,
    eta: 0.001,
    modality: 'text',
    norm: 'linf',
    cleanGradient: false,
    relative: false,
  });
  t.throws(() => parseAdversarialSettings({ steps: '2.5' }), { message: /adv\.steps.*integer/ });
  t.throws(() => parseAdversarialSettings({ steps: '0' }), { message: /adv\.steps/ });
  t.throws(() => parseAdversarialSettings({ eta: 'fast' }), { message: /adv\.eta.*expected a number > 0, got "fast"/ });
  t.throws(() => parseAdversarialSettings({ modality: 'audio' }), { message: /text, image or both/ });
  t.is(tf.tidy(() => perExampleNorm(tf.tensor2d([[3, 4]]), 'l2').dataSync()[0]), 5);
});
