import type { NormalisedBox, SceneGraph, SceneGraphVocabularySizes } from '../../models/objectives/scene-graph.ts';
import type { GqaSceneGraph } from '../../tasks/gqa/index.ts';
import type { VcrExample } from '../../tasks/vcr/load.ts';
import type { ImagePreprocessing } from '../../models/image-pipeline.ts';

/**
 * Scene graphs from the datasets, turned into what the `sg` objective reads: boxes in the
 * coordinates of the encoder's input crop, and class / attribute / predicate indices of a
 * vocabulary built from the training graphs (sorted, so it does not depend on file order).
 */
export interface SceneGraphVocabulary {
  objectClasses: string[];
  attributes: string[];
  predicates: string[];
}

export function vocabularySizes(vocabulary: SceneGraphVocabulary): SceneGraphVocabularySizes {
  return { objectClasses: vocabulary.objectClasses.length, attributes: vocabulary.attributes.length, predicates: vocabulary.predicates.length };
}

export function gqaGraphVocabulary(graphs: Iterable<GqaSceneGraph>): SceneGraphVocabulary {
  const classes = new Set<string>();
  const attributes = new Set<string>();
  const predicates = new Set<string>();
  for (const graph of graphs) {
    for (const object of Object.values(graph.objects)) {
      classes.add(object.name);
      object.attributes.forEach((a) => attributes.add(a));
      object.relations.forEach((r) => predicates.add(r.name));
    }
  }
  return { objectClasses: [...classes].sort(), attributes: [...attributes].sort(), predicates: [...predicates].sort() };
}

export function vcrObjectVocabulary(examples: Iterable<VcrExample>): SceneGraphVocabulary {
  const classes = new Set<string>();
  for (const example of examples) example.objects.forEach((o) => classes.add(o));
  return { objectClasses: [...classes].sort(), attributes: [], predicates: [] };
}

/**
 * Where the encoder's input crop sits in a width × height image: the resize scale per axis (the
 * same on both unless the config resizes to an exact size), the crop's size and its top-left
 * corner, in resized pixels.
 */
export function cropFrame(width: number, height: number, prep: ImagePreprocessing): { scaleX: number; scaleY: number; cropWidth: number; cropHeight: number; left: number; top: number } {
  const shortest = prep.resizeShortestEdge / Math.min(width, height);
  const scaleX = !prep.doResize ? 1 : prep.resizeExact ? prep.resizeExact.width / width : shortest;
  const scaleY = !prep.doResize ? 1 : prep.resizeExact ? prep.resizeExact.height / height : shortest;
  const scaledWidth = width * scaleX;
  const scaledHeight = height * scaleY;
  const cropWidth = prep.doCenterCrop ? prep.cropWidth : scaledWidth;
  const cropHeight = prep.doCenterCrop ? prep.cropHeight : scaledHeight;
  const left = prep.doCenterCrop ? Math.floor((scaledWidth - cropWidth) / 2) : 0;
  const top = prep.doCenterCrop ? Math.floor((scaledHeight - cropHeight) / 2) : 0;
  return { scaleX, scaleY, cropWidth, cropHeight, left, top };
}

/**
 * A pixel box [x1, y1, x2, y2] of a width × height image, in [0, 1] coordinates of the
 * preprocessed crop (resize of the shortest side, then center crop), clipped to the crop;
 * null when nothing of it is left inside.
 */
export function boxInCrop(box: readonly [number, number, number, number], width: number, height: number, prep: ImagePreprocessing): NormalisedBox | null {
  const { scaleX, scaleY, cropWidth, cropHeight, left, top } = cropFrame(width, height, prep);
  const clip = (v: number) => Math.min(1, Math.max(0, v));
  const x1 = clip((box[0] * scaleX - left) / cropWidth);
  const y1 = clip((box[1] * scaleY - top) / cropHeight);
  const x2 = clip((box[2] * scaleX - left) / cropWidth);
  const y2 = clip((box[3] * scaleY - top) / cropHeight);
  return x2 > x1 && y2 > y1 ? [x1, y1, x2, y2] : null;
}

/** A GQA scene graph (objects with attributes and relations) for the `sg` objective; unknown names are skipped. */
export function gqaSceneGraph(graph: GqaSceneGraph, vocabulary: SceneGraphVocabulary, prep: ImagePreprocessing): SceneGraph {
  const ids = Object.keys(graph.objects);
  const kept: { id: string; box: NormalisedBox; classIndex: number; attributes: number[] }[] = [];
  for (const id of ids) {
    const object = graph.objects[id];
    const classIndex = vocabulary.objectClasses.indexOf(object.name);
    const box = boxInCrop([object.x, object.y, object.x + object.w, object.y + object.h], graph.width, graph.height, prep);
    if (classIndex < 0 || !box) continue;
    const attributes = object.attributes.map((a) => vocabulary.attributes.indexOf(a)).filter((a) => a >= 0);
    kept.push({ id, box, classIndex, attributes: [...new Set(attributes)] });
  }
  const indexOf = new Map(kept.map((k, i) => [k.id, i]));
  const relations = [];
  for (const [subject, k] of kept.entries()) {
    for (const relation of graph.objects[k.id].relations) {
      const object = indexOf.get(relation.object);
      const predicate = vocabulary.predicates.indexOf(relation.name);
      if (object === undefined || predicate < 0 || object === subject) continue;
      relations.push({ subject, object, predicate });
    }
  }
  return { objects: kept.map(({ box, classIndex, attributes }) => ({ box, classIndex, attributes })), relations };
}

/** VCR's detections as a graph of objects alone (VCR annotates no attributes or relations). */
export function vcrSceneGraph(example: VcrExample, vocabulary: SceneGraphVocabulary, prep: ImagePreprocessing): SceneGraph {
  const objects = [];
  for (const [i, name] of example.objects.entries()) {
    const classIndex = vocabulary.objectClasses.indexOf(name);
    const [x1, y1, x2, y2] = example.boxes[i];
    const box = boxInCrop([x1, y1, x2, y2], example.imageWidth, example.imageHeight, prep);
    if (classIndex >= 0 && box) objects.push({ box, classIndex });
  }
  return { objects };
}
