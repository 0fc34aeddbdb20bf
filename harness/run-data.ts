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
  /**
   * Unlabelled target-domain questions, read through the task's own loader from its questions
   * file alone (no annotations, no scene graphs): what domain alignment pairs target images
   * with. Absent where the task has no questions file (VCR, retrieval) or there is no target.
   */
  targetQuestions?: LoadOptions;
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
  /** Real datasets: target-domain questions in the task's questions format, their images under `targetDir`; answers in it are never read. */
  targetQuestionsFile?: string;
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
  let targetQuestions: LoadOptions | undefined;
  if (request.targetQuestionsFile) {
    const file = resolve(request.targetQuestionsFile);
    if (!request.targetDir) throw new InputError('--target-questions needs --target DIR, the folder its images are found in', { file, field: '--target-questions' });
    if (!existsSync(file)) throw new InputError('target questions file does not exist', { file, field: '--target-questions' });
    targetQuestions = { split: '', splitLabel: 'target questions', files: { questions: file }, imagesDir: resolve(request.targetDir) };
  }
  return {
    task: request.task,
    train: { ...common, split: request.trainSplit },
    validation: { ...common, split: request.validationSplit ?? request.split },
    evaluations: [{ ...common, split: request.split }],
    // With target questions the target images are theirs, found under --target as the task's loader finds images (VQA: <dir>/<subtype>/COCO_…).
    targetImages: request.targetDir && !targetQuestions ? await listImages(request.targetDir) : [],
    ...(targetQuestions ? { targetQuestions } : {}),
  };
}

/** A split's loader options reading its questions file alone: its answers (annotations, scene graphs) are never opened. */
function questionsOnly(options: LoadOptions): LoadOptions | undefined {
  const questions = options.files?.questions;
  return questions ? { ...options, files: { questions } } : undefined;
}

const EVALUATION_SPLITS: readonly SynthSplit[] = ['val', 'test'];

async function synthRunData(request: RunDataRequest, root: string, manifest: SynthManifest): Promise<RunData> {
  if (request.targetDir) throw new InputError('--target is for real datasets; a SynthScenes folder brings its own target domain', { file: root });
  if (request.targetQuestionsFile) throw new InputError('--target-questions is for real datasets; a SynthScenes folder brings its own target-domain questions', { file: root, field: '--target-questions' });
  const split = (request.split ?? 'test') as SynthSplit;
  if (!EVALUATION_SPLITS.includes(split)) throw new InputError(`--split "${request.split}" is not a SynthScenes evaluation split; expected val or test`, { file: root });
  const domains = manifest.options.domains as SynthDomain[];
  const options = (domain: SynthDomain, which: SynthSplit): LoadOptions => synthLoadOptions(request.task, root, domain, which);
  const trainDomain = request.trainDomain ?? 'source';
  if (!domains.includes(trainDomain)) throw new InputError(`this SynthScenes folder has no ${trainDomain} domain to train on`, { file: root });
  const adapts = domains.includes('target') && trainDomain === 'source';
  const targetQuestions = adapts ? questionsOnly(options('target', 'train')) : undefined;
  return {
    task: request.task,
    synthRoot: root,
    train: options(trainDomain, 'train'),
    validation: options(trainDomain, 'val'),
    evaluations: domains.map((domain) => options(domain, split)),
    // Training on the target's own labels leaves nothing to adapt to.
    targetImages: adapts ? await synthTargetImages(root) : [],
    ...(targetQuestions ? { targetQuestions } : {}),
  };
}

export function describeSplit(options: LoadOptions): string {
  return options.splitLabel ?? (options.split || basename(options.files?.annotations ?? options.files?.questions ?? ''));
}
