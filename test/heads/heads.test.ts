import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { SeededRandom } from '../../core/random.ts';
import { boxGeometry, FusionTransformer } from '../../models/heads/fusion.ts';
import { VqaClassifier } from '../../models/heads/vqa-classifier.ts';
import { softScoreBceLoss } from '../../models/objectives/soft-score-bce.ts';
import { ChoiceScorer, scoreChoices } from '../../models/heads/choice-scorer.ts';
import { SceneGraphHead } from '../../models/heads/scene-graph-head.ts';
import { DomainDiscriminator } from '../../models/heads/domain-discriminator.ts';

test.before(async () => {
  await selectBackend('wasm');
});

const config = { imageDim: 6, textDim: 5, hidden: 8, layers: 2, heads: 2 };

function fusionInputs() {
  const rng = new SeededRandom(99);
  const values = (shape: number[]) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b) }, () => rng.normal()), shape);
  return {
    imageTokens: values([2, 5, 6]) as tf.Tensor3D,
    textTokens: values([2, 4, 5]) as tf.Tensor3D,
    textMask: tf.tensor2d([[1, 1, 1, 0], [1, 1, 0, 0]]),
  };
}

test('fusion: pooled and sequence shapes, deterministic for a seed', (t) => {
  const a = new FusionTransformer(config, new SeededRandom(7));
  const b = new FusionTransformer(config, new SeededRandom(7));
  const c = new FusionTransformer(config, new SeededRandom(8));
  const inputs = fusionInputs();
  const [pa, pb, pc, shapes] = tf.tidy(() => {
    const out = a.apply(inputs);
    return [out.pooled.arraySync(), b.apply(inputs).pooled.arraySync(), c.apply(inputs).pooled.arraySync(), [out.pooled.shape, out.sequence.shape, out.mask.shape]];
  });
  t.deepEqual(shapes, [[2, 8], [2, 9, 8], [2, 9]]);
  t.deepEqual(pa, pb);
  t.notDeepEqual(pa, pc);
  t.true([...a.namedVariables().keys()].includes('fusion/layer1/attention/query/kernel'));
  t.is(a.trainableVariables().length, a.namedVariables().size);
  for (const m of [a, b, c]) m.dispose();
  tf.dispose(inputs);
});

test('fusion: padded text tokens do not change the output', (t) => {
  const fusion = new FusionTransformer(config, new SeededRandom(3));
  const inputs = fusionInputs();
  const [clean, noisy] = tf.tidy(() => {
    // Overwrite only the padded positions (mask 0) with large values.
    const noise = inputs.textMask.expandDims(2).sub(1).mul(-100);
    const altered = { ...inputs, textTokens: inputs.textTokens.add(noise) as tf.Tensor3D };
    return [fusion.apply(inputs).pooled.dataSync(), fusion.apply(altered).pooled.dataSync()];
  });
  clean.forEach((value, i) => t.true(Math.abs(value - noisy[i]) < 1e-5, `${value} vs ${noisy[i]}`));
  fusion.dispose();
  tf.dispose(inputs);
});

test('VQA classifier maps pooled features to answer logits', (t) => {
  const head = new VqaClassifier({ inputDim: 8, answers: 11 }, new SeededRandom(1));
  const shape = tf.tidy(() => head.apply(tf.ones([3, 8])).shape);
  t.deepEqual(shape, [3, 11]);
  t.is(head.trainableVariables().length, 6);
  head.dispose();
});

test('choice scorer: one logit per choice, with region tokens from boxes, and gradients on wasm', (t) => {
  const rng = new SeededRandom(5);
  const fusion = new FusionTransformer(config, rng.fork('fusion'));
  const scorer = new ChoiceScorer({ inputDim: 8 }, rng.fork('scorer'));
  const inputs = fusionInputs();
  const choiceTokens = tf.tidy(() => tf.stack([inputs.textTokens, inputs.textTokens.mul(-1), inputs.textTokens.add(1)], 1)) as tf.Tensor4D;
  const choiceMask = tf.tidy(() => tf.stack([inputs.textMask, inputs.textMask, inputs.textMask], 1)) as tf.Tensor3D;
  const regions = { grid: { rows: 2, cols: 2, offset: 1 }, boxes: [[[0, 0, 0.5, 0.5], [0, 0, 1, 1]], [[0.5, 0.5, 1, 1]]] as const };
  const choiceInputs = { imageTokens: inputs.imageTokens, choiceTokens, choiceMask, regions: { grid: regions.grid, boxes: regions.boxes.map((b) => b.map((box) => [...box] as const)) } };
  const shape = tf.tidy(() => scoreChoices(fusion, scorer, choiceInputs).shape);
  t.deepEqual(shape, [2, 3]);
  const { value, grads } = tf.variableGrads(() => scoreChoices(fusion, scorer, choiceInputs).sum() as tf.Scalar, [...fusion.trainableVariables(), ...scorer.trainableVariables()]);
  t.true(Number.isFinite(value.dataSync()[0]));
  // The region geometry projection is only reached through region tokens: a gradient there proves they are used.
  const geometryKernel = fusion.namedVariables().get('fusion/region_geometry/kernel')!;
  t.true(tf.tidy(() => grads[geometryKernel.name].abs().sum().dataSync()[0]) > 0);
  tf.dispose([value, grads, choiceTokens, choiceMask, inputs]);
  fusion.dispose();
  scorer.dispose();
});

test('box geometry is UNITER’s 7-d layout with zero padding', (t) => {
  const geometry = tf.tidy(() => boxGeometry([[[0, 0.25, 0.5, 0.75]], []], 1).arraySync());
  t.deepEqual(geometry, [[[0, 0.25, 0.5, 0.75, 0.5, 0.5, 0.25]], [[0, 0, 0, 0, 0, 0, 0]]]);
});

test('scene-graph head: object, attribute and relation logits', (t) => {
  const head = new SceneGraphHead({ inputDim: 4, objectClasses: 5, attributes: 3, predicates: 2 }, new SeededRandom(2));
  const out = tf.tidy(() => {
    const p = head.predict(tf.ones([3, 4]), [[0, 1], [2, 0]]);
    return [p.objectLogits.shape, p.attributeLogits.shape, p.relationLogits!.shape];
  });
  t.deepEqual(out, [[3, 5], [3, 3], [2, 3]]);
  const regions = tf.ones([1, 4]) as tf.Tensor2D;
  const alone = head.predict(regions, []);
  t.is(alone.relationLogits, null);
  tf.dispose([regions, alone.objectLogits, alone.attributeLogits]);
  head.dispose();
});

test('domain discriminator: one logit per row, deterministic for a seed', (t) => {
  const a = new DomainDiscriminator({ inputDim: 4, hiddenDim: 16 }, new SeededRandom(11));
  const b = new DomainDiscriminator({ inputDim: 4, hiddenDim: 16 }, new SeededRandom(11));
  const [la, lb] = tf.tidy(() => {
    const x = tf.tensor2d([[1, 2, 3, 4], [-1, 0, 1, 0]]);
    return [a.apply(x).arraySync(), b.apply(x).arraySync()];
  });
  t.is(la.length, 2);
  t.deepEqual(la, lb);
  a.dispose();
  b.dispose();
});

test('fusion + VQA classifier learn an answer that depends on the question: the same image gets different right answers to two questions', (t) => {
  const rng = new SeededRandom(21);
  const fusion = new FusionTransformer(config, rng.fork('fusion'));
  const classifier = new VqaClassifier({ inputDim: 8, answers: 3 }, rng.fork('vqa'));
  const data = new SeededRandom(99);
  const values = (shape: number[]) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b) }, () => data.normal()), shape);
  // Two images × two questions; rows are (image 0, q0), (image 0, q1), (image 1, q0), (image 1, q1).
  // The answer table [[0, 1], [2, 0]] is set by neither the image alone (image 0 → 0 or 1) nor the
  // question alone (q0 → 0 or 2), so only a model that reads both can answer all four.
  const expected = [0, 1, 2, 0];
  const [images, questions] = [values([2, 5, 6]), values([2, 4, 5])];
  const inputs = tf.tidy(() => ({
    imageTokens: tf.gather(images, [0, 0, 1, 1]) as tf.Tensor3D,
    textTokens: tf.gather(questions, [0, 1, 0, 1]) as tf.Tensor3D,
    textMask: tf.tensor2d([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]]),
  }));
  const targets = tf.oneHot(expected, 3).toFloat() as tf.Tensor2D;
  const logits = () => classifier.apply(fusion.apply(inputs).pooled);
  const answers = () => tf.tidy(() => Array.from(logits().argMax(1).dataSync()));
  const loss = () => softScoreBceLoss(logits(), targets);
  const variables = [...fusion.trainableVariables(), ...classifier.trainableVariables()];
  const optimizer = tf.train.adam(0.01);
  // Untrained, it does not already answer all four (else the check below would prove nothing).
  t.notDeepEqual(answers(), expected);
  const first = tf.tidy(() => loss().dataSync()[0]);
  for (let step = 0; step < 60; step++) optimizer.minimize(loss, false, variables);
  const last = tf.tidy(() => loss().dataSync()[0]);
  t.true(last < first * 0.5, `${first} → ${last}`);
  const trained = answers();
  t.deepEqual(trained, expected);
  // Same image tokens, different question: different answers.
  t.not(trained[0], trained[1]);
  t.not(trained[2], trained[3]);
  optimizer.dispose();
  tf.dispose([targets, inputs, images, questions]);
  fusion.dispose();
  classifier.dispose();
});
