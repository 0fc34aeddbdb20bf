import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { SeededRandom } from '../../core/random.ts';
import { infoNceLoss, createLogitScale } from '../../models/objectives/info-nce.ts';
import { softScoreBceLoss } from '../../models/objectives/soft-score-bce.ts';
import { multipleChoiceLoss } from '../../models/objectives/multiple-choice-ce.ts';
import { sceneGraphObjective, type SceneGraph } from '../../models/objectives/scene-graph.ts';
import { ADVERSARIAL_DEFAULTS, adversarialGradients } from '../../models/objectives/adversarial.ts';
import { mmdLoss } from '../../models/objectives/mmd.ts';
import { dannLoss, DANN_DEFAULTS } from '../../models/objectives/dann.ts';
import { SceneGraphHead } from '../../models/heads/scene-graph-head.ts';
import { DomainDiscriminator } from '../../models/heads/domain-discriminator.ts';

/** "Does it learn": a few Adam steps on a toy problem must lower each objective. */

test.before(async () => {
  await selectBackend('wasm');
});

function randomTensor(rng: SeededRandom, shape: number[], scale = 1): tf.Tensor {
  return tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale), shape);
}

/** Runs `steps` Adam steps on `loss` over `variables`; returns the first and last loss. */
function train(loss: () => tf.Scalar, variables: tf.Variable[], steps = 15, learningRate = 0.05): [number, number] {
  // Typed as the base class: AdamOptimizer declares applyGradients narrower than Optimizer does.
  const optimizer: tf.Optimizer = tf.train.adam(learningRate);
  const values: number[] = [];
  for (let i = 0; i < steps; i++) {
    const { value, grads } = tf.variableGrads(loss, variables);
    values.push(value.dataSync()[0]);
    optimizer.applyGradients(grads);
    tf.dispose([value, grads]);
  }
  const final = tf.tidy(() => loss().dataSync()[0]);
  optimizer.dispose();
  return [values[0], final];
}

test('InfoNCE learns to align random pairs', (t) => {
  const rng = new SeededRandom(1);
  const images = randomTensor(rng, [8, 6]) as tf.Tensor2D;
  const texts = randomTensor(rng, [8, 6]) as tf.Tensor2D;
  const projectImages = tf.variable(randomTensor(rng, [6, 4], 0.3));
  const projectTexts = tf.variable(randomTensor(rng, [6, 4], 0.3));
  const logScale = createLogitScale();
  const [first, last] = train(() => infoNceLoss(images.matMul(projectImages) as tf.Tensor2D, texts.matMul(projectTexts) as tf.Tensor2D, logScale), [projectImages, projectTexts, logScale]);
  t.true(last < first * 0.8, `${first} → ${last}`);
  tf.dispose([images, texts, projectImages, projectTexts, logScale]);
});

test('soft-score BCE and multiple-choice CE train a linear head', (t) => {
  const rng = new SeededRandom(2);
  const features = randomTensor(rng, [6, 5]) as tf.Tensor2D;
  const targets = tf.tensor2d([[1, 0, 0.3], [0, 0.6, 0], [0.9, 0, 0], [0, 0, 1], [0.3, 0.3, 0], [0, 1, 0]]);
  const w = tf.variable(randomTensor(rng, [5, 3], 0.1));
  const [bceFirst, bceLast] = train(() => softScoreBceLoss(features.matMul(w) as tf.Tensor2D, targets), [w]);
  t.true(bceLast < bceFirst * 0.9, `${bceFirst} → ${bceLast}`);
  const v = tf.variable(randomTensor(rng, [5, 4], 0.1));
  const [ceFirst, ceLast] = train(() => multipleChoiceLoss(features.matMul(v) as tf.Tensor2D, [0, 1, 2, 3, 0, 1]), [v]);
  t.true(ceLast < ceFirst * 0.8, `${ceFirst} → ${ceLast}`);
  tf.dispose([features, targets, w, v]);
});

test('the scene-graph loss trains the head and the tokens under it', (t) => {
  const rng = new SeededRandom(3);
  const patches = randomTensor(rng, [2, 5, 6]) as tf.Tensor3D;
  const encoder = tf.variable(randomTensor(rng, [6, 6], 0.3));
  const head = new SceneGraphHead({ inputDim: 6, objectClasses: 3, attributes: 2, predicates: 2 }, rng.fork('head'));
  const graphs: SceneGraph[] = [
    {
      objects: [
        { box: [0, 0, 0.5, 0.5], classIndex: 0, attributes: [1] },
        { box: [0.5, 0.5, 1, 1], classIndex: 1, attributes: [] },
      ],
      relations: [{ subject: 0, object: 1, predicate: 1 }],
    },
    { objects: [{ box: [0, 0, 1, 1], classIndex: 2, attributes: [0, 1] }, { box: [0.5, 0, 1, 0.5], classIndex: 0 }], relations: [] },
  ];
  const sizes = { objectClasses: 3, attributes: 2, predicates: 2 };
  const tokens = () => patches.reshape([10, 6]).matMul(encoder).reshape([2, 5, 6]) as tf.Tensor3D;
  const [first, last] = train(() => sceneGraphObjective(tokens(), { rows: 2, cols: 2, offset: 1 }, graphs, head, sizes).total, [encoder, ...head.trainableVariables()]);
  t.true(last < first * 0.8, `${first} → ${last}`);
  tf.dispose([patches, encoder]);
  head.dispose();
});

test('adversarial training lowers the clean task loss with one optimiser step per batch', (t) => {
  const rng = new SeededRandom(4);
  const text = randomTensor(rng, [6, 2, 3]);
  const w = tf.variable(randomTensor(rng, [6, 3], 0.1));
  const labels = [0, 1, 2, 0, 1, 2];
  const forward = (delta: tf.Tensor) => {
    const logits = text.add(delta).reshape([6, 6]).matMul(w) as tf.Tensor2D;
    return { loss: multipleChoiceLoss(logits, labels), logits };
  };
  const cleanLoss = () => tf.tidy(() => forward(tf.zeros([6, 2, 3])).loss.dataSync()[0]);
  const optimizer: tf.Optimizer = tf.train.adam(0.05);
  const before = cleanLoss();
  for (let step = 0; step < 15; step++) {
    const result = adversarialGradients((deltas) => forward(deltas.text), {
      textShape: text.shape,
      imageShape: [6, 1, 1],
      variables: [w],
      settings: { ...ADVERSARIAL_DEFAULTS, eta: 0.1 },
    });
    optimizer.applyGradients(result.grads);
    tf.dispose(result.grads);
  }
  const after = cleanLoss();
  t.true(after < before * 0.8, `${before} → ${after}`);
  optimizer.dispose();
  tf.dispose([text, w]);
});

test('MMD pulls shifted source features onto the target', (t) => {
  const rng = new SeededRandom(5);
  const target = randomTensor(rng, [8, 3]) as tf.Tensor2D;
  const source = randomTensor(rng, [8, 3]).add(2) as tf.Tensor2D;
  const shift = tf.variable(tf.zeros([1, 3]));
  const [first, last] = train(() => mmdLoss(source.add(shift) as tf.Tensor2D, target), [shift], 20, 0.2);
  t.true(last < first * 0.5, `${first} → ${last}`);
  tf.dispose([target, source, shift]);
});

test('the DANN discriminator learns to tell the domains apart', (t) => {
  const rng = new SeededRandom(6);
  const source = randomTensor(rng, [8, 4]).add(1) as tf.Tensor2D;
  const target = randomTensor(rng, [8, 4]).sub(1) as tf.Tensor2D;
  const discriminator = new DomainDiscriminator({ inputDim: 4, hiddenDim: 8 }, rng.fork('d'));
  const [first, last] = train(() => dannLoss(source, target, discriminator, 5, 10, DANN_DEFAULTS).loss, discriminator.trainableVariables());
  t.true(last < first * 0.8, `${first} → ${last}`);
  tf.dispose([source, target]);
  discriminator.dispose();
});
