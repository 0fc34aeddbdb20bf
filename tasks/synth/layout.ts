import { join } from 'node:path';

/**
 * Where SynthScenes puts each file. The generator writes here and the harness maps a
 * SynthScenes folder onto the task loaders' official layouts through these paths, so
 * the loaders never need to know the data is synthetic.
 *
 * A "subtype" names one split of one domain, as VQA's data_subtype does: "val_source".
 * The leaderboard records it as "val/source".
 */
export const SYNTH_SPLITS = ['train', 'val', 'test'] as const;
export const SYNTH_DOMAINS = ['source', 'target'] as const;
export type SynthSplit = (typeof SYNTH_SPLITS)[number];
export type SynthDomain = (typeof SYNTH_DOMAINS)[number];

export function synthSubtype(split: SynthSplit, domain: SynthDomain): string {
  return `${split}_${domain}`;
}

/** "val_source" → "val/source", the split label the leaderboard records. */
export function synthSplitLabel(subtype: string): string {
  return subtype.replace('_', '/');
}

/** COCO-style image name, so the VQA and Karpathy loaders resolve SynthScenes images unchanged. */
export function synthImageName(subtype: string, imageId: number): string {
  return `COCO_${subtype}_${String(imageId).padStart(12, '0')}.jpg`;
}

export const synthPaths = {
  manifest: (root: string) => join(root, 'manifest.json'),
  /** Images root: images/<subtype>/COCO_<subtype>_<id 12 digits>.jpg (COCO's <subtype>/<file> layout). */
  imagesRoot: (root: string) => join(root, 'images'),
  image: (root: string, subtype: string, imageId: number) => join(root, 'images', subtype, synthImageName(subtype, imageId)),
  /** VQA v2 layout. */
  vqaDir: (root: string) => join(root, 'vqa'),
  vqaQuestions: (root: string, subtype: string) => join(root, 'vqa', `v2_OpenEnded_synthscenes_${subtype}_questions.json`),
  vqaAnnotations: (root: string, subtype: string) => join(root, 'vqa', `v2_synthscenes_${subtype}_annotations.json`),
  /** GQA layout; image ids are the COCO-style file names without ".jpg", images in images/<subtype>/. */
  gqaDir: (root: string) => join(root, 'gqa'),
  gqaQuestions: (root: string, subtype: string) => join(root, 'gqa', `${subtype}_balanced_questions.json`),
  gqaSceneGraphs: (root: string, subtype: string) => join(root, 'gqa', `${subtype}_sceneGraphs.json`),
  /** VCR layout: <subtype>.jsonl beside vcr1images/<subtype>/<name>.jpg|.json (images hard-linked). */
  vcrDir: (root: string) => join(root, 'vcr'),
  vcrAnnotations: (root: string, subtype: string) => join(root, 'vcr', `${subtype}.jsonl`),
  vcrImagesRoot: (root: string) => join(root, 'vcr', 'vcr1images'),
  /** Karpathy layout, one file per domain; each image's filepath is its subtype folder under images/. */
  retrievalDir: (root: string) => join(root, 'retrieval'),
  retrieval: (root: string, domain: SynthDomain) => join(root, 'retrieval', `dataset_synthscenes_${domain}.json`),
  /** COCO-style detections of every image, for `vlbench run --regions`: the true boxes, or the simulated detector's (tasks/synth/detections.ts). */
  detections: (root: string, kind: SynthRegionKind) => join(root, 'detections', kind === 'true' ? 'true_boxes.json' : 'detector.json'),
};

export const SYNTH_REGION_KINDS = ['true', 'detector'] as const;
export type SynthRegionKind = (typeof SYNTH_REGION_KINDS)[number];
