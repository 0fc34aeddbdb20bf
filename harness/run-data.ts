import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import type { LoadedSplit, LoadOptions } from '../core/types.ts';
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
  /** The training split; absent only for a zero-shot run on a dataset named without --train-split (nothing trains). */
  train?: LoadOptions;
  /** What early stopping and model selection score: never an evaluation example unless asked for by name. */
  validation: ValidationSource;
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

/**
 * Where validation comes from: a named split (SynthScenes' own val, or `--validation-split`), or,
 * without one, a slice of the training split's images held out from training (HELD_OUT_FRACTION,
 * by image so that no image is both trained on and validated on). A named split that is an
 * evaluation split (`onEvaluation`) is refused unless `--select-on-evaluation` asks for it.
 */
export type ValidationSource = { kind: 'split'; options: LoadOptions; onEvaluation: boolean } | { kind: 'held-out'; fraction: number };

/** The share of the training split's images held out as validation when no validation split is named. */
export const HELD_OUT_FRACTION = 0.1;

export interface RunDataRequest {
  task: string;
  dataDir: string;
  /** Evaluation split: on SynthScenes "test" (default) or "val", both domains scored; elsewhere the dataset's own name. */
  split?: string;
  trainSplit?: string;
  /** false for a zero-shot run: then a dataset that is not SynthScenes needs no --train-split. */
  trains?: boolean;
  validationSplit?: string;
  imagesDir?: string;
  /** A Hugging Face cache folder as dataDir: which snapshot (a ref or a commit). */
  revision?: string;
  /** A folder of unlabelled target-domain images (real datasets only). */
  targetDir?: string;
  /** Real datasets: target-domain questions in the task's questions format, their images under `targetDir`; answers in it are never read. */
  targetQuestionsFile?: string;
  /** SynthScenes only: train on the target domain's labels instead (the oracle reference of adaptation studies). */
  trainDomain?: SynthDomain;
  /** Allow validation = evaluation (model selection on the numbers it reports); the run is marked. */
  selectOnEvaluation?: boolean;
}

export async function resolveRunData(request: RunDataRequest): Promise<RunData> {
  const dataDir = resolve(request.dataDir);
  if (!existsSync(dataDir) || !statSync(dataDir).isDirectory()) throw new InputError('data folder does not exist', { file: dataDir });
  if (existsSync(synthPaths.manifest(dataDir))) {
    if (request.revision !== undefined) throw new InputError('--revision picks a snapshot of a Hugging Face dataset folder; a SynthScenes folder has none', { file: dataDir, field: '--revision' });
    const manifest = await readSynthManifest(dataDir);
    return synthRunData(request, dataDir, manifest);
  }
  // A zero-shot run trains nothing, so it needs only the split it scores: a Hub copy such as
  // lmms-lab/flickr30k has that one split and no other.
  const zeroShot = request.trains === false;
  if (!request.split || (!request.trainSplit && !zeroShot)) {
    throw new InputError(`a dataset that is not SynthScenes needs --train-split and --split (e.g. --train-split train2014 --split val2014${zeroShot ? '' : '; a zero-shot run needs only --split'})`, { file: dataDir });
  }
  const common = { dataDir, imagesDir: request.imagesDir, ...(request.revision !== undefined ? { revision: request.revision } : {}) };
  if (!request.validationSplit && request.selectOnEvaluation) throw new InputError('--select-on-evaluation needs --validation-split naming the evaluation split', { field: '--select-on-evaluation' });
  const validation: ValidationSource = request.validationSplit ? namedValidation({ ...common, split: request.validationSplit }, request.validationSplit === request.split, request) : { kind: 'held-out', fraction: HELD_OUT_FRACTION };
  let targetQuestions: LoadOptions | undefined;
  if (request.targetQuestionsFile) {
    const file = resolve(request.targetQuestionsFile);
    if (!request.targetDir) throw new InputError('--target-questions needs --target DIR, the folder its images are found in', { file, field: '--target-questions' });
    if (!existsSync(file)) throw new InputError('target questions file does not exist', { file, field: '--target-questions' });
    targetQuestions = { split: '', splitLabel: 'target questions', files: { questions: file }, imagesDir: resolve(request.targetDir) };
  }
  return {
    task: request.task,
    ...(request.trainSplit ? { train: { ...common, split: request.trainSplit } } : {}),
    validation,
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
    // Its own val split, unless that is what the run evaluates (--split val): then a held-out slice of train.
    validation: split === 'val' ? (request.selectOnEvaluation ? namedValidation(options(trainDomain, 'val'), true, request) : { kind: 'held-out', fraction: HELD_OUT_FRACTION }) : namedValidation(options(trainDomain, 'val'), false, request),
    evaluations: domains.map((domain) => options(domain, split)),
    // Training on the target's own labels leaves nothing to adapt to.
    targetImages: adapts ? await synthTargetImages(root) : [],
    ...(targetQuestions ? { targetQuestions } : {}),
  };
}

export function describeSplit(options: LoadOptions): string {
  return options.splitLabel ?? (options.split || basename(options.files?.annotations ?? options.files?.questions ?? ''));
}

function namedValidation(options: LoadOptions, onEvaluation: boolean, request: RunDataRequest): ValidationSource {
  // The flag marks the run wherever it is shown: given where validation is not the evaluation split, it would mark a fair run.
  if (!onEvaluation && request.selectOnEvaluation) throw new InputError(`--select-on-evaluation given, but validation is "${describeSplit(options)}", not the evaluation split; leave the flag out`, { field: '--select-on-evaluation' });
  if (onEvaluation && !request.selectOnEvaluation) {
    throw new InputError(`validation split "${describeSplit(options)}" is the evaluation split: the weights would be selected on the numbers the run reports; name another --validation-split, leave it out (a held-out ${HELD_OUT_FRACTION * 100}% of the training images validates), or pass --select-on-evaluation to do it anyway (the run is marked)`, { field: '--validation-split' });
  }
  return { kind: 'split', options, onEvaluation };
}

/**
 * The training split cut in two by image: a deterministic `fraction` of its images (at least one;
 * ranked by sha256 of each image's path below the split's common folder, so the slice is the same
 * on every machine, seed and run) and all their examples become validation; training keeps the
 * rest. `imageOf` names an example's image. Refused when the split has fewer than 2 images.
 */
export function holdOutByImage<E>(split: LoadedSplit<E>, imageOf: (example: E) => string, fraction: number): { train: LoadedSplit<E>; validation: LoadedSplit<E>; rule: string } {
  const images = [...new Set(split.examples.map(imageOf))];
  if (images.length < 2) throw new InputError(`the training split "${split.split}" has ${images.length} image(s): too few to hold out validation images; name a --validation-split`, { field: '--validation-split' });
  const common = commonFolder(images);
  const rank = new Map(images.map((image) => [image, createHash('sha256').update(image.slice(common.length)).digest('hex')]));
  const held = new Set([...images].sort((a, b) => (rank.get(a)! < rank.get(b)! ? -1 : 1)).slice(0, Math.max(1, Math.round(fraction * images.length))));
  const rule = `held out: ${held.size} of ${images.length} training images (${fraction * 100}%, lowest sha256 of the image path), with their examples`;
  const validationExamples = split.examples.filter((example) => held.has(imageOf(example)));
  const fingerprint = createHash('sha256').update(`${split.fingerprint}\n${rule}`).digest('hex');
  return {
    train: { ...split, examples: split.examples.filter((example) => !held.has(imageOf(example))) },
    validation: { ...split, split: `${split.split} (held-out)`, examples: validationExamples, fingerprint },
    rule,
  };
}

/**
 * `--limit N` (a smoke run, lm-eval's and lmms-eval's `--limit`): the first N examples of the
 * split in file order, so two limited runs see the same examples. Its fingerprint is the whole
 * split's with the limit folded in, and the split records the limit, so a limited run lands in
 * its own leaderboard group instead of beside full runs. A limit that cuts nothing leaves the
 * split whole (and comparable).
 */
export function limitSplit<E>(split: LoadedSplit<E>, limit: number | undefined): LoadedSplit<E> {
  if (limit === undefined || split.examples.length <= limit) return split;
  const fingerprint = createHash('sha256').update(`${split.fingerprint}\nlimit: first ${limit} examples`).digest('hex');
  return { ...split, examples: split.examples.slice(0, limit), fingerprint, limit };
}

function commonFolder(paths: readonly string[]): string {
  let prefix = paths[0].slice(0, paths[0].lastIndexOf('/') + 1);
  while (prefix && !paths.every((path) => path.startsWith(prefix))) prefix = prefix.slice(0, prefix.lastIndexOf('/', prefix.length - 2) + 1);
  return prefix;
}
