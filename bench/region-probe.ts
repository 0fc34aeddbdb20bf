/**
 * What an encoder's patch grid says about each object, layer by layer: linear probes (softmax
 * regression) of SynthScenes objects' shape, colour, size and position (which third of the
 * picture, each axis: gate B of issue 28) from the encoder's tokens pooled over
 * the object's box (the pooling the `sg` objective and VCR's region tokens use), and from what a
 * `--regions` run's fusion gets per object (its crop's features and its box), trained on the
 * train split of each domain and scored on its validation split. The floor printed beside each
 * probe is the majority class of the training objects.
 *
 *   npx tsx bench/region-probe.ts --data DIR [--model MODEL_DIR] [--images N]
 *
 * A fusion can only answer from what its inputs carry: a question about shapes ("Is there a red
 * circle?", "What is to the left of the star?") needs every object's shape readable from its
 * region, so this separates "the encoder does not see it" from "the fusion does not learn it".
 * `--model` takes any tfjs CLIP folder, e.g. the `encoder/` of a run with
 * `encoder.train_blocks`, to see what fine-tuning taught the grid.
 */
import { parseBenchArguments } from './command-line.ts';
import * as tf from '@tensorflow/tfjs';
import { TfjsClipEncoder } from '../models/encoders/clip-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { preprocessedBatches } from '../models/image-pipeline.ts';
import { poolRegionList } from '../models/ops/regions.ts';
import { extractRegionFeatures, regionKey } from '../models/features.ts';
import { boxGeometry, boxSineFeatures } from '../models/heads/fusion.ts';
import type { SceneGraphObject } from '../models/objectives/scene-graph.ts';
import { loadGqaSplit, type GqaSceneGraph } from '../tasks/gqa/index.ts';
import { readSynthManifest, SYNTH_COLORS, SYNTH_SIZES } from '../tasks/synth/index.ts';
import { synthLoadOptions } from '../tasks/synth/run-splits.ts';
import type { SynthDomain } from '../tasks/synth/layout.ts';
import { InputError } from '../core/errors.ts';
import { gqaGraphVocabulary, gqaSceneGraph, type SceneGraphVocabulary } from '../harness/adapters/scene-graphs.ts';

const { values, refuse } = parseBenchArguments('npx tsx bench/region-probe.ts --data DIR [--model MODEL_DIR] [--images N]', { data: { type: 'string' }, model: { type: 'string' }, images: { type: 'string', default: '700' } });
const maxImages = Number(values.images);
if (!Number.isInteger(maxImages) || maxImages < 1) refuse(`--images expects a positive integer, got ${values.images}`);
const root = values.data ?? refuse('--data is required');
const modelDir = values.model ?? bundledModelDir();

/** Bad files (no SynthScenes folder, no tfjs model, a malformed scene graph) get their InputError's one line; anything else is a bug and keeps its stack. */
async function orRefuse<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof InputError) refuse(error.message);
    throw error;
  }
}

// Read before the encoder loads: the wasm backend turns a later uncaught error into a dump of its own source.
const manifest = await orRefuse(readSynthManifest(root));
const encoder = await orRefuse(TfjsClipEncoder.load(modelDir));
const { vision } = encoder.config;
const side = vision.image_size / vision.patch_size;
const grid = { rows: side, cols: side, offset: 1 };
const layerCount = vision.num_hidden_layers;

const PROPERTIES = ['shape', 'color', 'size', 'column', 'row'] as const;
type Property = (typeof PROPERTIES)[number];

/** An object's label for a property, as an index of the scene-graph vocabulary: its class (shape), or the attribute it carries from SynthScenes' colours or sizes. */
function labelOf(property: Property, object: SceneGraphObject, vocabulary: SceneGraphVocabulary): number | undefined {
  if (property === 'shape') return object.classIndex;
  // Position: which third of the picture holds the box's centre, on each axis.
  if (property === 'column') return Math.min(2, Math.floor(((object.box[0] + object.box[2]) / 2) * 3));
  if (property === 'row') return Math.min(2, Math.floor(((object.box[1] + object.box[3]) / 2) * 3));
  const names: readonly string[] = property === 'color' ? SYNTH_COLORS : SYNTH_SIZES;
  return object.attributes?.find((attribute) => names.includes(vocabulary.attributes[attribute]));
}

interface RegionSet {
  /** Per layer (0 = the input of block 0): [objects, hidden] box-pooled tokens; last, the object tokens of `--regions` runs: crop features ⊕ box geometry (raw and sine). */
  layers: tf.Tensor2D[];
  labels: Record<Property, (number | undefined)[]>;
  vocabulary: SceneGraphVocabulary;
}

/**
 * Every object of the split's first `maxImages` images as the `sg` objective sees it (gqaSceneGraph:
 * boxes in the encoder's crop, indices of the vocabulary, which the training split's graphs give
 * and the validation split reuses): its box-pooled tokens after each block, and its labels.
 */
async function regionsOf(domain: SynthDomain, split: 'train' | 'val', trainVocabulary?: SceneGraphVocabulary): Promise<RegionSet> {
  const loaded = await loadGqaSplit(synthLoadOptions('gqa', root, domain, split));
  const graphs = new Map<string, GqaSceneGraph>();
  for (const example of loaded.examples) if (example.sceneGraph && !graphs.has(example.imagePath)) graphs.set(example.imagePath, example.sceneGraph);
  const paths = [...graphs.keys()].sort().slice(0, maxImages);
  if (paths.length === 0) throw new InputError(`no images with scene graphs in the ${domain} ${split} split`);
  const vocabulary = trainVocabulary ?? gqaGraphVocabulary(graphs.values());
  const parts: tf.Tensor2D[][] = Array.from({ length: layerCount + 1 }, () => []);
  const labels: RegionSet['labels'] = { shape: [], color: [], size: [], column: [], row: [] };
  for await (const batch of preprocessedBatches(paths, encoder.preprocessing, { batchSize: 32 })) {
    const objects = batch.files.map((file) => gqaSceneGraph(graphs.get(file)!, vocabulary, encoder.preprocessing).objects);
    for (const object of objects.flat()) for (const property of PROPERTIES) labels[property].push(labelOf(property, object, vocabulary));
    const boxes = objects.map((kept) => kept.map((object) => object.box));
    const pooled = tf.tidy(() => {
      let h = encoder.model.imageBlockInput(encoder.model.imagePatchEmbeddings(tf.tensor4d(batch.pixels, [...batch.shape])));
      const perLayer = [poolRegionList(h, grid, boxes)];
      for (let layer = 0; layer < layerCount; layer++) {
        h = encoder.model.imageBlocks(h, layer, layer + 1);
        perLayer.push(poolRegionList(h, grid, boxes));
      }
      return perLayer;
    });
    pooled.forEach((tokens, layer) => parts[layer].push(tokens));
  }
  const layers = parts.map((layerParts) => {
    const joined = tf.concat(layerParts) as tf.Tensor2D;
    tf.dispose(layerParts);
    return joined;
  });
  // What a `--regions` run's fusion gets per object: its crop's features and its box (geometry and sine features).
  const pixelBoxes = new Map(paths.map((path) => [path, Object.values(graphs.get(path)!.objects).map((o) => [o.x, o.y, o.x + o.w, o.y + o.h] as const)]));
  const crops = await extractRegionFeatures(encoder, pixelBoxes);
  const keys = paths.flatMap((path) => pixelBoxes.get(path)!.map((box) => regionKey(path, box)));
  if (keys.length !== labels.shape.length) throw new Error(`region probe: ${keys.length} crops for ${labels.shape.length} objects`);
  const cropBoxes = paths.map((path) => gqaSceneGraph(graphs.get(path)!, vocabulary, encoder.preprocessing).objects.map((o) => o.box));
  layers.push(
    tf.tidy(() => {
      const flat = boxGeometry(cropBoxes.flat().map((box) => [box]), 1);
      const rows = tf.concat([flat, boxSineFeatures(flat)], 2).reshape([-1, 39]);
      return tf.concat([tf.tensor2d(crops.table.gatherTokens(keys), [keys.length, crops.table.tokenDim]), rows], 1) as tf.Tensor2D;
    }),
  );
  return { layers, labels, vocabulary };
}

/** Rows with a label, and those labels. */
function labelled(labels: readonly (number | undefined)[]): { rows: number[]; values: number[] } {
  const rows = labels.flatMap((label, row) => (label === undefined ? [] : [row]));
  return { rows, values: rows.map((row) => labels[row]!) };
}

/** The floor: accuracy on the evaluation objects of always answering the training objects' most frequent label. */
function majorityFloor(trainLabels: readonly (number | undefined)[], evaluationLabels: readonly (number | undefined)[]): number {
  const counts = new Map<number, number>();
  for (const label of labelled(trainLabels).values) counts.set(label, (counts.get(label) ?? 0) + 1);
  const majority = [...counts].sort((a, b) => b[1] - a[1])[0][0];
  const truth = labelled(evaluationLabels).values;
  return (100 * truth.filter((label) => label === majority).length) / truth.length;
}

/** Softmax regression on standardised features (statistics of the training rows), Adam, full batch; accuracy on the evaluation rows. */
function probeAccuracy(train: tf.Tensor2D, trainLabels: readonly (number | undefined)[], evaluation: tf.Tensor2D, evaluationLabels: readonly (number | undefined)[]): number {
  const trainSet = labelled(trainLabels);
  const evaluationSet = labelled(evaluationLabels);
  // One column per label the training objects carry (the size probe chooses between two sizes, not among every attribute).
  const column = new Map([...new Set(trainSet.values)].sort((a, b) => a - b).map((label, i) => [label, i]));
  const classCount = column.size;
  return tf.tidy(() => {
    const x = tf.gather(train, trainSet.rows);
    const { mean, variance } = tf.moments(x, 0);
    const scale = variance.add(1e-6).sqrt();
    const xs = x.sub(mean).div(scale);
    const xe = tf.gather(evaluation, evaluationSet.rows).sub(mean).div(scale);
    const y = tf.oneHot(trainSet.values.map((label) => column.get(label)!), classCount);
    const weights = tf.variable(tf.zeros([train.shape[1], classCount]));
    const bias = tf.variable(tf.zeros([classCount]));
    const optimiser = tf.train.adam(0.01);
    for (let step = 0; step < 300; step++) {
      optimiser.minimize(() => tf.losses.softmaxCrossEntropy(y, xs.matMul(weights).add(bias)).add(weights.square().sum().mul(1e-4)) as tf.Scalar);
    }
    const predicted = xe.matMul(weights).add(bias).argMax(1).dataSync();
    const correct = evaluationSet.values.filter((label, i) => predicted[i] === column.get(label)).length;
    optimiser.dispose();
    weights.dispose();
    bias.dispose();
    return (100 * correct) / evaluationSet.values.length;
  });
}

console.log(`model: ${modelDir} (fingerprint ${encoder.fingerprint.slice(0, 12)}); data: ${root}, up to ${maxImages} images per split`);
console.log('validation accuracy of a linear probe on box-pooled tokens (floor: majority class of the training objects)');
console.log(`| domain | property | floor | ${Array.from({ length: layerCount + 1 }, (_, l) => (l === 0 ? 'block input' : `block ${l}`)).join(' | ')} | crop + box (--regions) |`);
console.log(`|---|---|---|${'---|'.repeat(layerCount + 2)}`);
for (const domain of manifest.options.domains as SynthDomain[]) {
  const train = await orRefuse(regionsOf(domain, 'train'));
  const evaluation = await orRefuse(regionsOf(domain, 'val', train.vocabulary));
  for (const property of PROPERTIES) {
    const accuracies = train.layers.map((features, layer) => probeAccuracy(features, train.labels[property], evaluation.layers[layer], evaluation.labels[property]));
    console.log(`| ${domain} | ${property} | ${majorityFloor(train.labels[property], evaluation.labels[property]).toFixed(1)} | ${accuracies.map((a) => a.toFixed(1)).join(' | ')} |`);
  }
  tf.dispose([...train.layers, ...evaluation.layers]);
}
