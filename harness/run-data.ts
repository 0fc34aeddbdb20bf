import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import type { LoadOptions } from '../core/types.ts';
import { readSynthManifest, synthPaths, type SynthDomain, type SynthManifest, type SynthSplit } from '../tasks/synth/index.ts';
import { listImages, synthLoadOptions, synthTargetImages } from '../tasks/synth/run-splits.ts';

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

export function describeSplit(options: LoadOptions): string {
  return options.splitLabel ?? (options.split || basename(options.files?.annotations ?? options.files?.questions ?? ''));
}
