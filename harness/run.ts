import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { type AlignedEncoder } from '../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { FUSION_DEFAULTS } from '../models/heads/fusion.ts';
import { methodNeeds, objectiveReportLines, parseMethodSpec, resolveObjectivesForRun, type MethodSpec } from '../models/objectives/index.ts';
import { removeCheckpoint, train, TRAINING_DEFAULTS, trainingSettingsSchema, type TrainingProblem, type TrainingResult, type TrainingSettings } from '../models/train.ts';
import { openLeaderboard, recordRun } from '../leaderboard/store.ts';
import { recordedScoring, type RunRecord } from '../leaderboard/run-record.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { BACKEND_CHOICES, selectBackend, describeBackend, type BackendChoice } from '../models/backends/select.ts';
import { gitCommit, softwareVersions } from '../core/environment.ts';
import { InputError } from '../core/errors.ts';
import { extractImageFeatures, extractRegionFeatures, extractTextFeatures, poolImageTokenGrid, type FeatureTable } from '../models/features.ts';
import { ENCODER_TUNING_DEFAULTS, EncoderTuning, tuningEnabled, type EncoderTuningSettings } from '../models/fine-tuning/encoder-tuning.ts';
import { saveTunedEncoder } from './tuned-encoder.ts';
import { splitRecordFields } from './split-record.ts';
import { describeSplit, resolveRunData, type RunData } from './run-data.ts';
import { SeededRandom } from '../core/random.ts';
import { getTask } from '../tasks/registry.ts';
import { readDetectionFile } from '../tasks/detections.ts';
import { startProgress } from '../core/progress.ts';
import type { LoadedSplit, ScoreReport, Task } from '../core/types.ts';
import { getAdapter, RUN_TASKS, type RunSplits, type TaskAdapter } from './adapters/index.ts';
import type { HeadSettings } from './adapters/adapter.ts';
import { shardFolderSuffix, shardSpecSchema, writeEvaluationShards } from './shards.ts';
import { checkLeaderboardUsable, checkTaskLossSettings, checkWritableFolder } from './preflight.ts';

export { RUN_TASKS };

/**
 * `vlbench run`: load the task, the encoder and the method; fine-tune (or not, for
 * zero-shot); predict every evaluation split; score with the official metric; write the run
 * folder; record the run in the leaderboard. The run folder is built as `<id>.partial` and
 * renamed when complete, so an interrupted run never looks finished; `--resume` continues a
 * `.partial` folder from its last training checkpoint.
 */
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
  targetDir: z.string().optional(),
  /** Real datasets: unlabelled target-domain questions (the task's questions format) that mmd/dann pair with the --target images. */
  targetQuestionsFile: z.string().min(1).optional(),
  /** SynthScenes: train on this domain's labels (target = the oracle reference). */
  trainDomain: z.enum(['source', 'target']).optional(),
  backend: z.enum(BACKEND_CHOICES).default('auto'),
  name: z.string().optional(),
  /** VQA/GQA: COCO-style detections whose boxes become the fusion's object tokens (tasks/detections.ts). */
  regionsFile: z.string().min(1).optional(),
  /** Use at most this many training examples (quick checks). */
  maxTrainExamples: z.number().int().positive().optional(),
  /** Options of the official metric (VQA's legacy normalisation, retrieval folds); part of the comparability key. */
  scoring: z.object({ legacyNormalization: z.boolean().optional(), folds: z.number().int().positive().optional() }).strict().default({}),
  /** Sharded evaluation: train as usual, predict only this slice of each evaluation split, score at `vlbench merge-shards` (harness/shards.ts). */
  shard: shardSpecSchema.optional(),
});
/** What a caller gives (defaults may be left out); `ResolvedRunRequest` is what the run uses and stores. */
export type RunRequest = z.input<typeof runRequestSchema>;
export type ResolvedRunRequest = z.output<typeof runRequestSchema>;

/** `--set` keys that are not objective settings: the training recipe and the head sizes. */
const recipeSchema = z
  .object({
    lr: z.coerce.number().positive().optional(),
    batch: z.coerce.number().int().positive().optional(),
    weight_decay: z.coerce.number().nonnegative().optional(),
    warmup: z.coerce.number().min(0).max(1).optional(),
    patience: z.coerce.number().int().nonnegative().optional(),
    checkpoint_every: z.coerce.number().int().nonnegative().optional(),
    'fusion.hidden': z.coerce.number().int().positive().optional(),
    'fusion.layers': z.coerce.number().int().nonnegative().optional(),
    'fusion.heads': z.coerce.number().int().positive().optional(),
    'fusion.image_pool': z.coerce.number().int().positive().optional(),
    'fusion.input_norm': z.enum(['auto', 'true', 'false']).optional(),
    'fusion.tag_context': z.enum(['auto', 'true', 'false']).optional(),
    'fusion.tag_product': z.enum(['auto', 'true', 'false']).optional(),
    'fusion.box_sine': z.enum(['auto', 'true', 'false']).optional(),
    'fusion.kind': z.enum(['auto', 'relational', 'transformer']).optional(),
    'fusion.region_features': z.enum(['auto', 'crop', 'pool']).optional(),
    'fusion.dropout': z.union([z.literal('auto'), z.coerce.number().min(0).max(0.9)]).optional(),
    'answers.min_count': z.coerce.number().int().positive().optional(),
    'encoder.train_blocks': z
      .string()
      .regex(/^(all|\d+)$/, 'expected a whole number of blocks or all')
      .transform((v) => (v === 'all' ? ('all' as const) : Number(v)))
      .optional(),
    'encoder.towers': z.enum(['both', 'vision', 'text']).optional(),
    'encoder.lr_scale': z.coerce.number().positive().optional(),
    'head.refit_epochs': z.coerce.number().int().nonnegative().optional(),
  })
  .strict();
type Recipe = z.infer<typeof recipeSchema>;

/** The defaults `--set` overrides, for `--help`: each comes from the one place that owns it (the training loop, the fusion). */
export const RUN_DEFAULTS = {
  epochs: TRAINING_DEFAULTS.epochs,
  batch: TRAINING_DEFAULTS.batchSize,
  lr: TRAINING_DEFAULTS.learningRate,
  weight_decay: TRAINING_DEFAULTS.weightDecay,
  warmup: TRAINING_DEFAULTS.warmupFraction,
  patience: TRAINING_DEFAULTS.earlyStopPatience,
  checkpoint_every: TRAINING_DEFAULTS.checkpointEvery,
  'fusion.hidden': FUSION_DEFAULTS.hidden,
  'fusion.layers': FUSION_DEFAULTS.layers,
  'fusion.heads': FUSION_DEFAULTS.heads,
  'fusion.image_pool': FUSION_DEFAULTS.imagePool,
  /** auto: the task's own default where it sets one (VCR: on), else on when the encoder trains and off on a frozen one (see the fusion's inputNorm). */
  'fusion.input_norm': 'auto',
  /** auto (this, tag_product and box_sine): the task's own default (VCR sets one; tasks without detection tags have nothing to apply it to). */
  'fusion.tag_context': 'auto',
  'fusion.tag_product': 'auto',
  'fusion.box_sine': 'auto',
  /** auto: the task's own fusion (VQA, GQA: relational, with object tokens, counts and pairs; VCR: transformer). */
  'fusion.kind': 'auto',
  /** With --regions: crop (each box's crop through the frozen image encoder, cached) or pool (the patch tokens inside the box); auto: crop. */
  'fusion.region_features': 'auto',
  /** auto: the task's own (VQA, GQA: 0.1); dropout inside the relational fusion while training. */
  'fusion.dropout': 'auto',
  'encoder.train_blocks': ENCODER_TUNING_DEFAULTS.trainBlocks,
  'encoder.towers': ENCODER_TUNING_DEFAULTS.towers,
  'encoder.lr_scale': ENCODER_TUNING_DEFAULTS.lrScale,
  /** Epochs of a new head trained on the encoder this run fine-tuned, frozen, after the run's training; 0: none (see {@link refitHead}). */
  'head.refit_epochs': 0,
} as const;

export function parseRecipe(settings: Record<string, string>): Recipe {
  const parsed = recipeSchema.safeParse(settings);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    throw new InputError(`unknown --set key ${issue.keys.map((k) => `"${k}"`).join(', ')}; run settings are ${Object.keys(recipeSchema.shape).join(', ')}, objective settings are <objective>.<key> (see vlbench run --help)`);
  }
  throw new InputError(`--set ${issue.path.join('.')}: ${issue.message}`);
}

export interface SplitResult {
  split: string;
  report: ScoreReport;
  record: RunRecord | null;
}

export interface RunOutcome {
  runDir: string;
  name: string;
  backend: string;
  /** The backend as `vlbench run` prints it (library, threads, or why the BLAS kernels were not used); absent for merged shards. */
  backendLine?: string;
  splits: SplitResult[];
  training: TrainingResult | null;
  timings: Record<string, number>;
}

export interface RunHooks {
  /** Where the leaderboard lives; recording is skipped when null. */
  db: string | null;
  runsDir: string;
  /** Continue this `.partial` run folder. */
  resumeDir?: string;
  /** Test hook: stop as a kill would after this training step (after its checkpoint). */
  interruptAfterStep?: number;
  /** Feature cache folder (default: <runsDir>/.cache). */
  cacheDir?: string;
  log?: (line: string) => void;
}

export async function executeRun(requestInput: RunRequest, hooks: RunHooks): Promise<RunOutcome> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const timings: Record<string, number> = {};
  const timed = async <T>(phase: string, work: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      timings[phase] = (timings[phase] ?? 0) + (performance.now() - start) / 1000;
    }
  };

  // Resolve everything that can fail on bad input before any work or any file is written.
  const request = runRequestSchema.parse(requestInput);
  let method = parseMethodSpec(request.method, request.sets);
  const recipe = parseRecipe(method.otherSettings);
  const adapter = getAdapter(request.task);
  const unsupported = adapter.unsupportedMethod(method);
  if (unsupported) throw new InputError(unsupported);
  checkTaskLossSettings(request.task, method, request.sets);
  // Refused before any training: a shard of a task without per-example rows could not be merged.
  if (request.shard && !adapter.predictionRows) throw new InputError(`--shard: ${request.task} has no per-example prediction rows to merge; run it unsharded`, { field: '--shard' });
  const task = getTask(request.task);
  const data = await resolveRunData({ task: request.task, dataDir: request.dataDir, split: request.split ?? undefined, trainSplit: request.trainSplit, validationSplit: request.validationSplit, imagesDir: request.imagesDir, targetDir: request.targetDir, targetQuestionsFile: request.targetQuestionsFile, trainDomain: request.trainDomain });
  if (request.targetQuestionsFile && !adapter.takesTargetQuestions) throw new InputError(`--target-questions: ${request.task} does not pair target images with target questions (vqa and gqa do); give --target DIR alone`, { file: request.targetQuestionsFile, field: '--target-questions' });
  if (request.regionsFile && !adapter.takesRegions) throw new InputError(`--regions: ${request.task} does not read region boxes from a detections file (vqa and gqa do)`, { field: '--regions' });
  // Read and checked before the encoder loads: a malformed file costs nothing.
  const regions = request.regionsFile ? await readDetectionFile(resolve(request.regionsFile)) : undefined;
  const needsTarget = methodNeeds(method).targetDomain;
  if (needsTarget && data.targetImages.length === 0 && !data.targetQuestions) {
    throw new InputError(`--method ${method.spec} aligns to a target domain: give --target DIR (a folder of unlabelled target images), or use a SynthScenes folder with its target domain`);
  }
  const tuning: EncoderTuningSettings = {
    trainBlocks: recipe['encoder.train_blocks'] ?? ENCODER_TUNING_DEFAULTS.trainBlocks,
    towers: recipe['encoder.towers'] ?? ENCODER_TUNING_DEFAULTS.towers,
    lrScale: recipe['encoder.lr_scale'] ?? ENCODER_TUNING_DEFAULTS.lrScale,
  };
  const tunes = tuningEnabled(tuning) && method.base !== 'zeroshot';
  if (tunes && !adapter.tunesEncoder) throw new InputError(`--set encoder.train_blocks=${tuning.trainBlocks}: fine-tuning the encoder is not wired for ${request.task} yet; use encoder.train_blocks=0 (heads on the frozen encoder)`, { field: 'encoder.train_blocks' });
  method = resolveObjectivesForRun(method, { encoderTrains: tunes, trainBlocks: tuning.trainBlocks });
  const refitEpochs = recipe['head.refit_epochs'] ?? 0;
  // The refit builds its head on the tuned encoder's folder, whose object crops this run never encoded.
  if (refitEpochs > 0 && request.regionsFile) throw new InputError('--set head.refit_epochs with --regions is not wired yet: run the refit as its own run (vlbench run --model <run>/encoder --regions FILE)', { field: 'head.refit_epochs' });
  if (refitEpochs > 0 && !tunes) {
    throw new InputError('--set head.refit_epochs trains a new head on the encoder this run fine-tunes: set encoder.train_blocks above 0 too (on a frozen encoder, train longer with --epochs)', { field: 'head.refit_epochs' });
  }
  // Where the run writes and records, before the model loads: a run must not train to fail at its first write or at its record.
  await checkWritableFolder(hooks.runsDir, '--out');
  if (hooks.db) await checkLeaderboardUsable(hooks.db);
  const modelDir = resolve(request.modelDir ?? bundledModelDir());
  const backend = await selectBackend(request.backend as BackendChoice);
  log(describeBackend(backend));
  const training: TrainingSettings = trainingSettingsSchema.parse({
    epochs: request.epochs ?? adapter.defaults?.epochs,
    batchSize: recipe.batch ?? adapter.defaults?.batchSize,
    learningRate: recipe.lr ?? adapter.defaults?.learningRate,
    weightDecay: recipe.weight_decay,
    warmupFraction: recipe.warmup,
    earlyStopPatience: recipe.patience,
    checkpointEvery: recipe.checkpoint_every,
    seed: request.seed,
  });

  const runsDir = resolve(hooks.runsDir);
  // A fine-tuned run says so in its default name: on a leaderboard it sits beside the frozen run of the same SPEC.
  const tunedPart = !tunes ? '' : ` (encoder: ${tunedBlocksLabel(tuning.trainBlocks)} tuned)`;
  const name = request.name ?? `${request.task}:${method.spec}${tunedPart}${request.trainDomain === 'target' ? ' (oracle: target labels)' : ''}`;
  const runId = hooks.resumeDir ? basename(hooks.resumeDir).replace(/\.partial$/, '') : newRunFolderId(runsDir, request, method.spec, request.shard ? shardFolderSuffix(request.shard) : '');
  const partialDir = hooks.resumeDir ? resolve(hooks.resumeDir) : join(runsDir, `${runId}.partial`);
  const finalDir = join(runsDir, runId);
  if (existsSync(finalDir)) throw new InputError('this run folder is already complete', { file: finalDir });
  if (hooks.resumeDir) await checkSameRequest(join(partialDir, 'request.json'), request);
  await mkdir(partialDir, { recursive: true });
  await writeJson(join(partialDir, 'request.json'), request);

  let encoder: AlignedEncoder | undefined;
  let tunedEncoderInUse: AlignedEncoder | undefined;
  try {
    encoder = await timed('load_encoder', () => loadEncoder(modelDir, { backend: request.backend as BackendChoice }));
    log(`model: ${modelDir} (${encoder.engine}, fingerprint ${encoder.fingerprint.slice(0, 12)})`);
    const splits = await timed('load_data', () => loadSplits(task, adapter, data, method));
    const cacheDir = hooks.cacheDir ?? join(runsDir, '.cache');
    const gridSide = encoder.config.vision.image_size / encoder.config.vision.patch_size;
    const imagePool = recipe['fusion.image_pool'] ?? adapter.defaults?.imagePool ?? (gridSide % FUSION_DEFAULTS.imagePool === 0 ? FUSION_DEFAULTS.imagePool : 1);
    let encoderTuning: EncoderTuning | undefined;
    if (tunes) {
      if (!encoder.trainable || !('model' in encoder)) throw new InputError(`--set encoder.train_blocks needs the tfjs engine (${encoder.engine} is inference only)`, { file: modelDir, field: 'encoder.train_blocks' });
      const tfjsEncoder = encoder as AlignedEncoder & Parameters<typeof EncoderTuning.prepare>[0];
      encoderTuning = await timed('encode', () => EncoderTuning.prepare(tfjsEncoder, tuning, { ...runInputs(adapter, splits, data.targetImages), imagePool, cacheRoot: cacheDir }));
    }
    // Frozen towers' features as ever (cached); a training tower's come from its boundary in each step.
    const encoded = await timed('encode', () => encodeEverything(adapter, encoder!, splits, data.targetImages, cacheDir, { images: !encoderTuning?.trainsImages, texts: !encoderTuning?.trainsTexts }));
    const frozenImages = encoded.images ? poolImageTokenGrid(encoded.images, encoded.imageKeys, imagePool) : undefined;
    const { images, texts } = encoderTuning ? encoderTuning.fusionTables({ images: frozenImages, texts: encoded.texts }, encoded.imageKeys) : { images: frozenImages!, texts: encoded.texts! };
    const cacheHits = encoded.cacheHits;
    log(`features: ${images.size} images (${encoderTuning?.trainsImages ? 'trainable blocks run in each step' : `${cacheHits} from the cache`}), ${texts.size} texts${encoderTuning ? `; encoder trains ${tunedBlocksLabel(tuning.trainBlocks)} of ${tuning.towers === 'both' ? 'both towers' : `the ${tuning.towers} tower`}` : ''}`);
    const random = new SeededRandom(request.seed);
    const taskFusion = adapter.defaults?.fusion;
    // Input layer norms: the task's default where it has one (VCR, issue 13); else on with a training
    // encoder and off on a frozen one, which keeps its recorded predictions (issue 12).
    const inputNormSetting = recipe['fusion.input_norm'] ?? 'auto';
    const inputNormOf = (encoderTrains: boolean) => (inputNormSetting === 'auto' ? (taskFusion?.inputNorm ?? encoderTrains) : inputNormSetting === 'true');
    const inputNorm = inputNormOf(Boolean(encoderTuning));
    const resolveFlag = (setting: 'auto' | 'true' | 'false' | undefined, taskDefault: boolean | undefined) => ((setting ?? 'auto') === 'auto' ? (taskDefault ?? false) : setting === 'true');
    const tagContext = resolveFlag(recipe['fusion.tag_context'], taskFusion?.tagContext);
    const tagProduct = resolveFlag(recipe['fusion.tag_product'], taskFusion?.tagProduct);
    const boxSine = resolveFlag(recipe['fusion.box_sine'], taskFusion?.boxSine);
    // Recorded only where it is on, so the hyperparameters of tasks without tags stay as they were.
    const kindSetting = recipe['fusion.kind'] ?? 'auto';
    const kind = kindSetting === 'auto' ? (taskFusion?.kind ?? 'transformer') : kindSetting;
    // Recorded only for the relational fusion, so the transformer's hyperparameters stay as they were; it always normalises its inputs.
    const relational = kind === 'relational' ? { kind, dropout: typeof recipe['fusion.dropout'] === 'number' ? recipe['fusion.dropout'] : (taskFusion?.dropout ?? 0), inputNorm: true } : {};
    const fusion = { hidden: recipe['fusion.hidden'] ?? taskFusion?.hidden ?? FUSION_DEFAULTS.hidden, layers: recipe['fusion.layers'] ?? taskFusion?.layers ?? FUSION_DEFAULTS.layers, heads: recipe['fusion.heads'] ?? taskFusion?.heads ?? FUSION_DEFAULTS.heads, inputNorm, ...(tagContext ? { tagContext } : {}), ...(tagProduct ? { tagProduct } : {}), ...(boxSine ? { boxSine } : {}), ...relational };
    const prepared = await adapter.build({
      task,
      method,
      head: { fusion, answersMinCount: recipe['answers.min_count'] },
      splits,
      images,
      texts,
      targetImages: data.targetImages,
      random,
      preprocessing: encoder.preprocessing,
      maxTrainExamples: request.maxTrainExamples,
      encoder: encoderTuning,
      regions,
      encodeRegions: regions && recipe['fusion.region_features'] !== 'pool' ? async (objects) => (await timed('encode_regions', () => extractRegionFeatures(encoder!, objects, { cacheRoot: cacheDir }))).table : undefined,
      log,
    });
    const hyperparameters: Record<string, unknown> = {
      method: method.spec,
      objectives: Object.fromEntries(method.objectives.map((o) => [o.name, o.settings])),
      taskLoss: method.taskLoss,
      training,
      fusion: { ...fusion, imagePool },
      encoder: {
        folder: modelDir,
        engine: encoder.engine,
        frozen: !encoderTuning,
        trainBlocks: encoderTuning ? tuning.trainBlocks : 0,
        ...(encoderTuning ? { towers: tuning.towers, lrScale: tuning.lrScale, weightDecay: 'weights only (not embeddings, norms, biases, logit_scale)' } : {}),
      } as Record<string, unknown>,
      maxTrainExamples: request.maxTrainExamples ?? null,
      trainDomain: request.trainDomain ?? (data.synthRoot ? 'source' : null),
      // Which unlabelled target questions domain alignment paired with the target images (absent: the batch's own texts on them).
      ...(splits.targetQuestions ? { targetQuestions: { questions: splits.targetQuestions.examples.length, fingerprint: splits.targetQuestions.fingerprint } } : {}),
      ...prepared.hyperparameters,
    };
    // The refit head sees the tuned encoder as any frozen one: the fusion a frozen run would build.
    const refitFusion = { ...fusion, inputNorm: inputNormOf(false) };
    // Recorded only where it is on, so runs without a refit keep their hyperparameters.
    if (refitEpochs > 0) hyperparameters.headRefit = { epochs: refitEpochs, method: 'ft', fusion: { ...refitFusion, imagePool } };
    const trainingResult = prepared.problem
      ? await timed('train', () =>
          trainWithProgress(prepared.problem!, training, { checkpointDir: join(partialDir, 'checkpoint'), resume: Boolean(hooks.resumeDir), interruptAfterStep: hooks.interruptAfterStep, log }),
        )
      : null;
    // What each objective did; the run ends with a warning for any that stayed inert.
    const objectivesReport = objectiveReportLines(method, trainingResult?.curve.map((point) => point.parts) ?? []);
    for (const line of objectivesReport.summaries) log(line);
    // The tuned encoder is an artifact: a Hugging Face folder `vlbench encode --model` and `vlbench run --model` load.
    // Its fingerprint differs per seed, so it stays out of the hyperparameters (they group seeds).
    let tunedEncoder: { folder: string; fingerprint: string } | undefined;
    if (encoderTuning) {
      const tuned = await saveTunedEncoder(encoderTuning.model, modelDir, join(partialDir, 'encoder'), { run: runId, base: encoder.fingerprint });
      tunedEncoder = { folder: 'encoder', fingerprint: tuned.fingerprint };
      log(`tuned encoder: ${join(finalDir, 'encoder')} (fingerprint ${tuned.fingerprint.slice(0, 12)})`);
    }
    // What predicts: the run's own head, or the refit's (which replaces it).
    let model: { prepared: PreparedModel; training: TrainingResult | null; dispose: () => void } = { prepared, training: trainingResult, dispose: () => (prepared.dispose(), encoderTuning?.dispose()) };
    if (refitEpochs > 0) {
      model.dispose();
      const refit = await timed('refit', () =>
        refitHead({
          adapter, task, method, splits, targetImages: data.targetImages, cacheDir, request, training: { ...training, epochs: refitEpochs },
          encoderFolder: join(partialDir, 'encoder'), fusion: refitFusion, imagePool, answersMinCount: recipe['answers.min_count'],
          checkpointDir: join(partialDir, 'checkpoint-refit'), resume: Boolean(hooks.resumeDir), log,
        }),
      );
      tunedEncoderInUse = refit.encoder;
      model = { prepared: refit.prepared, training: refit.training, dispose: () => refit.prepared.dispose() };
      if (refit.training) await writeJson(join(partialDir, 'curve-refit.json'), curveRows(refit.training));
    }
    const results: { split: LoadedSplit<unknown>; report: ScoreReport; predictionsFile: string; controls?: Record<string, number> }[] = [];
    // A shard writes per-example rows of its slice instead of scores: merge-shards scores the whole split (harness/shards.ts).
    if (request.shard) await timed('predict', () => writeEvaluationShards({ runDir: partialDir, request, shard: request.shard!, adapter, model: model.prepared, splits: splits.evaluations, encoderFingerprint: encoder!.fingerprint, execution: { backend: backend.name, ...(backend.device ? { device: backend.device } : {}), dtype: 'float32', batchSize: training.batchSize }, log }));
    for (const split of request.shard ? [] : splits.evaluations) {
      const predictions = await timed('predict', async () => model.prepared.predict(split));
      const report = task.score(split, predictions, request.scoring);
      const stem = split.split.replace(/[^A-Za-z0-9._-]+/g, '_');
      const submission = join(partialDir, 'predictions', `${stem}.${adapter.submissionExtension}`);
      await mkdir(join(partialDir, 'predictions'), { recursive: true });
      await task.writeSubmission(split, predictions, submission);
      await writeJson(join(partialDir, 'scores', `${stem}.json`), { split: split.split, metrics: report.metrics, official: report.official, perExample: report.perExample });
      const controls = adapter.controls && splits.train ? adapter.controls(splits.train, split, predictions) : undefined;
      results.push({ split, report, predictionsFile: submission, controls });
      log(`${split.split}: ${report.primary} = ${report.metrics[report.primary].toFixed(2)}`);
    }
    model.dispose();
    // The run's own training (stage 1 where the head is refitted; the refit's is curve-refit.json).
    const curve = trainingResult ? curveRows(trainingResult) : [];
    await writeJson(join(partialDir, 'curve.json'), curve);
    await writeJson(join(partialDir, 'config.json'), { request, hyperparameters, backend: backend.name, model: { folder: modelDir, fingerprint: encoder.fingerprint }, ...(tunedEncoder ? { tunedEncoder } : {}), versions: softwareVersions(), gitCommit: gitCommit() });
    // The floors (e.g. VQA's per-question-type prior) sit beside the scores, under `controls`, where the task has them.
    if (!request.shard) await writeJson(join(partialDir, 'metrics.json'), Object.fromEntries(results.map((r) => [r.split.split, r.controls ? { ...r.report.metrics, controls: r.controls } : r.report.metrics])));
    await writeJson(join(partialDir, 'timings.json'), timings);
    for (const checkpoint of ['checkpoint', 'checkpoint-refit']) {
      await removeCheckpoint(join(partialDir, checkpoint));
      await rm(join(partialDir, checkpoint), { recursive: true, force: true });
    }
    await rename(partialDir, finalDir);

    // The folder is complete before anything enters the leaderboard: a failed write to the
    // database leaves a finished run that `vlbench leaderboard add` can still record.
    const splitResults: SplitResult[] = [];
    const store = hooks.db ? await openLeaderboard(hooks.db, { create: true }) : null;
    try {
      for (const { split, report, predictionsFile } of results) {
        const finalPredictions = predictionsFile.replace(partialDir, finalDir);
        const record = store
          ? await recordRun(
              store,
              {
                ...(await splitRecordFields(runId, finalDir, split, report, finalPredictions)),
                name,
                task: request.task,
                model: { name: basename(modelDir), fingerprint: encoder.fingerprint, ...(tunedEncoder ? { tunedFingerprint: tunedEncoder.fingerprint } : {}) },
                method: { spec: method.spec, hyperparameters: JSON.parse(JSON.stringify(hyperparameters)) },
                seed: request.seed,
                backend: backend.name,
                scoring: recordedScoring(request.scoring),
                execution: { ...(backend.device ? { device: backend.device } : {}), dtype: 'float32', batchSize: training.batchSize },
                versions: { ...softwareVersions() },
                gitCommit: gitCommit(),
                timings,
                curve: curve.length ? curve : undefined,
              },
              report.perExample,
            )
          : null;
        splitResults.push({ split: split.split, report, record });
      }
    } finally {
      await store?.close();
    }
    for (const line of objectivesReport.warnings) log(line);
    return { runDir: finalDir, name, backend: backend.name, backendLine: describeBackend(backend), splits: splitResults, training: model.training, timings };
  } finally {
    await encoder?.dispose();
    await tunedEncoderInUse?.dispose();
  }
}

function curveRows(result: TrainingResult): ({ step: number; loss: number } & Record<string, number>)[] {
  return result.curve.map((p) => ({ step: p.step, loss: p.loss, learningRate: p.learningRate, ...(p.validation !== undefined ? { validation: p.validation } : {}), ...p.parts }));
}

type PreparedModel = Awaited<ReturnType<TaskAdapter['build']>>;

/**
 * `head.refit_epochs`: after the encoder has trained, a new head (the task loss alone, fresh
 * weights from the run's seed) trains on that encoder frozen, and predicts. The head that trained
 * beside the moving encoder learns little of what the encoder learned: on SynthScenes the refit
 * head beat the frozen oracle by 4.1 points on the target where the run's own head gained ~1
 * (README, "Fine-tuning the encoder"). It is exactly `vlbench run --model <run>/encoder --method ft
 * --epochs N` with the run's seed and settings, done in the run, so that one record (and one seed
 * group) holds it; a test checks the two agree.
 */
async function refitHead(input: {
  adapter: TaskAdapter;
  task: Task;
  method: MethodSpec;
  splits: RunSplits;
  targetImages: readonly string[];
  cacheDir: string;
  request: ResolvedRunRequest;
  training: TrainingSettings;
  encoderFolder: string;
  fusion: HeadSettings['fusion'];
  imagePool: number;
  answersMinCount: number | undefined;
  checkpointDir: string;
  resume: boolean;
  log: (line: string) => void;
}): Promise<{ encoder: AlignedEncoder; prepared: PreparedModel; training: TrainingResult | null }> {
  const { adapter, splits, request } = input;
  const encoder = await loadEncoder(input.encoderFolder, { backend: request.backend as BackendChoice });
  try {
    const encoded = await encodeEverything(adapter, encoder, splits, input.targetImages, input.cacheDir);
    const images = poolImageTokenGrid(encoded.images!, encoded.imageKeys, input.imagePool);
    input.log(`head refit: ${input.training.epochs} epoch(s) of a new head on the tuned encoder, frozen (${encoded.cacheHits} image features from the cache)`);
    const prepared = await adapter.build({
      task: input.task,
      method: { ...input.method, spec: 'ft', objectives: [] },
      head: { fusion: input.fusion, answersMinCount: input.answersMinCount },
      splits,
      images,
      texts: encoded.texts!,
      targetImages: input.targetImages,
      random: new SeededRandom(request.seed),
      preprocessing: encoder.preprocessing,
      maxTrainExamples: request.maxTrainExamples,
      encoder: undefined,
    });
    const training = prepared.problem ? await trainWithProgress(prepared.problem, input.training, { checkpointDir: input.checkpointDir, resume: input.resume }) : null;
    return { encoder, prepared, training };
  } catch (error) {
    await encoder.dispose();
    throw error;
  }
}

/**
 * A resumed run must be the run that was interrupted: any changed setting (a learning rate, an
 * objective's weight, the seed, the data) would make its checkpoint and its result mean
 * nothing, so it is refused by name. Only where the leaderboard puts the result may differ.
 */
async function checkSameRequest(file: string, request: ResolvedRunRequest): Promise<void> {
  let stored: unknown;
  try {
    stored = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new InputError('not an interrupted run folder (no readable request.json)', { file });
  }
  const previous = runRequestSchema.parse(stored);
  const changed: string[] = [];
  const keys = new Set([...Object.keys(previous), ...Object.keys(request)]);
  for (const key of [...keys].sort()) {
    if (key === 'name') continue;
    const before = (previous as Record<string, unknown>)[key];
    const now = (request as Record<string, unknown>)[key];
    if (key === 'sets') {
      const setKeys = new Set([...Object.keys(before as object), ...Object.keys(now as object)]);
      for (const setKey of [...setKeys].sort()) {
        const a = (before as Record<string, string>)[setKey];
        const b = (now as Record<string, string>)[setKey];
        if (a !== b && setKey !== 'checkpoint_every') changed.push(`--set ${setKey} (${a ?? 'default'} → ${b ?? 'default'})`);
      }
    } else if (JSON.stringify(before) !== JSON.stringify(now)) {
      changed.push(`${key} (${JSON.stringify(before) ?? 'default'} → ${JSON.stringify(now) ?? 'default'})`);
    }
  }
  if (changed.length) throw new InputError(`a resumed run must keep the interrupted run's settings; changed: ${changed.join(', ')}`, { file });
}

/**
 * `<time>-<task>-<method>-s<seed>-<pid>[<suffix>]`. The time has one-second resolution and the
 * pid tells processes apart; two runs of the same request in one process within a second (a fast
 * zero-shot run does that) would share the name, so a taken name gets a counter.
 */
function newRunFolderId(runsDir: string, request: ResolvedRunRequest, spec: string, suffix: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '').replace('T', '-');
  const label = `${request.task}-${spec.replace(/\+/g, '_')}${request.trainDomain === 'target' ? '-oracle' : ''}-s${request.seed}`;
  const base = `${stamp}-${label}-${process.pid}`;
  const taken = (id: string) => existsSync(join(runsDir, id)) || existsSync(join(runsDir, `${id}.partial`));
  let id = `${base}${suffix}`;
  for (let n = 2; taken(id); n++) id = `${base}-${n}${suffix}`;
  return id;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomically(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function loadSplits(task: Task, adapter: TaskAdapter, data: RunData, method: MethodSpec): Promise<RunSplits> {
  const trains = method.base !== 'zeroshot';
  const train = trains ? await task.load(data.train) : null;
  const validation = trains ? await task.load(data.validation) : null;
  const evaluations = [];
  for (const options of data.evaluations) evaluations.push(await task.load(options));
  let graphs = new Map<string, never>() as RunSplits['graphs'];
  // Tasks whose examples carry their own detections (VCR) build graphs from them and have no loader.
  if (train && methodNeeds(method).sceneGraphs && adapter.loadSceneGraphs) {
    graphs = await adapter.loadSceneGraphs(train, data.train, data.synthRoot);
    if (graphs.size === 0) throw new InputError(`--method ${method.spec} needs scene graphs (GQA's sceneGraphs file, or SynthScenes data); ${describeSplit(data.train)} has none`);
  }
  // Domain alignment pairs target images with target questions, read without their answers (run-data.ts).
  const targetQuestions = train && methodNeeds(method).targetDomain && data.targetQuestions ? await task.load(data.targetQuestions) : null;
  return { train, validation, evaluations, graphs, targetQuestions };
}

/** Every image (target images too when training) and every text the run's splits need. */
function runInputs(adapter: TaskAdapter, splits: RunSplits, targetImages: readonly string[]): { imageKeys: string[]; texts: string[] } {
  const all = [splits.train, splits.validation, ...splits.evaluations, splits.targetQuestions ?? null].filter((s): s is LoadedSplit<unknown> => s !== null);
  return { imageKeys: [...new Set([...all.flatMap((s) => adapter.imagesOf(s)), ...(splits.train ? targetImages : [])])], texts: all.flatMap((s) => adapter.textsOf(s)) };
}

/** Frozen features of the towers asked for (a training tower is encoded from its boundary instead). */
async function encodeEverything(
  adapter: TaskAdapter,
  encoder: AlignedEncoder,
  splits: RunSplits,
  targetImages: readonly string[],
  cacheDir: string,
  towers: { images: boolean; texts: boolean } = { images: true, texts: true },
): Promise<{ images?: FeatureTable; imageKeys: string[]; texts?: FeatureTable; cacheHits: number }> {
  const { imageKeys, texts: allTexts } = runInputs(adapter, splits, targetImages);
  const imageFeatures = towers.images ? await extractImageFeatures(encoder, imageKeys, { cacheRoot: cacheDir }) : undefined;
  const texts = towers.texts ? await extractTextFeatures(encoder, allTexts, { cacheRoot: cacheDir }) : undefined;
  return { images: imageFeatures?.table, imageKeys, texts, cacheHits: imageFeatures?.cacheHits ?? 0 };
}

/** Trains with a progress bar on a terminal (quiet otherwise). */
async function trainWithProgress(problem: TrainingProblem, settings: TrainingSettings, hooks: { checkpointDir: string; resume: boolean; interruptAfterStep?: number; log?: (line: string) => void }): Promise<TrainingResult> {
  const total = Math.ceil(problem.exampleCount / settings.batchSize) * settings.epochs;
  const progress = startProgress('training', total, ['loss', 'samples/s']);
  try {
    return await train(problem, settings, {
      ...hooks,
      onStep: (point: { loss: number }, samplesPerSecond: number) => progress.tick(1, { loss: point.loss.toFixed(4), 'samples/s': samplesPerSecond.toFixed(1) }),
    });
  } finally {
    progress.stop();
  }
}

/** Which encoder blocks train, in words: "last 1 block", "last 2 blocks", "all blocks" (run names and the demo's rows). */
export function tunedBlocksLabel(trainBlocks: number | 'all'): string {
  return trainBlocks === 'all' ? 'all blocks' : `last ${trainBlocks} block${trainBlocks === 1 ? '' : 's'}`;
}
