import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { SeededRandom } from '../../core/random.ts';
import { boxGeometry, FusionTransformer, maxOverTokens, type ChoiceGroups, type FusionConfig, type FusionInputs } from '../../models/heads/fusion.ts';

/**
 * The multiple-choice fusion whose prefix (image, regions, question) runs once per group of
 * choice rows (FusionConfig.sharedPrefix): what it computes against the full-attention fusion,
 * the property that makes the sharing valid, and its grouping against groups of one row.
 */

test.before(async () => {
  await selectBackend('wasm');
});

const GROUPS = 2;
const PER_GROUP = 3;
const ROWS = GROUPS * PER_GROUP;
const TEXT = 7;
/** Group 0 shares 3 text tokens (start token and a two-token question), group 1 shares 2. */
const PREFIX_LENGTHS = [3, 2];
/** Real text tokens per row (the last is the end token): every choice has one token or more, and they end at different places. */
const LENGTHS = [5, 6, 5, 4, 7, 4];
const choiceGroups: ChoiceGroups = { rows: PER_GROUP, prefixLengths: PREFIX_LENGTHS };

/** Rows of two groups: within a group the same image, regions and first prefix tokens; each row's choice its own. */
function groupedInputs(seed = 5): FusionInputs {
  const random = new SeededRandom(seed);
  const values = (count: number) => Array.from({ length: count }, () => random.normal());
  const image = Array.from({ length: GROUPS }, () => values(4 * 6));
  const regions = Array.from({ length: GROUPS }, () => values(2 * 6));
  const prefixText = Array.from({ length: GROUPS }, () => values(TEXT * 5));
  const text = Array.from({ length: ROWS }, (_, row) => {
    const group = Math.floor(row / PER_GROUP);
    const own = values(TEXT * 5);
    return own.map((value, i) => (Math.floor(i / 5) < PREFIX_LENGTHS[group] ? prefixText[group][i] : value));
  });
  const groupOf = (row: number) => Math.floor(row / PER_GROUP);
  const rows = Array.from({ length: ROWS }, (_, row) => row);
  const boxes = rows.map((row) => (groupOf(row) === 0 ? [[0.1, 0.1, 0.5, 0.6], [0.4, 0.2, 0.9, 0.9]] : [[0.2, 0.3, 0.7, 0.8]]) as [number, number, number, number][]);
  return {
    imageTokens: tf.tensor3d(rows.flatMap((row) => image[groupOf(row)]), [ROWS, 4, 6]),
    textTokens: tf.tensor3d(text.flat(), [ROWS, TEXT, 5]),
    textMask: tf.tensor2d(rows.flatMap((row) => Array.from({ length: TEXT }, (_, t) => (t < LENGTHS[row] ? 1 : 0))), [ROWS, TEXT]),
    // Group 1 has one real region of two.
    regions: {
      tokens: tf.tensor3d(rows.flatMap((row) => regions[groupOf(row)]), [ROWS, 2, 6]),
      mask: tf.tensor2d(rows.flatMap((row) => (groupOf(row) === 0 ? [1, 1] : [1, 0])), [ROWS, 2]),
      geometry: boxGeometry(boxes, 2),
    },
    // Max-pooled over each row's choice: its tokens after the group's prefix, before the end token.
    focus: tf.tensor2d(rows.flatMap((row) => Array.from({ length: TEXT }, (_, t) => (t >= PREFIX_LENGTHS[groupOf(row)] && t < LENGTHS[row] - 1 ? 1 : 0))), [ROWS, TEXT]),
  };
}

const config: FusionConfig = { imageDim: 6, textDim: 5, hidden: 8, layers: 2, heads: 2 };

function dispose(inputs: FusionInputs): void {
  tf.dispose([inputs.imageTokens, inputs.textTokens, inputs.textMask, inputs.focus!, inputs.regions!.tokens, inputs.regions!.mask, inputs.regions!.geometry]);
}

function assertClose(t: { true: (condition: boolean, message?: string) => void }, got: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  t.true(got.length === expected.length, `${what}: ${got.length} values, expected ${expected.length}`);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
  t.true(worst <= tolerance, `${what}: largest difference ${worst}`);
}

test('one layer: every choice pools what the full-attention fusion pools, and trains the same gradients', (t) => {
  // With one layer a choice token attends to the same inputs either way; only the prefix's own
  // outputs differ, and the pooled vector reads none of them.
  const shared = new FusionTransformer({ ...config, layers: 1, sharedPrefix: true }, new SeededRandom(3));
  const full = new FusionTransformer({ ...config, layers: 1 }, new SeededRandom(3));
  const inputs = groupedInputs();
  const loss = (fusion: FusionTransformer, groups?: ChoiceGroups) => () => fusion.apply({ ...inputs, choiceGroups: groups }).pooled.square().sum() as tf.Scalar;
  const [pooledShared, pooledFull] = tf.tidy(() => [shared.apply({ ...inputs, choiceGroups }).pooled.dataSync(), full.apply(inputs).pooled.dataSync()]);
  assertClose(t, pooledShared, pooledFull, 1e-5, 'pooled');
  const gradientsShared = tf.variableGrads(loss(shared, choiceGroups), shared.trainableVariables());
  const gradientsFull = tf.variableGrads(loss(full), full.trainableVariables());
  const names = [...shared.namedVariables().keys()];
  const byName = (fusion: FusionTransformer, grads: tf.NamedTensorMap) => new Map([...fusion.namedVariables()].map(([name, variable]) => [name, grads[variable.name]]));
  const sharedByName = byName(shared, gradientsShared.grads);
  const fullByName = byName(full, gradientsFull.grads);
  for (const name of names) assertClose(t, sharedByName.get(name)!.dataSync(), fullByName.get(name)!.dataSync(), 1e-4, `gradient of ${name}`);
  // A fusion built without sharedPrefix ignores the groups.
  const ignored = tf.tidy(() => full.apply({ ...inputs, choiceGroups }).pooled.dataSync());
  t.deepEqual(Array.from(ignored), Array.from(pooledFull));
  tf.dispose([gradientsShared.value, gradientsFull.value, ...Object.values(gradientsShared.grads), ...Object.values(gradientsFull.grads)]);
  shared.dispose();
  full.dispose();
  dispose(inputs);
});

test('two layers: the image, region and question states do not depend on the choices, and a choice changes its own row alone', (t) => {
  const shared = new FusionTransformer({ ...config, sharedPrefix: true }, new SeededRandom(3));
  const full = new FusionTransformer(config, new SeededRandom(3));
  const inputs = groupedInputs();
  // Row 1 (the second choice of group 0) gets another choice: its tokens from position 3 on.
  const changedChoice = tf.tidy(() => {
    const mask = tf.tensor3d(Array.from({ length: ROWS * TEXT }, (_, i) => (Math.floor(i / TEXT) === 1 && i % TEXT >= 3 ? 1 : 0)), [ROWS, TEXT, 1]);
    return inputs.textTokens.add(mask.mul(3)) as tf.Tensor3D;
  });
  const changed = { ...inputs, textTokens: changedChoice };
  const leading = 4 + 2 + PREFIX_LENGTHS[0];
  const run = (fusion: FusionTransformer, given: FusionInputs) =>
    tf.tidy(() => {
      const out = fusion.apply({ ...given, choiceGroups });
      return { pooled: out.pooled.arraySync() as number[][], prefix: out.sequence.slice([0, 0, 0], [PER_GROUP, leading, -1]).arraySync() as number[][][] };
    });
  const before = run(shared, inputs);
  const after = run(shared, changed);
  // Group 0's prefix states, in each of its rows, are exactly what they were.
  t.deepEqual(after.prefix, before.prefix);
  t.deepEqual(after.pooled.filter((_, row) => row !== 1), before.pooled.filter((_, row) => row !== 1));
  t.notDeepEqual(after.pooled[1], before.pooled[1]);
  // With full attention the image tokens of row 1 read its choice: this test would see the difference.
  const fullBefore = run(full, inputs);
  const fullAfter = run(full, changed);
  t.notDeepEqual(fullAfter.prefix[1], fullBefore.prefix[1]);
  tf.dispose(changedChoice);
  shared.dispose();
  full.dispose();
  dispose(inputs);
});

test('groups of three rows compute what the same rows do as groups of one, sequence and pooled', (t) => {
  const fusion = new FusionTransformer({ ...config, sharedPrefix: true }, new SeededRandom(4));
  const inputs = groupedInputs(9);
  const single: ChoiceGroups = { rows: 1, prefixLengths: Array.from({ length: ROWS }, (_, row) => PREFIX_LENGTHS[Math.floor(row / PER_GROUP)]) };
  const [grouped, alone] = [choiceGroups, single].map((groups) =>
    tf.tidy(() => {
      const out = fusion.apply({ ...inputs, choiceGroups: groups });
      // Padding is masked out of everything downstream: compare real positions only.
      return { pooled: out.pooled.dataSync(), sequence: out.sequence.mul(out.mask.expandDims(2)).dataSync(), shape: out.sequence.shape };
    }),
  );
  t.deepEqual(grouped.shape, [ROWS, 4 + 2 + TEXT, 8]);
  assertClose(t, grouped.pooled, alone.pooled, 1e-5, 'pooled');
  assertClose(t, grouped.sequence, alone.sequence, 1e-5, 'sequence');
  // Mean pooling (no focus) reads the rebuilt sequence, prefix included.
  const mean = [choiceGroups, single].map((groups) => tf.tidy(() => fusion.apply({ ...inputs, focus: undefined, choiceGroups: groups }).pooled.dataSync()));
  assertClose(t, mean[0], mean[1], 1e-5, 'mean-pooled');
  // A focus that reaches into the prefix (a truncated choice pools all its tokens) pools from the rebuilt sequence.
  const whole = [choiceGroups, single].map((groups) => tf.tidy(() => fusion.apply({ ...inputs, focus: inputs.textMask, choiceGroups: groups }).pooled.dataSync()));
  assertClose(t, whole[0], whole[1], 1e-5, 'pooled over every token');
  t.throws(() => fusion.apply({ ...inputs, choiceGroups: { rows: 4, prefixLengths: [3] } }), { message: /6 rows are not whole groups of 4/ });
  t.throws(() => fusion.apply({ ...inputs, choiceGroups: { rows: 3, prefixLengths: [3, 8] } }), { message: /prefix length 8 outside the 7 text tokens/ });
  fusion.dispose();
  dispose(inputs);
});

test('max over tokens: the value and the gradient of tfjs max, ties included', (t) => {
  // Row 0 ties at 5 in feature 0; the weights make each position's gradient distinct.
  const x = tf.tensor3d([[[5, 1], [5, 2], [0, 3]], [[1, -4], [2, -5], [-1, -6]]]);
  const weights = tf.tensor2d([[1, 10], [100, 1000]]);
  const ours = tf.grad((input: tf.Tensor) => maxOverTokens(input as tf.Tensor3D).mul(weights).sum())(x);
  const theirs = tf.grad((input: tf.Tensor) => input.max(1).mul(weights).sum())(x);
  t.deepEqual(maxOverTokens(x).arraySync(), [[5, 3], [2, -4]]);
  t.deepEqual(ours.arraySync(), [[[1, 0], [1, 0], [0, 10]], [[0, 1000], [100, 0], [0, 0]]]);
  t.deepEqual(ours.arraySync(), theirs.arraySync());
  tf.dispose([x, weights, ours, theirs]);
});
