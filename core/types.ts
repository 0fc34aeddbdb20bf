/**
 * The small interfaces where tasks, models and the leaderboard meet (DESIGN.md:
 * a task never imports a model, a model never imports a task). Tasks and the
 * leaderboard import only this file from harness/.
 */

/** One evaluation split of one task, loaded and fingerprinted. */
export interface LoadedSplit<Example> {
  /** Registry name of the task, e.g. "vqa", "gqa", "vcr", "retrieval". */
  task: string;
  /** Version of the task adapter (loading + prompt/tag rendering); bumps when examples change. */
  taskVersion: string;
  /** Split name as recorded in the leaderboard, e.g. "val", "test", "val/target". */
  split: string;
  /** sha256 (hex) over the annotation files' bytes and the ordered image id list. */
  fingerprint: string;
  /** Absolute paths of the annotation files that were read. */
  files: string[];
  examples: Example[];
  /** `--limit`: only the first N examples in file order were kept (the fingerprint says so too); absent for a whole split. */
  limit?: number;
}

/** Per-example score, used by the leaderboard's bootstrap and paired comparison. */
export interface ExampleScore {
  id: string;
  /** The example's contribution to the primary metric, on the metric's scale (0..100). */
  score: number;
  /**
   * The image the example asks about, where several examples share one (VQA, GQA, VCR): the
   * leaderboard's bootstrap resamples images, all of an image's examples together, since
   * questions about one image are not independent draws. Absent: the example is its own unit.
   */
  image?: string;
}

/** What every scorer returns. */
export interface ScoreReport {
  /** Metric family name, e.g. "vqa-accuracy", "vcr-accuracy", "retrieval-recall". */
  metric: string;
  /** Bumped whenever the metric's definition changes; part of the comparability key. */
  metricVersion: string;
  /** The key of `metrics` that ranks runs. */
  primary: string;
  /** Flat numeric metrics, ×100 where the official metric reports percentages. */
  metrics: Record<string, number>;
  /** The report in the exact shape `vlbench score` prints (official layout). */
  official: unknown;
  perExample: ExampleScore[];
}

/** Options every task loader takes. */
export interface LoadOptions {
  /** Dataset folder in the task's official layout; files are found there by split name. */
  dataDir?: string;
  /** Split name in the dataset's own terms (e.g. "val2014", "val", "test", "val_source"). */
  split: string;
  /** Explicit annotation files, overriding discovery in dataDir (keys are task-specific:
   *  "questions", "annotations", "choices", "sceneGraphs"). */
  files?: Record<string, string>;
  /** Root folder of the images, where it is not inside dataDir (COCO, GQA). */
  imagesDir?: string;
  /** Split label recorded in the leaderboard, when it differs from `split` (e.g. "val/source"). */
  splitLabel?: string;
  /** A Hugging Face cache folder (`datasets--OWNER--NAME`) as dataDir: the snapshot to read, a ref ("main") or a commit; default refs/main. */
  revision?: string;
}

/** Options that change how a task scores (each task documents the ones it reads). */
export interface ScoreOptions {
  /** VQA: normalise the prediction even when all 10 answers agree (pre-2021 evaluator, LAVIS). */
  legacyNormalization?: boolean;
  /** Retrieval: average over this many folds (COCO 1K = 5 folds of the 5K test set). */
  folds?: number;
}

export interface Task<Example = unknown, Predictions = unknown> {
  name: string;
  /** The scoring options (ScoreOptions keys) this task's metric takes; others are refused, never ignored. */
  scoreOptions?: readonly (keyof ScoreOptions)[];
  version: string;
  description: string;
  /** Splits this task knows by name. */
  splits: readonly string[];
  load(options: LoadOptions): Promise<LoadedSplit<Example>>;
  /** Reads a predictions file in the task's official result format and validates it against the split. */
  readPredictions(split: LoadedSplit<Example>, file: string): Promise<Predictions>;
  score(split: LoadedSplit<Example>, predictions: Predictions, options?: ScoreOptions): ScoreReport;
  /** Writes the official submission file, after validating it against the split. */
  writeSubmission(split: LoadedSplit<Example>, predictions: Predictions, file: string): Promise<void>;
  /**
   * Where SynthScenes (the embedded benchmark) keeps this task's files for one split of one
   * domain, as `load` takes them (the split label is added by the caller); absent: SynthScenes has
   * no data for this task. The task says it, so a SynthScenes run names no task.
   */
  synthScenes?(place: SynthScenesPlace): LoadOptions;
}

/** One split of one domain of a SynthScenes folder (tasks/synth/layout.ts keeps the paths). */
export interface SynthScenesPlace {
  root: string;
  /** "train", "val" or "test". */
  split: string;
  /** "source" or "target". */
  domain: string;
  /** The split of that domain as file names spell it: "val_source". */
  subtype: string;
}

/**
 * Every backend that can compute something, as output records name it: the tfjs backends
 * (CUDA through tfjs-node-gpu, WebGPU through Dawn, tfjs-node, wasm with OpenBLAS kernels,
 * plain wasm, plain JavaScript) and ONNX Runtime for inference. The leaderboard's run
 * record validates against this list.
 */
export const BACKEND_NAMES = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm-blas', 'wasm', 'cpu', 'onnxruntime'] as const;

/** Names the backend that computed something; goes into every output record. */
export type BackendName = (typeof BACKEND_NAMES)[number];
