import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import { poolRegionList, selectionMatrix, type NormalisedBox, type TokenGrid } from '../ops/regions.ts';
import type { SceneGraphPredictions, SceneGraphVocabularySizes } from '../heads/scene-graph-head.ts';
export { poolRegionList, poolRegions, regionPatchIndices, selectionMatrix, type NormalisedBox, type TokenGrid } from '../ops/regions.ts';
export type { SceneGraphPredictions, SceneGraphVocabularySizes } from '../heads/scene-graph-head.ts';
export type { SceneGraph, SceneGraphObject, SceneGraphRelation } from './scene-graph-data.ts';
import type { SceneGraph } from './scene-graph-data.ts';
import { sigmoidCrossEntropyWithLogits } from './soft-score-bce.ts';
import { numberSetting, parseSettings, type SettingFields } from './settings.ts';
import { SceneGraphHead } from '../heads/scene-graph-head.ts';
import { defineObjective } from './objective.ts';
import { curveValues, formatValue, startAndEnd } from './curve-summary.ts';

/**
 * Scene-graph auxiliary loss (ERNIE-ViL's scene-graph prediction, used with adversarial
 * training in Tencent Hunyuan's VCR recipe). Region features are the encoder's image tokens
 * pooled inside each object's box; from them a head predicts
 *   - the object class (cross-entropy, mean over objects),
 *   - its attributes (multi-label BCE, summed over attributes, mean over annotated objects),
 *   - for every ordered pair (i, j), i ≠ j, of objects in one image, the relation predicate
 *     (cross-entropy over predicates plus "none" at index 0, weighted mean over pairs).
 * total = λ · (w_obj·L_obj + w_attr·L_attr + w_rel·L_rel).
 *
 * Several predicates for one ordered pair share the target mass equally. Pairs whose target
 * is "none" get weight `noneRelationWeight`, because unrelated pairs outnumber related ones
 * (n objects give n(n−1) pairs) and would otherwise teach the head to answer "none".
 * Graphs without attributes or relations (VCR gives only object names and boxes) leave
 * those terms out; the object term alone remains.
 */
export interface SceneGraphSettings {
  lambda: number;
  objectWeight: number;
  attributeWeight: number;
  relationWeight: number;
  noneRelationWeight: number;
}

/** λ = 1 and equal term weights follow ERNIE-ViL, which sums its scene-graph prediction losses unweighted; not tuned here. */
export const SCENE_GRAPH_DEFAULTS: SceneGraphSettings = {
  lambda: 1,
  objectWeight: 1,
  attributeWeight: 1,
  relationWeight: 1,
  noneRelationWeight: 1,
};

const nonNegative = { schema: numberSetting((n) => n.min(0)), expects: 'a number ≥ 0' };

export const SCENE_GRAPH_SETTING_FIELDS: SettingFields<SceneGraphSettings> = {
  lambda: { ...nonNegative, doc: 'weight λ of the whole scene-graph loss next to the task loss' },
  objectWeight: { ...nonNegative, doc: 'weight of the object-class cross-entropy' },
  attributeWeight: { ...nonNegative, doc: 'weight of the attribute BCE' },
  relationWeight: { ...nonNegative, doc: 'weight of the relation-predicate cross-entropy' },
  noneRelationWeight: { ...nonNegative, doc: 'weight of a pair whose target is "none" relative to a related pair' },
};

export function parseSceneGraphSettings(given: Readonly<Record<string, string>>): SceneGraphSettings {
  return parseSettings('sg', SCENE_GRAPH_SETTING_FIELDS, SCENE_GRAPH_DEFAULTS, given);
}

/** A batch of graphs flattened for the loss: objects in image order, pairs as indices into that list. */
export interface SceneGraphBatch {
  boxes: NormalisedBox[][];
  objectClasses: number[];
  /** Objects (indices into the flat list) whose attributes are annotated. */
  attributeObjects: number[];
  /** [attributeObjects.length × attributes] multi-hot targets. */
  attributeTargets: Float32Array;
  pairs: Array<readonly [number, number]>;
  /** [pairs.length × (predicates + 1)] target distributions, "none" at column 0. */
  relationTargets: Float32Array;
  relationWeights: Float32Array;
  sizes: SceneGraphVocabularySizes;
}

export function buildSceneGraphBatch(
  graphs: readonly SceneGraph[],
  sizes: SceneGraphVocabularySizes,
  settings: SceneGraphSettings = SCENE_GRAPH_DEFAULTS,
): SceneGraphBatch {
  const boxes: NormalisedBox[][] = [];
  const objectClasses: number[] = [];
  const attributeObjects: number[] = [];
  const attributeRows: number[][] = [];
  const pairs: Array<readonly [number, number]> = [];
  const relationRows: Float32Array[] = [];
  const relationWeights: number[] = [];
  const relationColumns = sizes.predicates + 1;
  graphs.forEach((graph, image) => {
    const first = objectClasses.length;
    boxes.push(graph.objects.map((object) => object.box));
    graph.objects.forEach((object, index) => {
      checkIndex(object.classIndex, sizes.objectClasses, `image ${image} object ${index} class`);
      objectClasses.push(object.classIndex);
      if (object.attributes) {
        object.attributes.forEach((a) => checkIndex(a, sizes.attributes, `image ${image} object ${index} attribute`));
        attributeObjects.push(first + index);
        attributeRows.push([...object.attributes]);
      }
    });
    if (!graph.relations) return;
    const count = graph.objects.length;
    const predicatesOf = new Map<number, number[]>();
    graph.relations.forEach((relation, r) => {
      checkIndex(relation.subject, count, `image ${image} relation ${r} subject`);
      checkIndex(relation.object, count, `image ${image} relation ${r} object`);
      checkIndex(relation.predicate, sizes.predicates, `image ${image} relation ${r} predicate`);
      if (relation.subject === relation.object) throw new Error(`scene graph image ${image} relation ${r} relates object ${relation.subject} to itself`);
      const key = relation.subject * count + relation.object;
      const list = predicatesOf.get(key) ?? [];
      if (!list.includes(relation.predicate)) list.push(relation.predicate);
      predicatesOf.set(key, list);
    });
    for (let subject = 0; subject < count; subject++) {
      for (let object = 0; object < count; object++) {
        if (subject === object) continue;
        pairs.push([first + subject, first + object]);
        const row = new Float32Array(relationColumns);
        const predicates = predicatesOf.get(subject * count + object);
        if (predicates) for (const p of predicates) row[p + 1] = 1 / predicates.length;
        else row[0] = 1;
        relationRows.push(row);
        relationWeights.push(predicates ? 1 : settings.noneRelationWeight);
      }
    }
  });
  const attributeTargets = new Float32Array(attributeObjects.length * sizes.attributes);
  attributeRows.forEach((row, i) => row.forEach((a) => (attributeTargets[i * sizes.attributes + a] = 1)));
  const relationTargets = new Float32Array(pairs.length * relationColumns);
  relationRows.forEach((row, i) => relationTargets.set(row, i * relationColumns));
  return { boxes, objectClasses, attributeObjects, attributeTargets, pairs, relationTargets, relationWeights: Float32Array.from(relationWeights), sizes };
}

function checkIndex(value: number, size: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= size) throw new Error(`scene graph ${what} is ${value}, expected an integer in [0, ${size})`);
}

/** What the loss needs from a head (models/heads/scene-graph-head.ts implements it). */
export interface SceneGraphPredictor {
  predict(regions: tf.Tensor2D, pairs: readonly (readonly [number, number])[]): SceneGraphPredictions;
}

export type SceneGraphLosses = {
  /** λ · weighted sum: what training adds to the task loss. */
  total: tf.Scalar;
  object: tf.Scalar;
  attribute: tf.Scalar;
  relation: tf.Scalar;
};

export function sceneGraphLoss(
  predictions: SceneGraphPredictions,
  batch: SceneGraphBatch,
  settings: SceneGraphSettings = SCENE_GRAPH_DEFAULTS,
): SceneGraphLosses {
  const objects = batch.objectClasses.length;
  if (predictions.objectLogits.shape[0] !== objects || predictions.objectLogits.shape[1] !== batch.sizes.objectClasses) {
    throw new Error(`sceneGraphLoss: object logits ${JSON.stringify(predictions.objectLogits.shape)} for ${objects} objects of ${batch.sizes.objectClasses} classes`);
  }
  return tf.tidy(() => {
    const zero = tf.scalar(0);
    const object =
      objects === 0
        ? zero
        : tf.logSoftmax(predictions.objectLogits)
            .mul(tf.oneHot(tf.tensor1d(batch.objectClasses, 'int32'), batch.sizes.objectClasses).toFloat())
            .sum()
            .neg()
            .div(objects);
    const annotated = batch.attributeObjects.length;
    const attribute =
      annotated === 0 || batch.sizes.attributes === 0
        ? zero
        : sigmoidCrossEntropyWithLogits(
            matMul(selectionMatrix(batch.attributeObjects, objects), predictions.attributeLogits),
            tf.tensor2d(batch.attributeTargets, [annotated, batch.sizes.attributes]),
          )
            .sum()
            .div(annotated);
    let relation: tf.Tensor = zero;
    if (batch.pairs.length > 0) {
      if (!predictions.relationLogits) throw new Error(`sceneGraphLoss: ${batch.pairs.length} pairs but no relation logits`);
      const columns = batch.sizes.predicates + 1;
      const perPair = tf.logSoftmax(predictions.relationLogits).mul(tf.tensor2d(batch.relationTargets, [batch.pairs.length, columns])).sum(1).neg();
      const weightSum = batch.relationWeights.reduce((a, b) => a + b, 0);
      relation = weightSum === 0 ? zero : perPair.mul(tf.tensor1d(batch.relationWeights)).sum().div(weightSum);
    }
    const total = object
      .mul(settings.objectWeight)
      .add(attribute.mul(settings.attributeWeight))
      .add(relation.mul(settings.relationWeight))
      .mul(settings.lambda);
    return { total: total as tf.Scalar, object: object as tf.Scalar, attribute: attribute as tf.Scalar, relation: relation as tf.Scalar };
  });
}

/** Pools regions from image tokens, runs the head and returns the losses: the whole `sg` objective in one call. */
export function sceneGraphObjective(
  tokens: tf.Tensor3D,
  grid: TokenGrid,
  graphs: readonly SceneGraph[],
  predictor: SceneGraphPredictor,
  sizes: SceneGraphVocabularySizes,
  settings: SceneGraphSettings = SCENE_GRAPH_DEFAULTS,
): SceneGraphLosses {
  const batch = buildSceneGraphBatch(graphs, sizes, settings);
  if (batch.objectClasses.length === 0) {
    return tf.tidy(() => ({ total: tf.scalar(0), object: tf.scalar(0), attribute: tf.scalar(0), relation: tf.scalar(0) }));
  }
  return tf.tidy(() => {
    const regions = poolRegionList(tokens, grid, batch.boxes);
    return sceneGraphLoss(predictor.predict(regions, batch.pairs), batch, settings);
  });
}

/** `sg`: predicts each image's scene graph from region features pooled out of the image tokens. */
export const sceneGraphAuxiliaryObjective = defineObjective({
  name: 'sg',
  summary: 'scene-graph prediction (objects, attributes, relations) from pooled regions',
  defaults: SCENE_GRAPH_DEFAULTS,
  fields: SCENE_GRAPH_SETTING_FIELDS,
  parse: parseSceneGraphSettings,
  needsSceneGraphs: true,
  unsupported: (kind) => (kind === 'contrastive' ? "sg pools regions from the fusion's image tokens, which a contrastive (retrieval) problem does not have" : null),
  create: (settings, setup) => {
    const sizes = setup.sceneGraphSizes;
    if (!sizes) throw new Error('sg needs the scene graphs\' label spaces (the task adapter passes them)');
    const head = new SceneGraphHead({ inputDim: setup.featureDim, ...sizes }, setup.random.fork('scene-graph-head'));
    return {
      namedVariables: () => head.namedVariables(),
      lossTerms: (batch) => {
        if (!batch.graphs || !batch.imageTokens || !batch.grid) return [];
        return [{ name: 'sg', contribution: sceneGraphObjective(batch.imageTokens, batch.grid, batch.graphs, head, sizes, settings).total }];
      },
      dispose: () => head.dispose(),
    };
  },
  report: (settings, curve) => {
    const values = curveValues(curve, 'sg');
    if (values.length === 0) return null;
    const { start, end } = startAndEnd(values);
    return { summary: `sg: loss ${formatValue(start)} at the start → ${formatValue(end)} at the end (λ ${settings.lambda})`, inert: settings.lambda === 0 ? 'sg.lambda is 0' : undefined };
  },
});
