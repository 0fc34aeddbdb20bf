import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { softScoreBceLoss, softScoreTargets, vqaSoftScore, parseSoftScoreBceSettings } from '../../models/objectives/soft-score-bce.ts';
import { multipleChoiceLoss } from '../../models/objectives/multiple-choice-ce.ts';
import { clampLogitScale, createLogitScale, infoNceLoss } from '../../models/objectives/info-nce.ts';

test.before(async () => {
  await selectBackend('wasm');
});

const softplus = (x: number) => Math.log(1 + Math.exp(x));
const close = (t: { true: (v: boolean, m?: string) => void }, actual: number, expected: number, tolerance = 1e-5) =>
  t.true(Math.abs(actual - expected) <= tolerance, `${actual} ≠ ${expected}`);

test('vqaSoftScore gives the official leave-one-out accuracies', (t) => {
  const expected = [0, 0.3, 0.6, 0.9, 1, 1, 1, 1, 1, 1, 1];
  expected.forEach((value, matches) => close(t, vqaSoftScore(matches), value, 1e-12));
  t.throws(() => vqaSoftScore(11));
});

test('soft-score BCE is the sum over answers averaged over questions', (t) => {
  const logits = [
    [0, 2, -1],
    [1, -2, 0.5],
  ];
  const targets = [
    [1, 0.3, 0],
    [0, 0.9, 0.6],
  ];
  let byHand = 0;
  logits.forEach((row, b) => row.forEach((x, a) => (byHand += softplus(x) - x * targets[b][a])));
  byHand /= 2;
  const loss = tf.tidy(() => softScoreBceLoss(tf.tensor2d(logits), tf.tensor2d(targets)).dataSync()[0]);
  close(t, loss, byHand);
  close(t, byHand, 3.2238025, 1e-6);
});

test('soft-score BCE stays finite for large logits', (t) => {
  const loss = tf.tidy(() => softScoreBceLoss(tf.tensor2d([[200, -200]]), tf.tensor2d([[0, 1]])).dataSync()[0]);
  close(t, loss, 400, 1e-3);
});

test('softScoreTargets builds dense targets and refuses bad entries', (t) => {
  const dense = softScoreTargets([[{ answer: 2, score: 0.6 }], [{ answer: 0, score: 1 }, { answer: 1, score: 0.3 }]], 3);
  t.deepEqual(Array.from(dense.dataSync()).map((v) => Math.round(v * 10) / 10), [0, 0, 0.6, 1, 0.3, 0]);
  dense.dispose();
  t.throws(() => softScoreTargets([[{ answer: 3, score: 1 }]], 3), { message: /outside the vocabulary/ });
  t.throws(() => softScoreTargets([[{ answer: 0, score: 1 }, { answer: 0, score: 0.3 }]], 3), { message: /twice/ });
  t.throws(() => parseSoftScoreBceSettings({ scale: '2' }), { message: /unknown setting "scale".*no settings/ });
});

test('multiple-choice CE matches hand computation', (t) => {
  const scores = [
    [1, 2, 3, 4],
    [0.5, -1, 0, 2],
  ];
  const labels = [3, 1];
  const ce = (row: number[], label: number) => Math.log(row.reduce((s, x) => s + Math.exp(x), 0)) - row[label];
  const byHand = (ce(scores[0], 3) + ce(scores[1], 1)) / 2;
  const loss = tf.tidy(() => multipleChoiceLoss(tf.tensor2d(scores), labels).dataSync()[0]);
  close(t, loss, byHand);
  // Smoothing 0.2 over 4 choices: target 0.85 on the label, 0.05 elsewhere.
  const smoothed = tf.tidy(() => multipleChoiceLoss(tf.tensor2d([scores[0]]), [3], { labelSmoothing: 0.2 }).dataSync()[0]);
  const logZ = Math.log(scores[0].reduce((s, x) => s + Math.exp(x), 0));
  close(t, smoothed, scores[0].reduce((s, x, k) => s - (k === 3 ? 0.85 : 0.05) * (x - logZ), 0));
  t.throws(() => tf.tidy(() => multipleChoiceLoss(tf.tensor2d(scores), [4, 0])), { message: /label 4/ });
});

test('InfoNCE of orthogonal matching pairs is log(1 + (N−1)e^−s)', (t) => {
  const loss = tf.tidy(() => infoNceLoss(tf.eye(3) as tf.Tensor2D, tf.eye(3).mul(5) as tf.Tensor2D, tf.scalar(Math.log(10))).dataSync()[0]);
  close(t, loss, Math.log(1 + 2 * Math.exp(-10)));
});

test('InfoNCE of identical embeddings is log N', (t) => {
  const same = () => tf.tensor2d([[1, 2], [1, 2], [1, 2], [1, 2]]);
  const loss = tf.tidy(() => infoNceLoss(same(), same(), tf.scalar(Math.log(1 / 0.07))).dataSync()[0]);
  close(t, loss, Math.log(4));
});

test('InfoNCE caps the logit scale at 100 and passes no gradient through the cap', (t) => {
  const capped = tf.tidy(() => infoNceLoss(tf.eye(3) as tf.Tensor2D, tf.eye(3) as tf.Tensor2D, tf.scalar(Math.log(1000))).dataSync()[0]);
  close(t, capped, Math.log(1 + 2 * Math.exp(-100)), 1e-7);
  const gradient = tf.tidy(() => {
    const images = tf.tensor2d([[1, 0.5], [0.2, 1]]);
    const texts = tf.tensor2d([[1, 0.1], [0.3, 1]]);
    return tf.grad((s: tf.Tensor) => infoNceLoss(images, texts, s as tf.Scalar))(tf.scalar(Math.log(1000))).dataSync()[0];
  });
  t.is(gradient, 0);
});

test('InfoNCE with sameItem treats captions of one image as positives of each other', (t) => {
  const rows = () => tf.tensor2d([[1, 0], [1, 0], [0, 1]]);
  const loss = tf.tidy(() => infoNceLoss(rows(), rows(), tf.scalar(Math.log(10)), { sameItem: [7, 7, 9] }).dataSync()[0]);
  close(t, loss, (2 * Math.log(2 + Math.exp(-10)) + Math.log(1 + 2 * Math.exp(-10))) / 3);
});

test('the logit scale starts at log(1/0.07) and clamps to [0, log 100]', (t) => {
  const scale = createLogitScale();
  close(t, scale.dataSync()[0], Math.log(1 / 0.07), 1e-6);
  scale.assign(tf.scalar(7));
  clampLogitScale(scale);
  close(t, scale.dataSync()[0], Math.log(100), 1e-6);
  scale.dispose();
});
