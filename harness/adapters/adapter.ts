import { FusionTransformer, FUSION_DEFAULTS, type FusionConfig } from '../../models/heads/fusion.ts';
import { unsupportedObjective, type MethodSpec, type ProblemKind, type TASK_LOSSES } from '../../models/objectives/index.ts';
import type { FeatureTable, PixelBox } from '../../models/features.ts';
import type { EncoderTuning } from '../../models/fine-tuning/encoder-tuning.ts';
import type { SplitEmbeddings } from '../../models/fine-tuning/contrastive-retrieval.ts';
import type { TrainingProblem } from '../../models/train.ts';
import type { ImagePreprocessing } from '../../models/image-pipeline.ts';
import type { GqaSceneGraph } from '../../tasks/gqa/index.ts';
import type { SeededRandom } from '../../core/random.ts';
import type { DetectionFile } from '../../tasks/detections.ts';
import type { LoadedSplit, LoadOptions, Task } from '../../core/types.ts';

/**
 * A task adapter is where a task (tasks/*, which knows files and metrics) meets the models
 * (models/*, which know tensors). Like lmms-eval's doc_to_visual / doc_to_text, it says which
 * images and texts a split needs; it also says which methods the task supports (and why not),
 * and builds the training problem, the prediction step and the hyperparameters it resolved.
 * The run lifecycle (harness/run.ts) drives any adapter the same way and names no task.
 */
export interface TaskAdapter {
  /** The task's name in tasks/registry.ts. */
  task: string;
  /** Which training problem the task's methods build (decides which objectives apply). */
  problemKind: ProblemKind;
  /** The task loss `build` trains (soft-score BCE, multiple-choice CE, InfoNCE): its `--set <loss>.*` settings apply, another loss's are refused. */
  taskLoss: (typeof TASK_LOSSES)[number];
  /** File extension of the official submission format. */
  submissionExtension: string;
  /** Why this task cannot run the method, or null when it can. */
  unsupportedMethod(method: MethodSpec): string | null;
  /** Every image file a split needs encoded. */
  imagesOf(split: LoadedSplit<unknown>): string[];
  /** Every text a split needs encoded. */
  textsOf(split: LoadedSplit<unknown>): string[];
  /** Scene graphs by image id for objectives that need them (sg); absent when the task has none. */
  loadSceneGraphs?(train: LoadedSplit<unknown>, trainOptions: LoadOptions, synthRoot: string | undefined): Promise<Map<string, GqaSceneGraph>>;
  /** Builds what trains and what predicts. */
  build(context: AdapterContext): Promise<PreparedModel>;
  /** The task's own defaults where they differ from the shared ones; `--epochs` and `--set` still override them. */
  defaults?: AdapterDefaults;
  /** Whether `vlbench run --regions FILE` applies: `build` turns the file's boxes into object tokens. */
  takesRegions?: boolean;
  /** Whether `build` pairs target images with `RunSplits.targetQuestions` for domain alignment (so `--target-questions FILE` applies). */
  takesTargetQuestions?: boolean;
  /**
   * The floors a split's score is judged against, recorded beside it in metrics.json: e.g. VQA's
   * per-question-type prior of the training split, overall and per question type. Absent: none.
   */
  controls?(train: LoadedSplit<unknown>, split: LoadedSplit<unknown>, predictions: unknown): Record<string, number>;
  /** Sharded evaluation: a slice's predictions as per-example rows, and the split's from all rows; absent: the task cannot be sharded. */
  predictionRows?: PredictionRows;
  /** How `vlbench demo` runs this task on SynthScenes; absent: the demo does not run it. */
  demo?: DemoRecipe;
}

/** The methods the demo compares (DemoRecipe.methods picks among them, or `--methods` does). */
export const DEMO_METHODS = ['ft', 'ft+sg', 'ft+adv', 'ft+sg+adv', 'ft+mmd', 'ft+dann'] as const;

/**
 * A task's part of `vlbench demo` (harness/demo.ts), which names no task: the methods it runs,
 * for how long, whether `ft` runs once more with encoder blocks tuned, and whether it needs a
 * SynthScenes folder of its own.
 */
export interface DemoRecipe {
  /** The method SPECs run when `--methods` is not given. */
  methods: readonly string[];
  /** Whether `--methods` replaces them (retrieval always runs zeroshot and ft). */
  takesMethods: boolean;
  epochs: number;
  /** Whether `ft` runs once more with the encoder's last blocks tuned (`--encoder-blocks`). */
  tunedFt: boolean;
  /** A SynthScenes folder of its own (`--vqa-images` images per domain), whose simulated detector's boxes the runs read as `--regions`. */
  ownFolder?: { images: number; regions: 'true' | 'detector' };
}

/**
 * Sharded evaluation (`vlbench run --shard`, harness/shards.ts): a shard stores one row per
 * example it predicted, and the merge joins every shard's rows back into the predictions of
 * the whole split, which the task's own scorer then scores. Rows are JSON; joined, they must
 * be exactly what `PreparedModel.predict` gives for the whole split, so a merged run's
 * predictions file and metrics equal an unsharded run's (helpers: prediction-rows.ts).
 */
export interface PredictionRows {
  /** One row per example of `slice`, keyed by the example's id (exampleIdOf). */
  rows(model: PreparedModel, slice: LoadedSplit<unknown>): Map<string, unknown>;
  /** The whole split's predictions from every example's row (one per id, checked by the caller). */
  join(split: LoadedSplit<unknown>, rows: ReadonlyMap<string, unknown>): unknown;
  /** The join computes with tensors (retrieval ranks at merge): the merge then runs on the shards' backend. */
  joinComputes?: boolean;
}

/** Training and head defaults a task sets for itself (e.g. VCR: a deeper fusion over the full patch grid). */
export interface AdapterDefaults {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  fusion?: Partial<HeadSettings['fusion']>;
  /** Pooling factor of the patch grid before the fusion (`fusion.image_pool`). */
  imagePool?: number;
}

export interface RunSplits {
  train: LoadedSplit<unknown> | null;
  validation: LoadedSplit<unknown> | null;
  evaluations: LoadedSplit<unknown>[];
  /** Scene graphs by image id, filled when the method needs them. */
  graphs: Map<string, GqaSceneGraph>;
  /** Unlabelled target-domain questions (their answers never loaded or read), when the method aligns to a target domain and the data has them. */
  targetQuestions?: LoadedSplit<unknown> | null;
}

/**
 * Which fusion a fusion-problem task trains: `relational` (object tokens, a question read-out,
 * count and pair terms: models/heads/relational-fusion.ts), VQA's and GQA's default; `transformer`
 * (the single-stream fusion with mean or choice pooling), VCR's.
 */
export type FusionKind = 'relational' | 'transformer';

/** Head sizes and task-side settings a run resolves from `--set`, with their defaults applied. */
export interface HeadSettings {
  /** tagContext, tagProduct, boxSine: VCR's grounding options, sharedPrefix its multiple-choice pass (FusionConfig); other tasks ignore them. */
  fusion: { hidden: number; layers: number; heads: number; inputNorm?: boolean; tagContext?: boolean; tagProduct?: boolean; boxSine?: boolean; sharedPrefix?: boolean; kind?: FusionKind; dropout?: number };
  /** Minimum count of an answer in the training split to enter the vocabulary (answer tasks). */
  answersMinCount?: number;
}

export interface AdapterContext {
  task: Task;
  method: MethodSpec;
  head: HeadSettings;
  splits: RunSplits;
  images: FeatureTable;
  texts: FeatureTable;
  targetImages: readonly string[];
  random: SeededRandom;
  preprocessing: ImagePreprocessing;
  /** Use at most this many training examples (quick checks). */
  maxTrainExamples?: number;
  /** The encoder whose blocks train (encoder.train_blocks > 0); absent: heads on the frozen features. */
  encoder?: EncoderTuning;
  /** `--regions FILE`: detections whose boxes become object tokens (VQA, GQA). */
  regions?: DetectionFile;
  /**
   * Encodes object crops (extractRegionFeatures, cached) with the run's frozen encoder: how
   * region tokens are made when `fusion.region_features` is crop; absent: pooled from the grid.
   */
  encodeRegions?: (objects: ReadonlyMap<string, readonly PixelBox[]>) => Promise<FeatureTable>;
  /** The run log (one line each). */
  log?: (line: string) => void;
}

export interface PreparedModel {
  /** Null when nothing trains (zero-shot). */
  problem: TrainingProblem | null;
  predict(split: LoadedSplit<unknown>): unknown;
  /** Retrieval: the normalised image and caption embeddings `predict` ranks (a shard contributes these; ranking happens at merge). */
  embed?(split: LoadedSplit<unknown>): SplitEmbeddings;
  /** Frees the heads' tensors (a demo runs many models in one process). */
  dispose(): void;
  /** What the adapter resolved (e.g. the answer vocabulary's size), recorded with the run. */
  hyperparameters: Record<string, unknown>;
}

/** The check every adapter starts from: zero-shot only where the task has a zero-shot path, objectives that fit the problem. */
export function unsupportedForProblem(method: MethodSpec, task: string, problemKind: ProblemKind, zeroShot: boolean): string | null {
  if (method.base === 'zeroshot' && !zeroShot) return `--method zeroshot applies to retrieval only; ${task} needs a trained head (e.g. --method ft)`;
  const reason = unsupportedObjective(method, problemKind);
  return reason ? `--method ${method.spec}: ${reason}` : null;
}

export function limitTraining<T>(items: T[], maxTrainExamples: number | undefined): T[] {
  return maxTrainExamples ? items.slice(0, maxTrainExamples) : items;
}

/** The fusion transformer the fusion-problem tasks share, sized by the run's head settings (plus task-side options such as VCR's detection slots). */
export function createFusion(context: AdapterContext, options: Pick<FusionConfig, 'detectionSlots' | 'tagContext' | 'tagProduct' | 'boxSine' | 'sharedPrefix'> = {}): FusionTransformer {
  const { fusion } = context.head;
  return new FusionTransformer({ imageDim: context.images.tokenDim, textDim: context.texts.tokenDim, hidden: fusion.hidden, layers: fusion.layers, heads: fusion.heads, inputNorm: fusion.inputNorm, ...options }, context.random.fork('fusion'));
}

/** Validation for model selection: the task's primary official metric on the validation split. */
export function validationScore(context: AdapterContext, predict: (split: LoadedSplit<unknown>) => unknown): () => Promise<number> {
  return async () => {
    const report = context.task.score(context.splits.validation!, predict(context.splits.validation!));
    return report.metrics[report.primary];
  };
}

export { FUSION_DEFAULTS };
