import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import {
  buildSceneGraphBatch,
  parseSceneGraphSettings,
  poolRegionList,
  poolRegions,
  regionPatchIndices,
  SCENE_GRAPH_DEFAULTS,
  sceneGraphLoss,
  type SceneGraph,
} from '../../models/objectives/scene-graph.ts';

test.before(async () => {
  await selectBackend('wasm');
});

const close = (t: { true: (v: boolean, m?: string) => void }, actual: number, expected: number, tolerance = 1e-5) =>
  t.true(Math.abs(actual - expected) <= tolerance, `${actual} ≠ ${expected}`);

test('region pooling picks the patches whose centres fall inside the box', (t) => {
  const grid2 = { rows: 2, cols: 2, offset: 1 };
  t.deepEqual(regionPatchIndices(grid2, [0, 0, 0.5, 0.5]), [0]);
  t.deepEqual(regionPatchIndices(grid2, [0, 0, 1, 1]), [0, 1, 2, 3]);
  t.deepEqual(regionPatchIndices(grid2, [0.5, 0, 1, 1]), [1, 3]);
  const grid3 = { rows: 3, cols: 3, offset: 0 };
  t.deepEqual(regionPatchIndices(grid3, [0.3, 0.3, 1, 1]), [4, 5, 7, 8]);
  // Overhanging boxes are clipped to the image.
  t.deepEqual(regionPatchIndices(grid3, [-0.2, 0.6, 0.4, 1.3]), [6]);
});

test('a box holding no patch centre falls back to the patch under its centre', (t) => {
  const grid = { rows: 2, cols: 2, offset: 0 };
  t.deepEqual(regionPatchIndices(grid, [0.6, 0.1, 0.7, 0.2]), [1]);
  t.deepEqual(regionPatchIndices(grid, [0.1, 0.9, 0.2, 0.95]), [2]);
  t.throws(() => regionPatchIndices(grid, [0.5, 0, 0.4, 1]), { message: /x1 ≤ x2/ });
});

test('poolRegions averages the right tokens, skipping the class token, and pads', (t) => {
  // Batch of 2, class token + 2×2 patches, dim 2. Patch p of image b holds [10b + p, −p].
  const values: number[][][] = [0, 1].map((b) => [[99, 99], ...[0, 1, 2, 3].map((p) => [10 * b + p, -p])]);
  const grid = { rows: 2, cols: 2, offset: 1 };
  const result = tf.tidy(() => {
    const { regions, mask } = poolRegions(tf.tensor3d(values), grid, [[[0, 0, 1, 0.5], [0, 0, 1, 1]], [[0.5, 0.5, 1, 1]]]);
    return { regions: regions.arraySync(), mask: mask.arraySync() };
  });
  t.deepEqual(result.regions, [
    [[0.5, -0.5], [1.5, -1.5]],
    [[13, -3], [0, 0]],
  ]);
  t.deepEqual(result.mask, [[1, 1], [1, 0]]);
  const list = tf.tidy(() => poolRegionList(tf.tensor3d(values), grid, [[[0, 0, 1, 0.5], [0, 0, 1, 1]], [[0.5, 0.5, 1, 1]]]).arraySync());
  t.deepEqual(list, [[0.5, -0.5], [1.5, -1.5], [13, -3]]);
});

test('region pooling passes gradients back to the tokens', (t) => {
  const grad = tf.tidy(() =>
    tf.grad((tokens: tf.Tensor) => poolRegionList(tokens as tf.Tensor3D, { rows: 1, cols: 2, offset: 0 }, [[[0, 0, 1, 1]]]).sum())(tf.ones([1, 2, 3])).arraySync(),
  );
  t.deepEqual(grad, [[[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]]);
});

const graphs: SceneGraph[] = [
  {
    objects: [
      { box: [0, 0, 0.5, 0.5], classIndex: 1, attributes: [0] },
      { box: [0.5, 0.5, 1, 1], classIndex: 0, attributes: [] },
      { box: [0, 0.5, 0.5, 1], classIndex: 2 },
    ],
    relations: [
      { subject: 0, object: 1, predicate: 1 },
      { subject: 0, object: 1, predicate: 0 },
      { subject: 2, object: 0, predicate: 0 },
    ],
  },
  { objects: [{ box: [0, 0, 1, 1], classIndex: 2 }] },
];
const sizes = { objectClasses: 3, attributes: 2, predicates: 2 };

test('buildSceneGraphBatch lists every ordered pair, "none" first, shared mass for several predicates', (t) => {
  const batch = buildSceneGraphBatch(graphs, sizes);
  t.deepEqual(batch.objectClasses, [1, 0, 2, 2]);
  t.deepEqual(batch.attributeObjects, [0, 1]);
  t.deepEqual(Array.from(batch.attributeTargets), [1, 0, 0, 0]);
  t.deepEqual(batch.pairs, [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]);
  t.deepEqual(Array.from(batch.relationTargets), [0, 0.5, 0.5, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0]);
  t.deepEqual(Array.from(buildSceneGraphBatch(graphs, sizes, { ...SCENE_GRAPH_DEFAULTS, noneRelationWeight: 0.25 }).relationWeights), [1, 0.25, 0.25, 0.25, 1, 0.25]);
  t.throws(() => buildSceneGraphBatch([{ objects: [{ box: [0, 0, 1, 1], classIndex: 3 }] }], sizes), { message: /class is 3/ });
  t.throws(() => buildSceneGraphBatch([{ objects: graphs[0].objects, relations: [{ subject: 1, object: 1, predicate: 0 }] }], sizes), { message: /itself/ });
});

test('sceneGraphLoss matches hand computation', (t) => {
  const settings = { lambda: 0.5, objectWeight: 1, attributeWeight: 2, relationWeight: 3, noneRelationWeight: 0.5 };
  const batch = buildSceneGraphBatch(graphs, sizes, settings);
  const objectLogits = [[0, 1, 2], [1, 0, 0], [0.5, 0.5, -1], [2, 0, 1]];
  const attributeLogits = [[1, -1], [0, 2], [3, 3], [3, 3]];
  const relationLogits = [[0, 1, 2], [1, 0, 0], [0, 0, 0], [2, 1, 0], [0, 3, 1], [1, 1, 0]];
  const logSoftmax = (row: number[], k: number) => row[k] - Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
  const object = -[1, 0, 2, 2].reduce((s, c, i) => s + logSoftmax(objectLogits[i], c), 0) / 4;
  const bce = (x: number, y: number) => Math.log(1 + Math.exp(x)) - x * y;
  const attribute = (bce(1, 1) + bce(-1, 0) + bce(0, 0) + bce(2, 0)) / 2;
  const targets = [[0, 0.5, 0.5], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]];
  const weights = [1, 0.5, 0.5, 0.5, 1, 0.5];
  const perPair = targets.map((row, p) => -row.reduce((s, q, k) => s + q * logSoftmax(relationLogits[p], k), 0));
  const relation = perPair.reduce((s, l, p) => s + l * weights[p], 0) / weights.reduce((a, b) => a + b, 0);
  const total = 0.5 * (object + 2 * attribute + 3 * relation);
  const losses = tf.tidy(() => {
    const out = sceneGraphLoss(
      { objectLogits: tf.tensor2d(objectLogits), attributeLogits: tf.tensor2d(attributeLogits), relationLogits: tf.tensor2d(relationLogits) },
      batch,
      settings,
    );
    return [out.total, out.object, out.attribute, out.relation].map((x) => x.dataSync()[0]);
  });
  close(t, losses[1], object);
  close(t, losses[2], attribute);
  close(t, losses[3], relation);
  close(t, losses[0], total);
});

test('graphs without attributes or relations give the object term alone', (t) => {
  const batch = buildSceneGraphBatch([{ objects: [{ box: [0, 0, 1, 1], classIndex: 0 }] }], sizes);
  const losses = tf.tidy(() => {
    const out = sceneGraphLoss({ objectLogits: tf.tensor2d([[0, 0, 0]]), attributeLogits: tf.tensor2d([[5, 5]]), relationLogits: null }, batch);
    return [out.total, out.attribute, out.relation].map((x) => x.dataSync()[0]);
  });
  close(t, losses[0], Math.log(3));
  t.is(losses[1], 0);
  t.is(losses[2], 0);
});

test('scene-graph settings parse from --set strings with clear errors', (t) => {
  t.is(parseSceneGraphSettings({ lambda: '0.25' }).lambda, 0.25);
  t.throws(() => parseSceneGraphSettings({ lambda: '-1' }), { message: /--set sg\.lambda.*expected a number ≥ 0, got "-1"/ });
  t.throws(() => parseSceneGraphSettings({ lambda: '' }), { message: /sg\.lambda/ });
  t.throws(() => parseSceneGraphSettings({ lamda: '1' }), { message: /unknown setting "lamda".*known keys: lambda/ });
});
