/**
 * What an encoder's patch grid says about each object, layer by layer: linear probes (softmax
 * regression) of SynthScenes objects' shape, colour and size from the encoder's tokens pooled over
 * the object's box (the pooling the `sg` objective and VCR's region tokens use), trained on the
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
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { TfjsClipEncoder } from '../models/encoders/clip-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { preprocessedBatches } from '../models/image-pipeline.ts';
import { poolRegionList, type NormalisedBox } from '../models/ops/regions.ts';
import { loadGqaSplit, type GqaSceneGraph } from '../tasks/gqa/index.ts';
import { readSynthManifest, SYNTH_COLORS, SYNTH_SIZES } from '../tasks/synth/index.ts';
import { synthLoadOptions } from '../tasks/synth/run-splits.ts';
import type { SynthDomain } from '../tasks/synth/layout.ts';
import { boxInCrop } from '../harness/adapters/scene-graphs.ts';

const { values } = parseArgs({ options: { data: { type: 'string' }, model: { type: 'string' }, images: { type: 'string', default: '700' } } });
if (!values.data) throw new Error('usage: npx tsx bench/region-probe.ts --data DIR [--model MODEL_DIR] [--images N]');
const maxImages = Number(values.images);
const root = values.data;
const modelDir = values.model ?? bundledModelDir();
const encoder = await TfjsClipEncoder.load(modelDir);
const { vision } = encoder.config;
const side = vision.image_size / vision.patch_size;
const grid = { rows: side, cols: side, offset: 1 };
const layerCount = vision.num_hidden_layers;

/** What each object is, one label per property: its class name, and the attribute of SynthScenes' colour and size vocabularies it carries. */
const PROPERTIES = {
  shape: (attributes: string[], name: string) => name,
  color: (attributes: string[]) => attributes.find((a) => (SYNTH_COLORS as readonly string[]).includes(a)),
  size: (attributes: string[]) => attributes.find((a) => (SYNTH_SIZES as readonly string[]).includes(a)),
} as const;
type Property = keyof typeof PROPERTIES;

interface RegionSet {
  /** Per layer (0 = the input of block 0), [objects, hidden] pooled features. */
  layers: Float32Array[];
  labels: Record<Property, (string | undefined)[]>;
}

/** Every object of the split's first `maxImages` images: its pooled tokens after each block, and its labels. */
async function regionsOf(domain: SynthDomain, split: 'train' | 'val'): Promise<RegionSet> {
  const loaded = await loadGqaSplit(synthLoadOptions('gqa', root, domain, split));
  const graphs = new Map<string, GqaSceneGraph>();
  for (const example of loaded.examples) if (example.sceneGraph && !graphs.has(example.imagePath)) graphs.set(example.imagePath, example.sceneGraph);
  const paths = [...graphs.keys()].sort().slice(0, maxImages);
  const layers: Float32Array[][] = Array.from({ length: layerCount + 1 }, () => []);
  const labels: RegionSet['labels'] = { shape: [], color: [], size: [] };
  let done = 0;
  for await (const batch of preprocessedBatches(paths, encoder.preprocessing, { batchSize: 32 })) {
    const boxes: NormalisedBox[][] = batch.files.map((file) => {
      const graph = graphs.get(file)!;
      const kept: NormalisedBox[] = [];
      for (const object of Object.values(graph.objects)) {
        const box = boxInCrop([object.x, object.y, object.x + object.w, object.y + object.h], graph.width, graph.height, encoder.preprocessing);
        if (!box) continue;
        kept.push(box);
        for (const property of Object.keys(PROPERTIES) as Property[]) labels[property].push(PROPERTIES[property](object.attributes, object.name));
      }
      return kept;
    });
    tf.tidy(() => {
      let h = encoder.model.imageBlockInput(encoder.model.imagePatchEmbeddings(tf.tensor4d(batch.pixels, [...batch.shape])));
      layers[0].push(poolRegionList(h, grid, boxes).dataSync() as Float32Array);
      for (let layer = 0; layer < layerCount; layer++) {
        h = encoder.model.imageBlocks(h, layer, layer + 1);
        layers[layer + 1].push(poolRegionList(h, grid, boxes).dataSync() as Float32Array);
      }
    });
    done += batch.files.length;
  }
  if (done === 0) throw new Error(`no images with scene graphs in ${domain} ${split}`);
  const concat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) (out.set(p, at), (at += p.length));
    return out;
  };
  return { layers: layers.map(concat), labels };
}

/** Softmax regression on standardised features (statistics of the training rows), Adam, full batch; accuracy on the evaluation rows. */
function probe(train: Float32Array, trainLabels: (string | undefined)[], evaluation: Float32Array, evaluationLabels: (string | undefined)[], dim: number): { accuracy: number; majority: number } {
  const classes = [...new Set(trainLabels.filter((l): l is string => l !== undefined))].sort();
  const index = new Map(classes.map((c, i) => [c, i]));
  const rows = (labels: (string | undefined)[]) => labels.flatMap((l, i) => (l !== undefined && index.has(l) ? [i] : []));
  const trainRows = rows(trainLabels);
  const evaluationRows = rows(evaluationLabels);
  return tf.tidy(() => {
    const pick = (features: Float32Array, all: number, selected: number[]) => tf.gather(tf.tensor2d(features, [all, dim]), selected);
    const x = pick(train, trainLabels.length, trainRows);
    const { mean, variance } = tf.moments(x, 0);
    const scale = variance.add(1e-6).sqrt();
    const xs = x.sub(mean).div(scale);
    const xe = pick(evaluation, evaluationLabels.length, evaluationRows).sub(mean).div(scale);
    const y = tf.oneHot(trainRows.map((i) => index.get(trainLabels[i]!)!), classes.length);
    const weights = tf.variable(tf.zeros([dim, classes.length]));
    const bias = tf.variable(tf.zeros([classes.length]));
    const optimiser = tf.train.adam(0.01);
    for (let step = 0; step < 300; step++) {
      optimiser.minimize(() => tf.losses.softmaxCrossEntropy(y, xs.matMul(weights).add(bias)).add(weights.square().sum().mul(1e-4)) as tf.Scalar);
    }
    const predicted = xe.matMul(weights).add(bias).argMax(1).dataSync();
    const truth = evaluationRows.map((i) => index.get(evaluationLabels[i]!)!);
    const correct = truth.filter((t, i) => predicted[i] === t).length;
    const counts = new Map<number, number>();
    for (const i of trainRows) counts.set(index.get(trainLabels[i]!)!, (counts.get(index.get(trainLabels[i]!)!) ?? 0) + 1);
    const majorityClass = [...counts].sort((a, b) => b[1] - a[1])[0][0];
    const majority = truth.filter((t) => t === majorityClass).length;
    optimiser.dispose();
    weights.dispose();
    bias.dispose();
    return { accuracy: (100 * correct) / truth.length, majority: (100 * majority) / truth.length };
  });
}

const manifest = await readSynthManifest(root);
console.log(`model: ${modelDir} (fingerprint ${encoder.fingerprint.slice(0, 12)}); data: ${root}, up to ${maxImages} images per split`);
console.log('validation accuracy of a linear probe on box-pooled tokens (floor: majority class of the training objects)');
console.log(`| domain | property | floor | ${Array.from({ length: layerCount + 1 }, (_, l) => (l === 0 ? 'block input' : `block ${l}`)).join(' | ')} |`);
console.log(`|---|---|---|${'---|'.repeat(layerCount + 1)}`);
for (const domain of manifest.options.domains as SynthDomain[]) {
  const train = await regionsOf(domain, 'train');
  const evaluation = await regionsOf(domain, 'val');
  for (const property of Object.keys(PROPERTIES) as Property[]) {
    const results = train.layers.map((features, layer) => probe(features, train.labels[property], evaluation.layers[layer], evaluation.labels[property], vision.hidden_size));
    console.log(`| ${domain} | ${property} | ${results[0].majority.toFixed(1)} | ${results.map((r) => r.accuracy.toFixed(1)).join(' | ')} |`);
  }
}
