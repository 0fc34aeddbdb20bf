import * as tf from '@tensorflow/tfjs';
import { transposedProductsAreFree } from '../backends/wasm-blas.ts';

/**
 * Matrix product whose gradient never asks the backend for a transposed matmul.
 *
 * On the wasm backend (tfjs 4.22), `tf.matMul` with transposeA or transposeB is 10–35×
 * slower than an explicit `transpose` followed by a plain product (measured on this
 * project's 2-core machine: [2112,256]ᵀ·[2112,1024] takes 1470 ms with transposeA against
 * 42 ms transposed first; with transposeB 402 ms against 41 ms). tfjs's own matMul gradient
 * uses exactly those transposed products, so every backward pass through a dense layer paid
 * that price. This product transposes explicitly, forward and backward.
 *
 * Ranks 2 and 3 (same batch size) are supported, which is all the heads and objectives use.
 * Where transposed products are free (BLAS kernels, TensorFlow) this is tf.matMul itself:
 * the copies would be pure cost there.
 */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  if (a.rank !== b.rank || (a.rank !== 2 && a.rank !== 3) || (a.rank === 3 && a.shape[0] !== b.shape[0])) {
    throw new Error(`matMul: need two rank-2 or two rank-3 tensors with one batch size, got ${JSON.stringify(a.shape)} and ${JSON.stringify(b.shape)}`);
  }
  if (transposedProductsAreFree()) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => product(transposeA ? swapLastAxes(a) : a, transposeB ? swapLastAxes(b) : b));
}

function swapLastAxes(x: tf.Tensor): tf.Tensor {
  return x.rank === 2 ? x.transpose() : x.transpose([0, 2, 1]);
}

const product = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const a = args[0] as tf.Tensor;
  const b = args[1] as tf.Tensor;
  const save = args[2] as tf.GradSaveFunc;
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.matMul(dy, swapLastAxes(saved[1])), tf.matMul(swapLastAxes(saved[0]), dy)],
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
