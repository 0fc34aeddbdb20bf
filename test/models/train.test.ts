import test from 'ava';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { SeededRandom } from '../../core/random.ts';
import { AdamW, clipByGlobalNorm, epochBatches, learningRateAt, train, TrainingDivergedError, type TrainingProblem } from '../../models/train.ts';

test.before(async () => {
  await selectBackend('wasm');
});

/** y = 2·x₀ − 3·x₁ + 1 with a little noise: a linear model must learn it. */
function linearProblem(seed = 1, options: { poison?: boolean; validate?: () => number } = {}): TrainingProblem & { weights: tf.Variable; bias: tf.Variable } {
  const random = new SeededRandom(seed);
  const n = 64;
  const xs = Array.from({ length: n }, () => [random.normal(), random.normal()]);
  const ys = xs.map(([a, b]) => 2 * a - 3 * b + 1 + 0.01 * random.normal());
  const weights = tf.variable(tf.zeros([2, 1]), true, `w${Math.random()}`);
  const bias = tf.variable(tf.zeros([1]), true, `b${Math.random()}`);
  const variables = new Map<string, tf.Variable>([
    ['linear.weight', weights],
    ['linear.bias', bias],
  ]);
  return {
    weights,
    bias,
    variables,
    exampleCount: n,
    computeGradients(batch) {
      const x = tf.tensor2d(batch.map((i) => xs[i]));
      const y = tf.tensor2d(batch.map((i) => [ys[i]]));
      const { value, grads } = tf.variableGrads(() => {
        const loss = tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, weights), bias), y))) as tf.Scalar;
        return options.poison ? (tf.mul(loss, NaN) as tf.Scalar) : loss;
      }, [weights, bias]);
      const loss = value.dataSync()[0];
      value.dispose();
      x.dispose();
      y.dispose();
      return { loss, gradients: new Map([['linear.weight', grads[weights.name]], ['linear.bias', grads[bias.name]]]) };
    },
    validate: options.validate ? async () => options.validate!() : undefined,
  };
}

test('the learning rate warms up linearly, then follows a cosine to zero', (t) => {
  const settings = { learningRate: 1, warmupFraction: 0.1, schedule: 'cosine' as const };
  t.is(learningRateAt(0, 100, settings), 0.1);
  t.is(learningRateAt(9, 100, settings), 1);
  t.is(learningRateAt(10, 100, settings), 1);
  t.true(Math.abs(learningRateAt(55, 100, settings) - 0.5) < 1e-12);
  t.is(learningRateAt(5, 10, { ...settings, schedule: 'linear', warmupFraction: 0 }), 0.5);
});

test('one AdamW step matches the hand computation, with decoupled decay on matrices only', (t) => {
  const matrix = tf.variable(tf.tensor2d([[1, 2]]));
  const vector = tf.variable(tf.tensor1d([1]));
  const optimizer = new AdamW({ beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1 });
  const variables = new Map<string, tf.Variable>([['m', matrix], ['v', vector]]);
  optimizer.apply(variables, new Map<string, tf.Tensor>([['m', tf.tensor2d([[0.5, -2]])], ['v', tf.tensor1d([4])]]), 0.01);
  // First step: m̂ = g, v̂ = g², so the update is g/|g| = sign(g) (up to epsilon).
  const m = matrix.dataSync();
  t.true(Math.abs(m[0] - (1 * (1 - 0.01 * 0.1) - 0.01)) < 1e-6);
  t.true(Math.abs(m[1] - (2 * (1 - 0.01 * 0.1) + 0.01)) < 1e-6);
  t.true(Math.abs(vector.dataSync()[0] - (1 - 0.01)) < 1e-6);
});

test('clipping scales gradients to the maximum global norm', (t) => {
  const { gradients, norm } = clipByGlobalNorm(new Map([['a', tf.tensor1d([3])], ['b', tf.tensor1d([4])]]), 1);
  t.is(norm, 5);
  t.true(Math.abs(gradients.get('a')!.dataSync()[0] - 0.6) < 1e-5);
  t.true(Math.abs(gradients.get('b')!.dataSync()[0] - 0.8) < 1e-5);
});

test('epoch batches are a seeded permutation covering every example once', (t) => {
  const batches = epochBatches(10, 4, 3, 0);
  t.deepEqual(batches.map((b) => b.length), [4, 4, 2]);
  t.deepEqual(batches.flat().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.deepEqual(epochBatches(10, 4, 3, 0), batches);
  t.notDeepEqual(epochBatches(10, 4, 3, 1), batches);
});

test('training lowers the loss and learns the linear map', async (t) => {
  const problem = linearProblem();
  const result = await train(problem, { epochs: 40, batchSize: 16, learningRate: 0.1, weightDecay: 0, warmupFraction: 0.05, maxGradNorm: 0 });
  t.is(result.steps, 160);
  t.true(result.curve.at(-1)!.loss < result.curve[0].loss / 100);
  const [w0, w1] = problem.weights.dataSync();
  t.true(Math.abs(w0 - 2) < 0.05 && Math.abs(w1 + 3) < 0.05, `weights ${w0}, ${w1}`);
});

test('a NaN loss stops training with a clear message', async (t) => {
  const error = await t.throwsAsync(train(linearProblem(1, { poison: true }), { epochs: 1, batchSize: 16 }), { instanceOf: TrainingDivergedError });
  t.regex(error!.message, /training diverged at step 1\/4: loss NaN.*lower the learning rate/);
});

test('a run interrupted after a checkpoint resumes to exactly the uninterrupted result', async (t) => {
  const settings = { epochs: 5, batchSize: 16, learningRate: 0.05, checkpointEvery: 3, seed: 9 };
  const straight = linearProblem(2);
  await train(straight, settings);
  const dir = await mkdtemp(join(tmpdir(), 'vlbench-train-'));
  const first = linearProblem(2);
  await t.throwsAsync(train(first, settings, { checkpointDir: dir, interruptAfterStep: 7 }), { message: /interrupted after step 7/ });
  t.deepEqual((await readdir(dir)).sort(), ['checkpoint-6.safetensors', 'checkpoint.json']);
  const resumed = linearProblem(2);
  const result = await train(resumed, settings, { checkpointDir: dir, resume: true });
  t.is(result.resumedFromStep, 6);
  t.is(result.curve.length, 20);
  t.deepEqual(Array.from(resumed.weights.dataSync()), Array.from(straight.weights.dataSync()));
  t.deepEqual(Array.from(resumed.bias.dataSync()), Array.from(straight.bias.dataSync()));
});

test('early stopping fires after the patience runs out and keeps the best weights', async (t) => {
  const scores = [0.5, 0.9, 0.8, 0.7, 0.6, 0.95];
  let call = 0;
  let bestWeights: number[] = [];
  const problem = linearProblem(3, { validate: () => scores[call++] });
  const originalValidate = problem.validate!;
  problem.validate = async () => {
    const score = await originalValidate();
    if (score === 0.9) bestWeights = Array.from(problem.weights.dataSync());
    return score;
  };
  const result = await train(problem, { epochs: 6, batchSize: 64, earlyStopPatience: 2, learningRate: 0.1 });
  t.true(result.stoppedEarly);
  t.is(result.steps, 4);
  t.is(result.bestStep, 2);
  t.deepEqual(Array.from(problem.weights.dataSync()), bestWeights);
});
