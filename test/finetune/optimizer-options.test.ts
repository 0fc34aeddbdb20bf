import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { AdamW } from '../../models/train.ts';
import { clipParameterRole } from '../../models/encoders/clip.ts';

test.before(async () => {
  await selectBackend('wasm');
});

test('CLIP parameter roles go by name, not rank: 2-D position and token embeddings are embeddings, the patch kernel is a weight', (t) => {
  t.is(clipParameterRole('vision_model.embeddings.position_embedding.weight'), 'embedding');
  t.is(clipParameterRole('text_model.embeddings.position_embedding.weight'), 'embedding');
  t.is(clipParameterRole('text_model.embeddings.token_embedding.weight'), 'embedding');
  t.is(clipParameterRole('vision_model.embeddings.class_embedding'), 'embedding');
  t.is(clipParameterRole('vision_model.embeddings.patch_embedding.weight'), 'weight');
  t.is(clipParameterRole('vision_model.pre_layrnorm.weight'), 'norm');
  t.is(clipParameterRole('text_model.encoder.layers.0.layer_norm1.weight'), 'norm');
  t.is(clipParameterRole('text_model.final_layer_norm.bias'), 'norm');
  t.is(clipParameterRole('vision_model.encoder.layers.1.mlp.fc1.bias'), 'bias');
  t.is(clipParameterRole('vision_model.encoder.layers.1.mlp.fc1.weight'), 'weight');
  t.is(clipParameterRole('visual_projection.weight'), 'weight');
  t.is(clipParameterRole('logit_scale'), 'logit_scale');
});

test('AdamW: a variable\'s learning-rate scale multiplies its step, and a 2-D variable marked not to decay does not', (t) => {
  const lr = 0.01;
  const wd = 0.1;
  const head = tf.variable(tf.tensor2d([[1, 2]]));
  const positions = tf.variable(tf.tensor2d([[1, 2]]));
  const encoderWeight = tf.variable(tf.tensor2d([[1, 2]]));
  const variables = new Map<string, tf.Variable>([['head', head], ['encoder/pos', positions], ['encoder/w', encoderWeight]]);
  const gradient = () => tf.tensor2d([[0.5, -2]]);
  const options = new Map([
    ['encoder/pos', { learningRateScale: 0.1, weightDecay: false }],
    ['encoder/w', { learningRateScale: 0.1, weightDecay: true }],
  ]);
  new AdamW({ beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: wd }).apply(variables, new Map([['head', gradient()], ['encoder/pos', gradient()], ['encoder/w', gradient()]]), lr, options);
  // First step: the Adam update is sign(g) (up to ε); decay is p·(1 − lr_i·wd) with lr_i = lr × scale.
  const expect = (values: Float32Array | Int32Array | Uint8Array, rate: number, decays: boolean) => {
    const decay = decays ? 1 - rate * wd : 1;
    t.true(Math.abs(values[0] - (1 * decay - rate)) < 1e-6, `${values[0]}`);
    t.true(Math.abs(values[1] - (2 * decay + rate)) < 1e-6, `${values[1]}`);
  };
  expect(head.dataSync(), lr, true); // undescribed: rank ≥ 2 decays, scale 1
  expect(positions.dataSync(), lr * 0.1, false);
  expect(encoderWeight.dataSync(), lr * 0.1, true);
});
