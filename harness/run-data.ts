import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import type { LoadOptions } from '../core/types.ts';
import { readSynthManifest, synthPaths, synthSplitLabel, synthSubtype, type SynthDomain, type SynthManifest, type SynthSplit } from '../tasks/synth/index.ts';

/**
 * Where a run's data comes from: the labelled training split, the evaluation splits, and the
 * unlabelled target-domain images that domain adaptation aligns to. On a SynthScenes folder
 * this is automatic (train on source, evaluate both domains, adapt to the target train
 * images, whose labels are never read); on real datasets the user names the splits.
 */
export interface RunData {
  task: string;
  /** The SynthScenes folder, when the data is SynthScenes. */
  synthRoot?: string;
  train: LoadOptions;
  /** Validation split used for early stopping and model selection (never the test split). */
  validation: LoadOptions;
  evaluations: LoadOptions[];
  /** Unlabelled target-domain image files (empty when there is no target). */
  targetImages: string[];
}

export interface RunDataRequest {
  task: string;
  dataDir: string;
  /** Evaluation split: on SynthScenes "test" (default) or "val", both domains scored; elsewhere the dataset's own name. */
  split?: string;
  trainSplit?: string;
  validationSplit?: string;
  imagesDir?: string;
  /** A folder of unlabelled target-domain images (real datasets only). */
  targetDir?: string;
  /** SynthScenes only: train on the target domain's labels instead (the oracle reference of adaptation studies). */
  trainDomain?: SynthDomain;
}

export async function resolveRunData(request: RunDataRequest): Promise<RunData> {
  const dataDir = resolve(request.dataDir);
  if (!existsSync(dataDir) || !statSync(dataDir).isDirectory()) throw new InputError('data folder does not exist', { file: dataDir });
  if (existsSync(synthPaths.manifest(dataDir))) {
    const manifest = await readSynthManifest(dataDir);
    return synthRunData(request, dataDir, manifest);
  }
  if (!request.split || !request.trainSplit) {
    throw new InputError('a dataset that is not SynthScenes needs --train-split and --split (e.g. --train-split train2014 --split val2014)', { file: dataDir });
  }
  const common = { dataDir, imagesDir: request.imagesDir };
  return {
    task: request.task,
    train: { ...common, split: request.trainSplit },
    validation: { ...common, split: request.validationSplit ?? request.split },
    evaluations: [{ ...common, split: request.split }],
    targetImages: request.targetDir ? await listImages(request.targetDir) : [],
  };
}

const EVALUATION_SPLITS: readonly SynthSplit[] = ['val', 'test'];

async function synthRunData(request: RunDataRequest, root: string, manifest: SynthManifest): Promise<RunData> {
  if (request.targetDir) throw new InputError('--target is for real datasets; a SynthScenes folder brings its own target domain', { file: root });
  const split = (request.split ?? 'test') as SynthSplit;
  if (!EVALUATION_SPLITS.includes(split)) throw new InputError(`--split "${request.split}" is not a SynthScenes evaluation split; expected val or test`, { file: root });
  const domains = manifest.options.domains as SynthDomain[];
  const options = (domain: SynthDomain, which: SynthSplit): LoadOptions => synthLoadOptions(request.task, root, domain, which);
  const trainDomain = request.trainDomain ?? 'source';
  if (!domains.includes(trainDomain)) throw new InputError(`this SynthScenes folder has no ${trainDomain} domain to train on`, { file: root });
  return {
    task: request.task,
    synthRoot: root,
    train: options(trainDomain, 'train'),
    validation: options(trainDomain, 'val'),
    evaluations: domains.map((domain) => options(domain, split)),
    // Training on the target's own labels leaves nothing to adapt to.
    targetImages: domains.includes('target') && trainDomain === 'source' ? await synthTargetImages(root) : [],
  };
}

/** The loader options that read one SynthScenes split of one domain through a task's official-format loader. */
export function synthLoadOptions(task: string, root: string, domain: SynthDomain, split: SynthSplit): LoadOptions {
  const subtype = synthSubtype(split, domain);
  const splitLabel = synthSplitLabel(subtype);
  switch (task) {
    case 'vqa':
      return { split: subtype, splitLabel, files: { questions: synthPaths.vqaQuestions(root, subtype), annotations: synthPaths.vqaAnnotations(root, subtype) }, imagesDir: synthPaths.imagesRoot(root) };
    case 'gqa':
      return { split: subtype, splitLabel, files: { questions: synthPaths.gqaQuestions(root, subtype), sceneGraphs: synthPaths.gqaSceneGraphs(root, subtype) }, imagesDir: join(synthPaths.imagesRoot(root), subtype) };
    case 'vcr':
      return { split: subtype, splitLabel, dataDir: synthPaths.vcrDir(root), files: { annotations: synthPaths.vcrAnnotations(root, subtype) } };
    case 'retrieval':
      return { split, splitLabel, files: { annotations: synthPaths.retrieval(root, domain) }, imagesDir: synthPaths.imagesRoot(root) };
    default:
      throw new InputError(`task "${task}" has no SynthScenes data`);
  }
}

/** The unlabelled target-domain training images of a SynthScenes folder (their labels are never read). */
export async function synthTargetImages(root: string): Promise<string[]> {
  const dir = join(synthPaths.imagesRoot(root), synthSubtype('train', 'target'));
  return existsSync(dir) ? listImages(dir) : [];
}

async function listImages(dir: string): Promise<string[]> {
  const folder = resolve(dir);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    throw new InputError('target image folder cannot be read', { file: folder });
  }
  const images = names.filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort().map((name) => join(folder, name));
  if (images.length === 0) throw new InputError('target image folder holds no .jpg, .png or .webp files', { file: folder });
  return images;
}

export function describeSplit(options: LoadOptions): string {
  return options.splitLabel ?? (options.split || basename(options.files?.annotations ?? options.files?.questions ?? ''));
}
