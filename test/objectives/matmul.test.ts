import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { matMul } from '../../models/ops/matmul.ts';

test.before(async () => {
  await selectBackend('wasm');
});

test('matMul and its gradients equal tf.matMul’s, for every transpose and ranks 2 and 3', (t) => {
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[2, 3], [3, 4], false, false],
    [[3, 2], [3, 4], true, false],
    [[2, 3], [4, 3], false, true],
    [[3, 2], [4, 3], true, true],
    [[2, 2, 3], [2, 3, 4], false, false],
    [[2, 3, 2], [2, 4, 3], true, true],
  ];
  for (const [shapeA, shapeB, ta, tb] of cases) {
    const [ours, theirs] = [matMul, tf.matMul].map((product) =>
      tf.tidy(() => {
        const a = tf.range(0, shapeA.reduce((x, y) => x * y)).reshape(shapeA).div(7);
        const b = tf.range(0, shapeB.reduce((x, y) => x * y)).reshape(shapeB).sub(3);
        const weights = tf.randomUniform(product(a, b, ta, tb).shape, -1, 1, 'float32', 42);
        const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => product(x, y, ta, tb).mul(weights).sum())([a, b]);
        return [product(a, b, ta, tb), ga, gb].map((x) => Array.from(x.dataSync()));
      }),
    );
    ours.forEach((values, k) => values.forEach((v, i) => t.true(Math.abs(v - theirs[k][i]) < 1e-4, `${shapeA} ${shapeB} ${ta} ${tb} part ${k}`)));
  }
  t.throws(() => matMul(tf.ones([2, 2]), tf.ones([1, 2, 2])), { message: /rank-2 or two rank-3/ });
});
