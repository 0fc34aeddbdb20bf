import { resolve } from 'node:path';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import type { Task } from '../core/types.ts';
import { BACKEND_CHOICES } from '../models/backends/select.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { ENCODER_TUNING_DEFAULTS, tuningEnabled, type EncoderTuningSettings } from '../models/fine-tuning/encoder-tuning.ts';
import { FUSION_DEFAULTS } from '../models/heads/fusion.ts';
import { methodNeeds, parseMethodSpec, resolveObjectivesForRun, type MethodSpec } from '../models/objectives/index.ts';
import { trainingSettingsOf, type TrainingSettings } from '../models/train.ts';
import { parseRunSettings, type Recipe } from './run-settings.ts';
import { readDetectionFile, type DetectionFile } from '../tasks/detections.ts';
import { getTask } from '../tasks/registry.ts';
import { getAdapter, RUN_TASKS, type TaskAdapter } from './adapters/index.ts';
import type { HeadSettings } from './adapters/adapter.ts';
import { checkTaskLossSettings } from './preflight.ts';
import { resolveRunData, type RunData } from './run-data.ts';

/**
 * The plan of a run (`vlbench run`): the request as given, its defaults, every check that bad
 * input can fail, and the run's name, resolved before anything is loaded, trained or written (the
 * split lm-eval makes between setting up and evaluating). `resolveRun` reads the data folder's
 * manifest and a `--regions` file but writes nothing; harness/run.ts executes the plan and
 * harness/run-folder.ts keeps what it writes.
 */
/** Shard `number` of `count`, numbered from 1 as `--shard` takes it (like jest's and playwright's --shard). */
export const shardSpecSchema = z
  .object({ number: z.number().int().positive(), count: z.number().int().positive() })
  .strict()
  .refine((shard) => shard.number <= shard.count, { message: 'shard number must be at most the shard count' });
export type ShardSpec = z.infer<typeof shardSpecSchema>;

export const runRequestSchema = z.object({
  task: z.string().refine((task) => RUN_TASKS.includes(task), { message: `expected one of ${RUN_TASKS.join(', ')}` }),
  dataDir: z.string().min(1),
  modelDir: z.string().min(1).optional(),
  method: z.string().min(1),
  sets: z.record(z.string(), z.string()).default({}),
  seed: z.number().int().default(0),
  epochs: z.number().int().positive().optional(),
  split: z.string().optional(),
  trainSplit: z.string().optional(),
  validationSplit: z.string().optional(),
  imagesDir: z.string().optional(),
  /** A Hugging Face cache folder as dataDir: the snapshot to read, a ref or a commit (default refs/main). */
  revision: z.string().min(1).optional(),
  targetDir: z.string().optional(),
  /** Real datasets: unlabelled target-domain questions (the task's questions format) that mmd/dann pair with the --target images. */
  targetQuestionsFile: z.string().min(1).optional(),
  /** Validation may be the evaluation split (model selection on the reported numbers); recorded as such. */
  selectOnEvaluation: z.boolean().optional(),
  /** SynthScenes: train on this domain's labels (target = the oracle reference). */
  trainDomain: z.enum(['source', 'target']).optional(),
  backend: z.enum(BACKEND_CHOICES).default('auto'),
  name: z.string().optional(),
  /** VQA/GQA: COCO-style detections whose boxes become the fusion's object tokens (tasks/detections.ts). */
  regionsFile: z.string().min(1).optional(),
  /** Use at most this many training examples (quick checks). */
  maxTrainExamples: z.number().int().positive().optional(),
  /** A smoke run: the first N examples of every split the run reads, in file order (harness/run-data.ts limitSplit); its records sit in their own leaderboard group. */
  limit: z.number().int().positive().optional(),
  /** Options of the official metric (VQA's legacy normalisation, retrieval folds); part of the comparability key. */
  scoring: z.object({ legacyNormalization: z.boolean().optional(), folds: z.number().int().positive().optional() }).strict().default({}),
  /** Sharded evaluation: train as usual, predict only this slice of each evaluation split, score at `vlbench merge-shards` (harness/shards.ts). */
  shard: shardSpecSchema.optional(),
});
/** What a caller gives (defaults may be left out); `ResolvedRunRequest` is what the run uses and stores. */
export type RunRequest = z.input<typeof runRequestSchema>;
export type ResolvedRunRequest = z.output<typeof runRequestSchema>;

/** Everything a run needs to know before it loads a model: what `executeRun` carries out. */
export interface RunPlan {
  request: ResolvedRunRequest;
  method: MethodSpec;
  recipe: Recipe;
  task: Task;
  adapter: TaskAdapter;
  data: RunData;
  /** `--regions`: read and checked here, so a malformed file costs nothing. */
  regions?: DetectionFile;
  tuning: EncoderTuningSettings;
  /** Whether encoder blocks train (tuning asked for, and a method that trains). */
  tunes: boolean;
  refitEpochs: number;
  /** VQA, GQA: `answers.min_count`; undefined: the adapter's default for the data's size. */
  answersMinCount: number | undefined;
  modelDir: string;
  training: TrainingSettings;
  /** The leaderboard name (runName). */
  name: string;
}

/** Resolves and checks a run request; loads no model and writes nothing. Bad input fails here, by name. */
export async function resolveRun(requestInput: RunRequest): Promise<RunPlan> {
  const request = runRequestSchema.parse(requestInput);
  let method = parseMethodSpec(request.method, request.sets);
  const recipe = parseRunSettings(method.otherSettings);
  const adapter = getAdapter(request.task);
  const unsupported = adapter.unsupportedMethod(method);
  if (unsupported) throw new InputError(unsupported);
  checkTaskLossSettings(request.task, method, request.sets);
  // Refused before any training: a shard of a task without per-example rows could not be merged.
  if (request.shard && !adapter.predictionRows) throw new InputError(`--shard: ${request.task} has no per-example prediction rows to merge; run it unsharded`, { field: '--shard' });
  const task = getTask(request.task);
  const data = await resolveRunData({ task: request.task, dataDir: request.dataDir, split: request.split ?? undefined, trainSplit: request.trainSplit, trains: method.base !== 'zeroshot', validationSplit: request.validationSplit, imagesDir: request.imagesDir, revision: request.revision, targetDir: request.targetDir, targetQuestionsFile: request.targetQuestionsFile, trainDomain: request.trainDomain, selectOnEvaluation: request.selectOnEvaluation });
  if (request.targetQuestionsFile && !adapter.takesTargetQuestions) throw new InputError(`--target-questions: ${request.task} does not pair target images with target questions (vqa and gqa do); give --target DIR alone`, { file: request.targetQuestionsFile, field: '--target-questions' });
  if (request.regionsFile && !adapter.takesRegions) throw new InputError(`--regions: ${request.task} does not read region boxes from a detections file (vqa and gqa do)`, { field: '--regions' });
  const regions = request.regionsFile ? await readDetectionFile(resolve(request.regionsFile)) : undefined;
  const needsTarget = methodNeeds(method).targetDomain;
  if (needsTarget && data.targetImages.length === 0 && !data.targetQuestions) {
    throw new InputError(`--method ${method.spec} aligns to a target domain: give --target DIR (a folder of unlabelled target images), or use a SynthScenes folder with its target domain`);
  }
  const tuning = encoderTuningOf(recipe);
  const tunes = tuningEnabled(tuning) && method.base !== 'zeroshot';
  method = resolveObjectivesForRun(method, { encoderTrains: tunes, trainBlocks: tuning.trainBlocks });
  const refitEpochs = recipe['head.refit_epochs'] ?? 0;
  // The refit builds its head on the tuned encoder's folder, whose object crops this run never encoded.
  if (refitEpochs > 0 && request.regionsFile) throw new InputError('--set head.refit_epochs with --regions is not wired yet: run the refit as its own run (vlbench run --model <run>/encoder --regions FILE)', { field: 'head.refit_epochs' });
  if (refitEpochs > 0 && !tunes) {
    throw new InputError('--set head.refit_epochs trains a new head on the encoder this run fine-tunes: set encoder.train_blocks above 0 too (on a frozen encoder, train longer with --epochs)', { field: 'head.refit_epochs' });
  }
  const training = trainingSettingsOf(recipe, { epochs: request.epochs ?? adapter.defaults?.epochs, batchSize: adapter.defaults?.batchSize, learningRate: adapter.defaults?.learningRate, seed: request.seed });
  const answersMinCount = recipe['answers.min_count'] === 'auto' ? undefined : recipe['answers.min_count'];
  const modelDir = resolve(request.modelDir ?? bundledModelDir());
  return { request, method, recipe, task, adapter, data, regions, tuning, tunes, refitEpochs, answersMinCount, modelDir, training, name: runName(request, method.spec, tunes ? tuning.trainBlocks : null) };
}

function encoderTuningOf(recipe: Recipe): EncoderTuningSettings {
  return {
    trainBlocks: recipe['encoder.train_blocks'] ?? ENCODER_TUNING_DEFAULTS.trainBlocks,
    towers: recipe['encoder.towers'] ?? ENCODER_TUNING_DEFAULTS.towers,
    lrScale: recipe['encoder.lr_scale'] ?? ENCODER_TUNING_DEFAULTS.lrScale,
  };
}

/**
 * The leaderboard name of a run: `--name`, else `<task>:<SPEC>`, with "(encoder: … tuned)" where
 * encoder blocks train (on a leaderboard it sits beside the frozen run of the same SPEC) and
 * "(oracle: target labels)" for SynthScenes' oracle; "(selected on evaluation)" is added to any
 * name of a run that chose its weights on its evaluation split. The one place a run is named: a run and the
 * merge of its shards (harness/shards.ts) must be named alike.
 */
export function runName(request: Pick<ResolvedRunRequest, 'task' | 'name' | 'trainDomain' | 'selectOnEvaluation'>, spec: string, tunedBlocks: number | 'all' | null): string {
  const tunedPart = tunedBlocks === null ? '' : ` (encoder: ${tunedBlocksLabel(tunedBlocks)} tuned)`;
  const name = request.name ?? `${request.task}:${spec}${tunedPart}${request.trainDomain === 'target' ? ' (oracle: target labels)' : ''}`;
  // Marked whatever the name: on every board and in every CSV, the row says its weights were chosen on what it reports.
  return request.selectOnEvaluation ? `${name} (selected on evaluation)` : name;
}

/** The name of a stored request (a shard's, at merge): parsed as `resolveRun` parses it, with nothing read. */
export function runNameOfRequest(stored: unknown): string {
  const request = runRequestSchema.parse(stored);
  const method = parseMethodSpec(request.method, request.sets);
  const tuning = encoderTuningOf(parseRunSettings(method.otherSettings));
  return runName(request, method.spec, tuningEnabled(tuning) && method.base !== 'zeroshot' ? tuning.trainBlocks : null);
}

/** Which encoder blocks train, in words: "last 1 block", "last 2 blocks", "all blocks" (run names and the demo's rows). */
export function tunedBlocksLabel(trainBlocks: number | 'all'): string {
  return trainBlocks === 'all' ? 'all blocks' : `last ${trainBlocks} block${trainBlocks === 1 ? '' : 's'}`;
}


/** The fusion a run builds, its patch-grid pooling, and the fusion of a refit head: the task's defaults under `--set fusion.*`. */
export interface ResolvedFusion {
  fusion: HeadSettings['fusion'];
  /** The refit head sees the tuned encoder as any frozen one: the fusion a frozen run would build. */
  refitFusion: HeadSettings['fusion'];
  imagePool: number;
}

/** `gridSide`: patches per side of the encoder's image grid (the default pooling must divide it). */
export function resolveFusion(plan: Pick<RunPlan, 'recipe' | 'adapter' | 'tunes'>, gridSide: number): ResolvedFusion {
  const { recipe, adapter } = plan;
  const imagePool = recipe['fusion.image_pool'] ?? adapter.defaults?.imagePool ?? (gridSide % FUSION_DEFAULTS.imagePool === 0 ? FUSION_DEFAULTS.imagePool : 1);
  const taskFusion = adapter.defaults?.fusion;
  // Input layer norms: on in every arm unless asked otherwise (issue 29: when they followed the
  // encoder, on only where blocks trained, "frozen vs tuned" also compared norm vs no norm).
  const inputNormSetting = recipe['fusion.input_norm'] ?? 'auto';
  const inputNorm = inputNormSetting === 'auto' ? (taskFusion?.inputNorm ?? true) : inputNormSetting === 'true';
  const resolveFlag = (setting: 'auto' | 'true' | 'false' | undefined, taskDefault: boolean | undefined) => ((setting ?? 'auto') === 'auto' ? (taskDefault ?? false) : setting === 'true');
  const tagContext = resolveFlag(recipe['fusion.tag_context'], taskFusion?.tagContext);
  const tagProduct = resolveFlag(recipe['fusion.tag_product'], taskFusion?.tagProduct);
  const boxSine = resolveFlag(recipe['fusion.box_sine'], taskFusion?.boxSine);
  const sharedPrefix = resolveFlag(recipe['fusion.shared_prefix'], taskFusion?.sharedPrefix);
  // Recorded only where it is on, so the hyperparameters of tasks without tags stay as they were.
  const kindSetting = recipe['fusion.kind'] ?? 'auto';
  const kind = kindSetting === 'auto' ? (taskFusion?.kind ?? 'transformer') : kindSetting;
  // Recorded only for the relational fusion, so the transformer's hyperparameters stay as they were; it always normalises its inputs.
  const relational = kind === 'relational' ? { kind, dropout: typeof recipe['fusion.dropout'] === 'number' ? recipe['fusion.dropout'] : (taskFusion?.dropout ?? 0), inputNorm: true } : {};
  const fusion = { hidden: recipe['fusion.hidden'] ?? taskFusion?.hidden ?? FUSION_DEFAULTS.hidden, layers: recipe['fusion.layers'] ?? taskFusion?.layers ?? FUSION_DEFAULTS.layers, heads: recipe['fusion.heads'] ?? taskFusion?.heads ?? FUSION_DEFAULTS.heads, inputNorm, ...(tagContext ? { tagContext } : {}), ...(tagProduct ? { tagProduct } : {}), ...(boxSine ? { boxSine } : {}), ...(sharedPrefix ? { sharedPrefix } : {}), ...relational };
  return { fusion, refitFusion: fusion, imagePool };
}

/**
 * The hyperparameters a run records (they group seeds on the leaderboard): the plan's, the
 * fusion's, the encoder's, and what the adapter resolved (`built`). Key order is part of the
 * record, so it stays as it was.
 */
export function runHyperparameters(plan: RunPlan, input: { engine: string; fusion: ResolvedFusion; built: Record<string, unknown>; selection: object | null }): Record<string, unknown> {
  const { method, request, tuning, tunes } = plan;
  const hyperparameters: Record<string, unknown> = {
    method: method.spec,
    objectives: Object.fromEntries(method.objectives.map((o) => [o.name, o.settings])),
    taskLoss: method.taskLoss,
    training: plan.training,
    fusion: { ...input.fusion.fusion, imagePool: input.fusion.imagePool },
    encoder: {
      folder: plan.modelDir,
      engine: input.engine,
      frozen: !tunes,
      trainBlocks: tunes ? tuning.trainBlocks : 0,
      ...(tunes ? { towers: tuning.towers, lrScale: tuning.lrScale, weightDecay: 'weights only (not embeddings, norms, biases, logit_scale)' } : {}),
    } as Record<string, unknown>,
    maxTrainExamples: request.maxTrainExamples ?? null,
    // Recorded only where given, so the records of whole-split runs keep their hyperparameters.
    ...(request.limit !== undefined ? { limit: request.limit } : {}),
    trainDomain: request.trainDomain ?? (plan.data.synthRoot ? 'source' : null),
    ...input.built,
    // Where the weights were chosen (issue 29): a held-out slice of training, a named split, or the evaluation split itself.
    ...(input.selection ? { selection: input.selection } : {}),
  };
  // Recorded only where it is on, so runs without a refit keep their hyperparameters.
  if (plan.refitEpochs > 0) hyperparameters.headRefit = { epochs: plan.refitEpochs, method: 'ft', fusion: { ...input.fusion.refitFusion, imagePool: input.fusion.imagePool } };
  return hyperparameters;
}
