import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { SIGMOID_DEFAULTS, sigmoidLoss } from '../../models/objectives/sigmoid-pairs.ts';
import { SeededRandom } from '../../core/random.ts';

/** SigLIP's sigmoid loss against PyTorch (the fixture's reference), its closed-form gradient and finite differences. */
const reference = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'siglip-tiny', 'reference.json'), 'utf8')) as {
  image_embeds: number[][];
  text_embeds: number[][];
  logit_scale: number;
  logit_bias: number;
  sigmoid_loss_first_two: number;
};

test.before(async () => {
  await selectBackend('wasm');
});

/** The loss in float64, written out: −(1/B) Σ_ij log σ(z_ij (t x̂_i·ŷ_j + b)). */
function lossInDoubles(images: number[][], texts: number[][], logScale: number, bias: number): number {
  const unit = (v: number[]) => {
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };
  const x = images.map(unit);
  const y = texts.map(unit);
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = 0; j < y.length; j++) {
      const logit = Math.exp(logScale) * x[i].reduce((s, v, k) => s + v * y[j][k], 0) + bias;
      const u = (i === j ? 1 : -1) * logit;
      sum += Math.min(u, 0) - Math.log1p(Math.exp(-Math.abs(u)));
    }
  }
  return -sum / x.length;
}

test('the sigmoid loss equals PyTorch on the SigLIP fixture embeddings (t = 10, b = -10)', (t) => {
  t.is(reference.logit_scale, Math.fround(Math.log(10)));
  const value = tf.tidy(() =>
    sigmoidLoss(tf.tensor2d(reference.image_embeds), tf.tensor2d(reference.text_embeds.slice(0, 2)), tf.tensor1d([reference.logit_scale]), tf.tensor1d([reference.logit_bias])).dataSync()[0],
  );
  t.true(Math.abs(value - reference.sigmoid_loss_first_two) < 1e-4, `${value} vs torch ${reference.sigmoid_loss_first_two}`);
  t.true(Math.abs(lossInDoubles(reference.image_embeds, reference.text_embeds.slice(0, 2), Math.log(10), -10) - reference.sigmoid_loss_first_two) < 1e-4);
});

test('its gradient: ∂L/∂b in closed form, and every input against central differences', (t) => {
  const random = new SeededRandom(11);
  const values = (rows: number, cols: number) => Array.from({ length: rows }, () => Array.from({ length: cols }, () => random.normal()));
  const images = values(3, 4);
  const texts = values(3, 4);
  const logScale = 0.7;
  const bias = -1.3;
  const [dImages, dTexts, dScale, dBias] = tf.tidy(() =>
    tf.grads((x: tf.Tensor, y: tf.Tensor, s: tf.Tensor, b: tf.Tensor) => sigmoidLoss(x as tf.Tensor2D, y as tf.Tensor2D, s, b))([tf.tensor2d(images), tf.tensor2d(texts), tf.tensor1d([logScale]), tf.tensor1d([bias])]).map((g) => g.arraySync()),
  ) as [number[][], number[][], number[], number[]];
  // ∂L/∂b = (1/B) Σ_ij (σ(logit_ij) − [i = j]).
  const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  let closed = 0;
  images.forEach((image, i) =>
    texts.forEach((text, j) => {
      const logit = Math.exp(logScale) * unit(image).reduce((s, v, k) => s + v * unit(text)[k], 0) + bias;
      closed += 1 / (1 + Math.exp(-logit)) - (i === j ? 1 : 0);
    }),
  );
  closed /= images.length;
  t.true(Math.abs(dBias[0] - closed) < 1e-5, `∂L/∂b ${dBias[0]} vs ${closed}`);
  const h = 1e-5;
  const central = (f: (delta: number) => number) => (f(h) - f(-h)) / (2 * h);
  t.true(Math.abs(dScale[0] - central((d) => lossInDoubles(images, texts, logScale + d, bias))) < 1e-4);
  t.true(Math.abs(dBias[0] - central((d) => lossInDoubles(images, texts, logScale, bias + d))) < 1e-4);
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 4; k++) {
      const shifted = (m: number[][], d: number) => m.map((row, r) => row.map((v, c) => (r === i && c === k ? v + d : v)));
      t.true(Math.abs(dImages[i][k] - central((d) => lossInDoubles(shifted(images, d), texts, logScale, bias))) < 1e-4, `∂L/∂x[${i}][${k}]`);
      t.true(Math.abs(dTexts[i][k] - central((d) => lossInDoubles(images, shifted(texts, d), logScale, bias))) < 1e-4, `∂L/∂y[${i}][${k}]`);
    }
  }
});

test('the paper initialisation: t = 10, b = -10; a matching batch has a lower loss than a shuffled one', (t) => {
  t.is(SIGMOID_DEFAULTS.logitScaleInit, Math.log(10));
  t.is(SIGMOID_DEFAULTS.logitBiasInit, -10);
  const eye = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  const loss = (texts: number[][]) => tf.tidy(() => sigmoidLoss(tf.tensor2d(eye), tf.tensor2d(texts), tf.tensor1d([Math.log(10)]), tf.tensor1d([-5])).dataSync()[0]);
  t.true(loss(eye) < loss([eye[1], eye[2], eye[0]]));
});
