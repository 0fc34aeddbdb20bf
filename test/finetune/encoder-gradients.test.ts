import test from 'ava';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { TfjsClipEncoder } from '../../models/encoders/clip-encoder.ts';
import { EncoderTuning, type EncoderTuningSettings } from '../../models/fine-tuning/encoder-tuning.ts';
import { FusionTraining, type FusionTaskHead } from '../../models/fine-tuning/fusion-training.ts';
import { FusionTransformer } from '../../models/heads/fusion.ts';
import { parseMethodSpec, resolveObjectivesForRun } from '../../models/objectives/index.ts';
import { preprocessedBatches } from '../../models/image-pipeline.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { SeededRandom } from '../../core/random.ts';
import type { SceneGraph } from '../../models/objectives/scene-graph.ts';

/**
 * The encoder inside the training problem, on the tiny fixture CLIP (2 blocks per tower):
 * the cached boundary gives what the uncached forward gives (value and gradient), and every
 * objective's gradient reaches the encoder's trainable blocks.
 */
const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let images: string[] = [];
let targets: string[] = [];
const texts = ['a red circle', 'two blue squares on the left', 'the green triangle'];

test.before(async () => {
  await selectBackend('wasm');
  const data = join(await mkdtemp(join(tmpdir(), 'vlbench-encoder-grad-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 8, seed: 5, size: 32 });
  const list = async (dir: string) => (await readdir(join(data, 'images', dir))).filter((f) => f.endsWith('.jpg')).slice(0, 3).map((f) => join(data, 'images', dir, f));
  images = await list('train_source');
  targets = await list('train_target');
});

async function tuning(settings: Partial<EncoderTuningSettings>, imagePool = 1) {
  const encoder = await TfjsClipEncoder.load(fixtureModel, { backend: 'wasm' });
  const tuned = await EncoderTuning.prepare(encoder, { trainBlocks: 1, towers: 'both', lrScale: 1, ...settings }, { imageKeys: [...images, ...targets], texts, imagePool });
  return { encoder, tuned };
}

const maxAbsDifference = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

test('the boundary cache gives the loss and gradient of the uncached forward from pixels', async (t) => {
  // Rows share images (as VCR's four choices do): the blocks run once per unique image.
  const keys = [images[0], images[1], images[0], images[2]];
  const boundary = await tuning({ trainBlocks: 1 });
  const uncached = await tuning({ trainBlocks: 'all' });
  const weight = (e: typeof boundary) => e.encoder.model.parameter('vision_model.encoder.layers.1.mlp.fc1.weight');
  const textWeight = (e: typeof boundary) => e.encoder.model.parameter('text_model.encoder.layers.1.mlp.fc2.weight');
  const lossOf = (e: typeof boundary) => () => {
    const out = e.tuned.images(keys);
    const tokens = e.tuned.texts(texts, 8);
    return out.embeds.square().sum().add(out.gridTokens.mean()).add(tokens.square().mean()) as tf.Scalar;
  };
  const a = tf.variableGrads(lossOf(boundary), [weight(boundary), textWeight(boundary)]);
  const b = tf.variableGrads(lossOf(uncached), [weight(uncached), textWeight(uncached)]);
  const la = a.value.dataSync()[0];
  const lb = b.value.dataSync()[0];
  t.true(Math.abs(la - lb) <= 1e-5 * Math.abs(lb), `${la} vs ${lb}`);
  t.true(maxAbsDifference(a.grads[weight(boundary).name], b.grads[weight(uncached).name]) < 1e-4);
  t.true(maxAbsDifference(a.grads[textWeight(boundary).name], b.grads[textWeight(uncached).name]) < 1e-4);
  // And both equal the encoder's own frozen forward (what `vlbench encode` computes).
  const batch = (await preprocessedBatches(keys, boundary.encoder.preprocessing, { batchSize: 4 }).next()).value!;
  const reference = tf.tidy(() => boundary.encoder.model.imageForward(tf.tensor4d(batch.pixels, [...batch.shape] as [number, number, number, number])).embeds);
  const fromCache = tf.tidy(() => boundary.tuned.images(keys).embeds);
  t.true(maxAbsDifference(reference, fromCache) < 1e-5);
  // The text stage is cut to the texts' longest length; the causal tower gives the same tokens as the full forward.
  const full = await boundary.encoder.encodeTexts(texts, { padding: 'longest' });
  const length = full.tokens.shape[1];
  const fromStage = tf.tidy(() => boundary.tuned.texts(texts, length));
  const mask = tf.tensor3d(Float32Array.from(full.attentionMask), [texts.length, length, 1]);
  t.true(maxAbsDifference(fromStage.mul(mask), tf.tensor3d(full.tokens.data, [texts.length, length, full.tokens.shape[2]]).mul(mask)) < 1e-5);
  tf.dispose([reference, fromCache, fromStage, mask, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  await boundary.encoder.dispose();
  await uncached.encoder.dispose();
});

/** A task head whose loss is 0: any gradient the encoder gets comes from the objectives. */
function silentHead(hidden: number): FusionTaskHead & { weight: tf.Variable } {
  const weight = tf.variable(tf.randomNormal([hidden, 2], 0, 0.1, 'float32', 1));
  return {
    weight,
    logits: (pooled) => tf.matMul(pooled, weight),
    loss: (logits) => logits.sum().mul(0) as tf.Scalar,
    namedVariables: () => new Map([['head/w', weight]]),
  };
}

/** A task head with a real loss (cross-entropy towards class 0), for adv's KL and task terms. */
function taskHead(hidden: number): FusionTaskHead {
  const weight = tf.variable(tf.randomNormal([hidden, 2], 0, 0.5, 'float32', 2));
  return {
    logits: (pooled) => tf.matMul(pooled, weight),
    loss: (logits) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.zeros([logits.shape[0]], 'int32'), 2), logits) as tf.Scalar,
    namedVariables: () => new Map([['head/w', weight]]),
  };
}

const graphs: SceneGraph[] = [
  { objects: [{ box: [0, 0, 0.5, 0.5], classIndex: 0 }, { box: [0.5, 0.5, 1, 1], classIndex: 1 }] },
  { objects: [{ box: [0.25, 0, 1, 0.75], classIndex: 1 }] },
  { objects: [{ box: [0, 0.5, 0.5, 1], classIndex: 0 }] },
];

async function encoderGradients(spec: string, sets: Record<string, string>, head: (hidden: number) => FusionTaskHead) {
  const { encoder, tuned } = await tuning({ trainBlocks: 1 }, 2);
  // adv.at auto resolves to the boundary, as the run resolves it at encoder.train_blocks=1.
  const method = resolveObjectivesForRun(parseMethodSpec(spec, sets), { encoderTrains: true, trainBlocks: 1 });
  const random = new SeededRandom(1);
  const tables = tuned.fusionTables({}, [...images, ...targets]);
  const fusion = new FusionTransformer({ imageDim: tables.images.tokenDim, textDim: tables.texts.tokenDim, hidden: 16, layers: 1, heads: 2, inputNorm: true }, random.fork('fusion'));
  const training = new FusionTraining({ method, images: tables.images, texts: tables.texts, fusion, sceneGraphSizes: { objectClasses: 2, attributes: 1, predicates: 1 }, targetImageKeys: targets, random, encoder: tuned });
  const taskHead = head(16);
  const variables = new Map([...training.namedVariables(), ...taskHead.namedVariables(), ...tuned.namedVariables()]);
  // Halfway through training, where DANN's reversal weight λ_p is well above 0.
  const result = training.step({ imageKeys: images, textKeys: texts, graphs }, taskHead, variables, { step: 5, totalSteps: 10, random: new SeededRandom(1).fork('step') });
  const norms = new Map([...result.gradients].filter(([name]) => name.startsWith('encoder/')).map(([name, g]) => [name, tf.tidy(() => tf.norm(g).dataSync()[0])]));
  tf.dispose([...result.gradients.values()]);
  await encoder.dispose();
  return { norms, parts: result.parts ?? {} };
}

for (const [spec, sets, tower] of [
  ['ft+sg', {}, 'vision'],
  ['ft+mmd', {}, 'vision'],
  ['ft+dann', {}, 'vision'],
] as const) {
  test(`${spec}: the objective alone sends gradient into the encoder's trainable ${tower} block`, async (t) => {
    const { norms } = await encoderGradients(spec, sets, silentHead);
    const block = [...norms].filter(([name]) => name.startsWith(`encoder/${tower}_model.encoder.layers.1.`));
    t.true(block.length > 0);
    t.true(block.some(([, norm]) => norm > 1e-7), JSON.stringify(block));
  });
}

test('ft (a task loss of 0) sends no gradient into the encoder: the objective tests above can fail', async (t) => {
  const { norms } = await encoderGradients('ft', {}, silentHead);
  t.true([...norms.values()].every((norm) => norm === 0), JSON.stringify([...norms]));
});

test('ft+adv at the boundary: the perturbation changes the encoder gradient, from both towers', async (t) => {
  const clean = await encoderGradients('ft', {}, taskHead);
  const adv = await encoderGradients('ft+adv', { 'adv.steps': '2', 'adv.eta': '0.5', 'adv.modality': 'both', 'adv.alpha': '1' }, taskHead);
  t.true(adv.parts.adv_kl > 0);
  for (const name of ['encoder/vision_model.encoder.layers.1.mlp.fc1.weight', 'encoder/text_model.encoder.layers.1.mlp.fc1.weight']) {
    t.true(clean.norms.get(name)! > 0, name);
    t.true(Math.abs(adv.norms.get(name)! - clean.norms.get(name)!) > 1e-6 * clean.norms.get(name)!, name);
  }
});
