import { basename, join, resolve } from 'node:path';
import { type AlignedEncoder } from '../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../models/encoders/load-encoder.ts';
import { methodNeeds, objectiveReportLines, type MethodSpec } from '../models/objectives/index.ts';
import { train, type TrainingProblem, type TrainingResult, type TrainingSettings } from '../models/train.ts';
import { recordedScoring } from '../leaderboard/run-record.ts';
import { selectBackend, describeBackend, type SelectedBackend } from '../models/backends/select.ts';
import { gitCommit, softwareVersions } from '../core/environment.ts';
import { InputError } from '../core/errors.ts';
import { extractImageFeatures, extractRegionFeatures, extractTextFeatures, poolImageTokenGrid, type FeatureTable } from '../models/features.ts';
import { EncoderTuning } from '../models/fine-tuning/encoder-tuning.ts';
import { saveTunedEncoder } from './tuned-encoder.ts';
import { describeSplit, holdOutByImage, limitSplit } from './run-data.ts';
import { SeededRandom } from '../core/random.ts';
import { startProgress } from '../core/progress.ts';
import type { LoadedSplit, Task } from '../core/types.ts';
import { RUN_TASKS, type RunSplits, type TaskAdapter } from './adapters/index.ts';
import { shardFolderSuffix, writeEvaluationShards } from './shards.ts';
import { checkLeaderboardUsable, checkWritableFolder } from './preflight.ts';
import { resolveFusion, resolveRun, runHyperparameters, tunedBlocksLabel, type ResolvedFusion, type RunPlan, type RunRequest } from './run-plan.ts';
import { RunFolder, type RunOutcome, type ScoredSplit } from './run-folder.ts';

export { RUN_TASKS };
export { runRequestSchema, tunedBlocksLabel, type ResolvedRunRequest, type RunRequest } from './run-plan.ts';
export type { RunOutcome, SplitResult } from './run-folder.ts';

/**
 * `vlbench run`: load the task, the encoder and the method; fine-tune (or not, for zero-shot);
 * predict every evaluation split; score with the official metric; write the run folder; record
 * the run in the leaderboard. The plan (harness/run-plan.ts) has checked the request and named
 * the run before anything here loads; the folder (harness/run-folder.ts) is `<id>.partial` until
 * complete, so an interrupted run never looks finished and `--resume` continues it from its last
 * training checkpoint. This file is the execution, in phases.
 */
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

/** Seconds spent per phase (timings.json and the record): a phase may be entered more than once. */
export class PhaseClock {
  readonly timings: Record<string, number> = {};
  async time<T>(phase: string, work: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await work();
    } finally {
      this.timings[phase] = (this.timings[phase] ?? 0) + (performance.now() - start) / 1000;
    }
  }
}

export async function executeRun(requestInput: RunRequest, hooks: RunHooks): Promise<RunOutcome> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const clock = new PhaseClock();

  // Plan: everything that can fail on bad input, before any work or any file is written.
  const plan = await resolveRun(requestInput);
  const { request, method, adapter, modelDir, training } = plan;
  // Where the run writes and records, before the model loads: a run must not train to fail at its first write or at its record.
  await checkWritableFolder(hooks.runsDir, '--out');
  if (hooks.db) await checkLeaderboardUsable(hooks.db);
  const backend = await selectBackend(request.backend);
  log(describeBackend(backend));
  const runsDir = resolve(hooks.runsDir);
  const folder = await RunFolder.open({ runsDir, request, spec: method.spec, suffix: request.shard ? shardFolderSuffix(request.shard) : '', resumeDir: hooks.resumeDir ? resolve(hooks.resumeDir) : undefined });

  let encoder: AlignedEncoder | undefined;
  let tunedEncoderInUse: AlignedEncoder | undefined;
  try {
    const cacheDir = hooks.cacheDir ?? join(runsDir, '.cache');
    const built = await buildRun(plan, backend, { cacheDir, log, clock });
    encoder = built.encoder;
    const { splits, selection, fusion, features, prepared } = built;
    const hyperparameters = runHyperparameters(plan, { engine: encoder.engine, fusion, built: prepared.hyperparameters, selection });
    // Which unlabelled target questions domain alignment paired with the target images (absent: the batch's own texts on them).
    if (splits.targetQuestions) hyperparameters.targetQuestions = { questions: splits.targetQuestions.examples.length, fingerprint: splits.targetQuestions.fingerprint };
    const trainingResult = prepared.problem
      ? await clock.time('train', () => trainWithProgress(prepared.problem!, training, { checkpointDir: folder.path('checkpoint'), resume: Boolean(hooks.resumeDir), interruptAfterStep: hooks.interruptAfterStep, log }))
      : null;
    // What each objective did; the run ends with a warning for any that stayed inert.
    const objectivesReport = objectiveReportLines(plan.method, trainingResult?.curve.map((point) => point.parts) ?? []);
    for (const line of objectivesReport.summaries) log(line);
    // The tuned encoder is an artifact: a Hugging Face folder `vlbench encode --model` and `vlbench run --model` load.
    // Its fingerprint differs per seed, so it stays out of the hyperparameters (they group seeds). It is a
    // fingerprint of the weights: the folder names no run, so a shard's encoder is the unsharded run's.
    let tunedEncoder: { folder: string; fingerprint: string } | undefined;
    if (features.encoderTuning) {
      const tuned = await saveTunedEncoder(features.encoderTuning.model, modelDir, folder.path('encoder'), { base: encoder.fingerprint });
      tunedEncoder = { folder: 'encoder', fingerprint: tuned.fingerprint };
      log(`tuned encoder: ${join(folder.finalDir, 'encoder')} (fingerprint ${tuned.fingerprint.slice(0, 12)})`);
    }
    // What predicts: the run's own head, or the refit's (which replaces it).
    let model: { prepared: PreparedModel; training: TrainingResult | null; dispose: () => void } = { prepared, training: trainingResult, dispose: () => (prepared.dispose(), features.encoderTuning?.dispose()) };
    if (plan.refitEpochs > 0) {
      model.dispose();
      const refit = await clock.time('refit', () => refitHead({ plan, backend, splits, cacheDir, fusion, encoderFolder: folder.path('encoder'), checkpointDir: folder.path('checkpoint-refit'), resume: Boolean(hooks.resumeDir), log }));
      tunedEncoderInUse = refit.encoder;
      model = { prepared: refit.prepared, training: refit.training, dispose: () => refit.prepared.dispose() };
      if (refit.training) await folder.writeJson('curve-refit.json', curveRows(refit.training));
    }

    // Predict and score every evaluation split (a shard writes its slice's rows instead: merge-shards scores them).
    const execution = { ...(backend.device ? { device: backend.device } : {}), dtype: 'float32' as const, batchSize: training.batchSize };
    if (request.shard) await clock.time('predict', () => writeEvaluationShards({ runDir: folder.partialDir, request, shard: request.shard!, adapter, model: model.prepared, splits: splits.evaluations, encoderFingerprint: encoder!.fingerprint, execution: { backend: backend.name, ...execution }, log }));
    const results = request.shard ? [] : await predictAndScore(plan, model.prepared, splits, folder, clock, log);
    model.dispose();

    // Write: the folder is complete, then renamed; only then is it recorded.
    // The run's own training (stage 1 where the head is refitted; the refit's is curve-refit.json).
    const curve = trainingResult ? curveRows(trainingResult) : [];
    await folder.writeJson('curve.json', curve);
    await folder.writeJson('config.json', { request, hyperparameters, backend: backend.name, model: { folder: modelDir, fingerprint: encoder.fingerprint }, ...(tunedEncoder ? { tunedEncoder } : {}), versions: softwareVersions(), gitCommit: gitCommit() });
    if (!request.shard) await folder.writeMetrics(results);
    await folder.writeJson('timings.json', clock.timings);
    await folder.finish();
    const splitResults = await folder.record(hooks.db, results, {
      name: plan.name,
      task: request.task,
      model: { name: basename(modelDir), fingerprint: encoder.fingerprint, ...(tunedEncoder ? { tunedFingerprint: tunedEncoder.fingerprint } : {}) },
      method: { spec: method.spec, hyperparameters: JSON.parse(JSON.stringify(hyperparameters)) },
      seed: request.seed,
      backend: backend.name,
      scoring: recordedScoring(request.scoring),
      execution,
      versions: { ...softwareVersions() },
      gitCommit: gitCommit(),
      timings: clock.timings,
      curve: curve.length ? curve : undefined,
    });
    for (const line of objectivesReport.warnings) log(line);
    return { runDir: folder.finalDir, name: plan.name, backend: backend.name, backendLine: describeBackend(backend), splits: splitResults, training: model.training, timings: clock.timings };
  } finally {
    await encoder?.dispose();
    await tunedEncoderInUse?.dispose();
  }
}

/** What `buildRun` loaded and built: the run up to its training, which has not started. */
export interface BuiltRun {
  /** The caller disposes it (after the prepared model). */
  encoder: AlignedEncoder;
  splits: RunSplits;
  selection: SelectionRecord | null;
  fusion: ResolvedFusion;
  features: { images: FeatureTable; texts: FeatureTable; encoderTuning?: EncoderTuning };
  prepared: PreparedModel;
}

/**
 * A run's load and build phases: the encoder, the splits, the features of everything the splits
 * need, and the adapter's problem (heads, fusion, trainable encoder blocks) under the objectives.
 * `executeRun` trains what this returns; bench/vcr-step.ts times single steps of it.
 */
export async function buildRun(plan: RunPlan, backend: SelectedBackend, options: { cacheDir: string; log: (line: string) => void; clock?: PhaseClock }): Promise<BuiltRun> {
  const { request, method, adapter, task, data, modelDir } = plan;
  const { cacheDir, log } = options;
  const clock = options.clock ?? new PhaseClock();
  const encoder = await clock.time('load_encoder', () => loadEncoder(modelDir, { backend }));
  try {
    log(`model: ${modelDir} (${encoder.engine}, fingerprint ${encoder.fingerprint.slice(0, 12)})`);
    const { splits, selection } = await clock.time('load_data', () => loadSplits(plan));
    const fusion = resolveFusion(plan, encoder.config.vision.image_size / encoder.config.vision.patch_size);
    const features = await encodeRunFeatures(plan, encoder, splits, fusion.imagePool, cacheDir, clock, log);
    const prepared = await adapter.build({
      task, method, splits, random: new SeededRandom(request.seed), log,
      head: { fusion: fusion.fusion, answersMinCount: plan.answersMinCount },
      images: features.images, texts: features.texts, targetImages: data.targetImages,
      preprocessing: encoder.preprocessing, maxTrainExamples: request.maxTrainExamples, encoder: features.encoderTuning, regions: plan.regions,
      encodeRegions: plan.regions && plan.recipe['fusion.region_features'] !== 'pool' ? async (objects) => (await clock.time('encode_regions', () => extractRegionFeatures(encoder, objects, { cacheRoot: cacheDir }))).table : undefined,
    });
    return { encoder, splits, selection, fusion, features, prepared };
  } catch (error) {
    await encoder.dispose();
    throw error;
  }
}

/**
 * The features the fusion reads: frozen towers' as ever (cached); a training tower's come from its
 * boundary in each step (EncoderTuning, which caches what lies below its first trainable block).
 */
async function encodeRunFeatures(plan: RunPlan, encoder: AlignedEncoder, splits: RunSplits, imagePool: number, cacheDir: string, clock: PhaseClock, log: (line: string) => void): Promise<{ images: FeatureTable; texts: FeatureTable; encoderTuning?: EncoderTuning }> {
  const { adapter, data, tuning } = plan;
  let encoderTuning: EncoderTuning | undefined;
  if (plan.tunes) {
    if (!encoder.trainable || !('model' in encoder)) throw new InputError(`--set encoder.train_blocks needs the tfjs engine (${encoder.engine} is inference only)`, { file: plan.modelDir, field: 'encoder.train_blocks' });
    const tfjsEncoder = encoder as AlignedEncoder & Parameters<typeof EncoderTuning.prepare>[0];
    encoderTuning = await clock.time('encode', () => EncoderTuning.prepare(tfjsEncoder, tuning, { ...runInputs(adapter, splits, data.targetImages), imagePool, cacheRoot: cacheDir }));
  }
  const encoded = await clock.time('encode', () => encodeEverything(adapter, encoder, splits, data.targetImages, cacheDir, { images: !encoderTuning?.trainsImages, texts: !encoderTuning?.trainsTexts }));
  const frozenImages = encoded.images ? poolImageTokenGrid(encoded.images, encoded.imageKeys, imagePool) : undefined;
  const { images, texts } = encoderTuning ? encoderTuning.fusionTables({ images: frozenImages, texts: encoded.texts }, encoded.imageKeys) : { images: frozenImages!, texts: encoded.texts! };
  log(`features: ${images.size} images (${encoderTuning?.trainsImages ? 'trainable blocks run in each step' : `${encoded.cacheHits} from the cache`}), ${texts.size} texts${encoderTuning ? `; encoder trains ${tunedBlocksLabel(tuning.trainBlocks)} of ${tuning.towers === 'both' ? 'both towers' : `the ${tuning.towers} tower`}` : ''}`);
  return { images, texts, encoderTuning };
}

/** Each evaluation split predicted, scored with the official metric and written (submission, per-example scores). */
async function predictAndScore(plan: RunPlan, model: PreparedModel, splits: RunSplits, folder: RunFolder, clock: PhaseClock, log: (line: string) => void): Promise<ScoredSplit[]> {
  const { task, adapter, request } = plan;
  const results: ScoredSplit[] = [];
  for (const split of splits.evaluations) {
    const predictions = await clock.time('predict', async () => model.predict(split));
    const report = task.score(split, predictions, request.scoring);
    const predictionsFile = await folder.writeScoredSplit(task, adapter, split, predictions, report);
    const controls = adapter.controls && splits.train ? adapter.controls(splits.train, split, predictions) : undefined;
    results.push({ split, report, predictionsFile, controls });
    log(`${split.split}: ${report.primary} = ${report.metrics[report.primary].toFixed(2)}`);
  }
  return results;
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
  plan: RunPlan;
  backend: SelectedBackend;
  splits: RunSplits;
  cacheDir: string;
  fusion: ResolvedFusion;
  encoderFolder: string;
  checkpointDir: string;
  resume: boolean;
  log: (line: string) => void;
}): Promise<{ encoder: AlignedEncoder; prepared: PreparedModel; training: TrainingResult | null }> {
  const { plan, splits } = input;
  const { adapter, request, data } = plan;
  const training: TrainingSettings = { ...plan.training, epochs: plan.refitEpochs };
  const encoder = await loadEncoder(input.encoderFolder, { backend: input.backend });
  try {
    const encoded = await encodeEverything(adapter, encoder, splits, data.targetImages, input.cacheDir);
    const images = poolImageTokenGrid(encoded.images!, encoded.imageKeys, input.fusion.imagePool);
    input.log(`head refit: ${training.epochs} epoch(s) of a new head on the tuned encoder, frozen (${encoded.cacheHits} image features from the cache)`);
    const prepared = await adapter.build({
      task: plan.task,
      method: { ...plan.method, spec: 'ft', objectives: [] },
      head: { fusion: input.fusion.refitFusion, answersMinCount: plan.answersMinCount },
      splits,
      images,
      texts: encoded.texts!,
      targetImages: data.targetImages,
      random: new SeededRandom(request.seed),
      preprocessing: encoder.preprocessing,
      maxTrainExamples: request.maxTrainExamples,
      encoder: undefined,
    });
    const result = prepared.problem ? await trainWithProgress(prepared.problem, training, { checkpointDir: input.checkpointDir, resume: input.resume }) : null;
    return { encoder, prepared, training: result };
  } catch (error) {
    await encoder.dispose();
    throw error;
  }
}

/** Where the run's validation came from, recorded in its hyperparameters (runs that selected differently are not one seed group). */
export interface SelectionRecord {
  validation: { split: string; fingerprint: string; rule?: string };
  /** Validation is an evaluation split (--select-on-evaluation): the weights were selected on the numbers reported. */
  onEvaluation: boolean;
  epochRule: TrainingSettings['epochRule'];
}

async function loadSplits(plan: RunPlan): Promise<{ splits: RunSplits; selection: SelectionRecord | null }> {
  const { task, adapter, data, method } = plan;
  // --limit cuts every split to its first N examples; validation is held out of the whole
  // training split first, so a smoke run validates on the same images as the full run.
  const limit = <E>(split: LoadedSplit<E>) => limitSplit(split, plan.request.limit);
  const load = async (options: Parameters<typeof task.load>[0]) => limit(await task.load(options));
  const trains = method.base !== 'zeroshot';
  // data.train is absent only for zero-shot runs (harness/run-data.ts), which never load it.
  const trainOptions = data.train;
  let train = trains && trainOptions ? await task.load(trainOptions) : null;
  if (trains && !trainOptions) throw new Error('a training run without a training split: resolveRunData should have refused it');
  let validation: LoadedSplit<unknown> | null = null;
  let selection: SelectionRecord | null = null;
  if (train) {
    if (data.validation.kind === 'split') {
      train = limit(train);
      validation = await load(data.validation.options);
      selection = { validation: { split: validation.split, fingerprint: validation.fingerprint }, onEvaluation: data.validation.onEvaluation, epochRule: plan.training.epochRule };
    } else {
      const whole = train;
      // The split's own checks (VCR: every example has its metadata) speak for the whole split before it is cut per example.
      adapter.imagesOf(whole);
      const cut = holdOutByImage(whole, (example) => adapter.imagesOf({ ...whole, examples: [example] })[0], data.validation.fraction);
      train = limit(cut.train);
      validation = limit(cut.validation);
      selection = { validation: { split: cut.validation.split, fingerprint: validation.fingerprint, rule: cut.rule }, onEvaluation: false, epochRule: plan.training.epochRule };
    }
  }
  const evaluations = [];
  for (const options of data.evaluations) evaluations.push(await load(options));
  let graphs = new Map<string, never>() as RunSplits['graphs'];
  // Tasks whose examples carry their own detections (VCR) build graphs from them and have no loader.
  if (train && trainOptions && methodNeeds(method).sceneGraphs && adapter.loadSceneGraphs) {
    graphs = await adapter.loadSceneGraphs(train, trainOptions, data.synthRoot);
    if (graphs.size === 0) throw new InputError(`--method ${method.spec} needs scene graphs (GQA's sceneGraphs file, or SynthScenes data); ${describeSplit(trainOptions)} has none`);
  }
  // Domain alignment pairs target images with target questions, read without their answers (run-data.ts).
  const targetQuestions = train && methodNeeds(method).targetDomain && data.targetQuestions ? await load(data.targetQuestions) : null;
  return { splits: { train, validation, evaluations, graphs, targetQuestions }, selection };
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
