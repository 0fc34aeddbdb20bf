import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { SeededRandom } from '../../core/random.ts';
import { ClipModel, embeddingLookup } from '../../models/encoders/clip.ts';
import { parseClipConfig } from '../../models/encoders/clip-config.ts';

const config = parseClipConfig(
  {
    projection_dim: 8,
    text_config: { vocab_size: 20, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 2, max_position_embeddings: 6, eos_token_id: 19, bos_token_id: 18, pad_token_id: 19 },
    vision_config: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 2, image_size: 8, patch_size: 4 },
  },
  'freeze-test config',
);

let model: ClipModel;

test.before(async () => {
  await selectBackend('wasm');
  model = ClipModel.initialise(config, new SeededRandom(7));
});

test.after.always(() => model?.dispose());

const names = () => model.trainableVariables().map((v) => model.parameterNames.find((n) => model.parameter(n) === v)!);

test.serial('frozen: nothing trains; all: every parameter trains', (t) => {
  model.setFreezePolicy('frozen');
  t.is(model.trainableVariables().length, 0);
  model.setFreezePolicy('all');
  t.is(model.trainableVariables().length, model.parameterNames.length);
  t.is(model.parameterNames.length, 2 + 3 * 16 + 2 + 3 + 2 + 3 * 16 + 2 + 3);
});

test.serial('lastBlocks k opens the last k blocks of each tower, final norms, projections and logit_scale', (t) => {
  model.setFreezePolicy({ lastBlocks: 1 });
  const open = names();
  t.true(open.includes('text_model.encoder.layers.2.mlp.fc1.weight'));
  t.true(open.includes('vision_model.encoder.layers.2.self_attn.q_proj.bias'));
  t.false(open.some((n) => /layers\.[01]\./.test(n)));
  t.false(open.some((n) => n.includes('embeddings')));
  t.false(open.includes('vision_model.pre_layrnorm.weight'));
  for (const name of ['visual_projection.weight', 'text_projection.weight', 'logit_scale', 'text_model.final_layer_norm.weight', 'vision_model.post_layernorm.bias']) t.true(open.includes(name), name);
  t.is(open.length, 2 * 16 + 2 + 1 + 2 + 2);
  model.setFreezePolicy({ lastBlocks: 2 });
  t.is(names().length, 4 * 16 + 7);
  model.setFreezePolicy({ lastBlocks: 0 });
  t.is(model.freezePolicy, 'frozen');
  t.throws(() => model.setFreezePolicy({ lastBlocks: -1 }), { instanceOf: InputError });
});

test.serial('an optimizer step inside tf.grad changes exactly the trainable variables', async (t) => {
  model.setFreezePolicy({ lastBlocks: 1 });
  const before = new Map(await Promise.all(model.parameterNames.map(async (n) => [n, await model.parameter(n).data()] as const)));
  const pixels = tf.randomNormal([2, 3, 8, 8], 0, 1, 'float32', 3) as tf.Tensor4D;
  const batch = { inputIds: Int32Array.from([18, 3, 3, 19, 19, 19, 18, 5, 6, 7, 19, 19]), attentionMask: Int32Array.from([1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0]), batch: 2, length: 6 };
  const optimizer = tf.train.sgd(0.1);
  // A contrastive-style loss over both towers, as pretraining will compute it.
  optimizer.minimize(() => {
    const image = model.imageForward(pixels).embeds;
    const text = model.textForward(batch).embeds;
    const logits = tf.matMul(image, text, false, true).mul(model.logitScale.exp());
    return tf.losses.softmaxCrossEntropy(tf.eye(2), logits) as tf.Scalar;
  }, false, model.trainableVariables());
  for (const name of model.parameterNames) {
    const after = await model.parameter(name).data();
    const changed = after.some((v, i) => v !== before.get(name)![i]);
    const trainable = model.parameter(name).trainable;
    // LayerNorm biases of the last block may get a zero gradient only by coincidence; weights never.
    if (trainable && name.endsWith('weight')) t.true(changed, `${name} should have changed`);
    if (!trainable) t.false(changed, `${name} is frozen but changed`);
  }
  pixels.dispose();
  optimizer.dispose();
});

test.serial('token embedding gradients reach exactly the rows used (on wasm)', async (t) => {
  model.setFreezePolicy('all');
  const table = model.parameter('text_model.embeddings.token_embedding.weight');
  const batch = { inputIds: Int32Array.from([18, 3, 3, 19]), attentionMask: Int32Array.from([1, 1, 1, 1]), batch: 1, length: 4 };
  const { grads } = tf.variableGrads(() => model.textForward(batch).embeds.sum() as tf.Scalar, [table]);
  const gradient = await grads[table.name].array() as number[][];
  const rowNorm = (r: number) => Math.hypot(...gradient[r]);
  for (const used of [3, 18, 19]) t.true(rowNorm(used) > 0, `row ${used}`);
  for (const unused of [0, 1, 2, 4, 17]) t.is(rowNorm(unused), 0, `row ${unused}`);
  tf.dispose(Object.values(grads));
});

test('the embedding lookup gradient sums repeated ids (ScatterNd on wasm)', async (t) => {
  const table = tf.variable(tf.zeros([4, 2]), true, 'freeze-test-table');
  const weights = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
  const ids = tf.tensor1d([1, 1, 2], 'int32');
  const { grads } = tf.variableGrads(() => embeddingLookup(table as tf.Tensor2D, ids).mul(weights).sum() as tf.Scalar, [table]);
  t.deepEqual(await grads[table.name].array(), [[0, 0], [4, 6], [5, 6], [0, 0]]);
  tf.dispose([table, weights, ids, ...Object.values(grads)]);
});
