import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { FusionTransformer } from '../../models/heads/fusion.ts';
import { SeededRandom } from '../../core/random.ts';

/**
 * With inputNorm the fusion normalises each input before projecting it, so the scale of the
 * encoder's tokens (mean image-token norm 51 on the SynthScenes source, 134 on the target)
 * does not reach its residual stream: image tokens scaled by 3 give the same output, up to
 * the layer norm's ε.
 */
test.before(async () => {
  await selectBackend('wasm');
});

function outputs(inputNorm: boolean, imageScale: number): Float32Array {
  const fusion = new FusionTransformer({ imageDim: 8, textDim: 6, hidden: 16, layers: 1, heads: 2, inputNorm }, new SeededRandom(4));
  const image = tf.mul(tf.randomNormal([2, 5, 8], 0, 1, 'float32', 7), imageScale) as tf.Tensor3D;
  const text = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 8) as tf.Tensor3D;
  const mask = tf.tensor2d([[1, 1, 1], [1, 1, 0]]);
  const pooled = fusion.apply({ imageTokens: image, textTokens: text, textMask: mask }).pooled;
  const values = pooled.dataSync() as Float32Array;
  tf.dispose([image, text, mask, pooled]);
  fusion.dispose();
  return values;
}

const maxDifference = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

test('with inputNorm the fusion output does not depend on the image tokens\' scale; without it, it does', (t) => {
  t.true(maxDifference(outputs(true, 1), outputs(true, 3)) < 1e-4);
  t.true(maxDifference(outputs(false, 1), outputs(false, 3)) > 1e-2);
});

test('inputNorm adds its parameters after the others: every other parameter starts as without it', (t) => {
  const plain = new FusionTransformer({ imageDim: 8, textDim: 6, hidden: 16, layers: 1, heads: 2 }, new SeededRandom(4));
  const normed = new FusionTransformer({ imageDim: 8, textDim: 6, hidden: 16, layers: 1, heads: 2, inputNorm: true }, new SeededRandom(4));
  const a = plain.namedVariables();
  const b = normed.namedVariables();
  t.deepEqual([...b.keys()].filter((name) => !a.has(name)).sort(), ['fusion/image_input_norm/beta', 'fusion/image_input_norm/gamma', 'fusion/text_input_norm/beta', 'fusion/text_input_norm/gamma']);
  for (const [name, variable] of a) t.deepEqual(Array.from(variable.dataSync()), Array.from(b.get(name)!.dataSync()), name);
  plain.dispose();
  normed.dispose();
});
