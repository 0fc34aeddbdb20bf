import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { type AlignedEncoder } from '../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { FusionTransformer } from '../models/heads/fusion.ts';
import { objectiveSettings, parseMethodSpec, type MethodSpec } from '../models/objectives/index.ts';
import { removeCheckpoint, train, trainingSettingsSchema, type TrainingProblem, type TrainingResult, type TrainingSettings } from '../models/train.ts';
import { openLeaderboard, recordRun } from '../leaderboard/store.ts';
import type { RunRecord } from '../leaderboard/run-record.ts';
import { loadGqaSplit, type GqaExample, type GqaSceneGraph } from '../tasks/gqa/index.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';
import type { VcrExample } from '../tasks/vcr/load.ts';
import type { RetrievalImage } from '../tasks/retrieval/karpathy.ts';
import { synthPaths } from '../tasks/synth/index.ts';
import { selectBackend, describeBackend, type BackendChoice } from '../models/backends/select.ts';
import { gitCommit, softwareVersions } from '../core/environment.ts';
import { InputError } from '../core/errors.ts';
import { answerExamples, answerRows, answerTargets, answerVocabulary, AnswerHead, argmaxAnswer, defaultMinAnswerCount, exampleGraphSource, type AnswerExample } from './adapters/answer-classification.ts';
import { ContrastiveRetrieval, zeroShotSimilarities } from '../models/fine-tuning/contrastive-retrieval.ts';
import { FusionTraining } from '../models/fine-tuning/fusion-training.ts';
import { ChoiceHead, choiceLabel, choiceRows, choiceTexts, predictionItems, trainingItems, vcrPredictionsFromLogits } from './adapters/multiple-choice.ts';
import { gqaGraphVocabulary, gqaSceneGraph, vcrObjectVocabulary, vcrSceneGraph, vocabularySizes } from './adapters/scene-graphs.ts';
import { extractImageFeatures, extractTextFeatures, poolImageTokenGrid, type FeatureTable } from '../models/features.ts';
import { describeSplit, resolveRunData, type RunData } from './run-data.ts';
import { SeededRandom } from '../core/random.ts';
import { getTask } from '../tasks/registry.ts';
import { startProgress } from '../core/progress.ts';
import type { ImagePreprocessing } from '../models/image-pipeline.ts';
import type { LoadedSplit, LoadOptions, ScoreReport, Task } from '../core/types.ts';

/**
 * `vlbench run`: load the task, the encoder and the method; fine-tune (or not, for
 * zero-shot); predict every evaluation split; score with the official metric; write the run
 * folder; record the run in the leaderboard. The run folder is built as `<id>.partial` and
 * renamed when complete, so an interrupted run never looks finished; `--resume` continues a
 * `.partial` folder from its last training checkpoint.
 */
export const RUN_TASKS = ['vqa', 'gqa', 'vcr', 'retrieval'] as const;

export const runRequestSchema = z.object({
  task: z.enum(RUN_TASKS),
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
  /** SynthScenes: train on this domain's labels (target = the oracle reference). */
  trainDomain: z.enum(['source', 'target']).optional(),
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  name: z.string().optional(),
  /** Use at most this many training examples (quick checks). */
  maxTrainExamples: z.number().int().positive().optional(),
});
export type RunRequest = z.infer<typeof runRequestSchema>;

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
    'answers.min_count': z.coerce.number().int().positive().optional(),
  })
  .strict();
type Recipe = z.infer<typeof recipeSchema>;

/** Defaults sized for a CPU: the encoder is frozen and its features cached, so only the heads train. */
export const RUN_DEFAULTS = { epochs: 3, batch: 32, lr: 1e-3, weight_decay: 0.01, warmup: 0.1, 'fusion.hidden': 64, 'fusion.layers': 1, 'fusion.heads': 2, 'fusion.image_pool': 2 } as const;

function parseRecipe(settings: Record<string, string>): Recipe {
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
  const method = parseMethodSpec(request.method, request.sets);
  const recipe = parseRecipe(method.otherSettings);
  if (method.base === 'zeroshot' && request.task !== 'retrieval') throw new InputError(`--method zeroshot applies to retrieval only; ${request.task} needs a trained head (e.g. --method ft)`);
  if (request.task === 'retrieval' && (objectiveSettings(method, 'sg') || objectiveSettings(method, 'adv'))) {
    throw new InputError(`--method ${method.spec}: sg and adv act on the fusion's tokens, which retrieval does not use; retrieval takes zeroshot, ft, ft+mmd, ft+dann`);
  }
  const task = getTask(request.task);
  const data = await resolveRunData({ task: request.task, dataDir: request.dataDir, split: request.split ?? undefined, trainSplit: request.trainSplit, validationSplit: request.validationSplit, imagesDir: request.imagesDir, targetDir: request.targetDir, trainDomain: request.trainDomain });
  const needsTarget = Boolean(objectiveSettings(method, 'mmd') || objectiveSettings(method, 'dann'));
  if (needsTarget && data.targetImages.length === 0) {
    throw new InputError(`--method ${method.spec} aligns to a target domain: give --target DIR (a folder of unlabelled target images), or use a SynthScenes folder with its target domain`);
  }
  const modelDir = resolve(request.modelDir ?? bundledModelDir());
  const backend = await selectBackend(request.backend as BackendChoice);
  log(describeBackend(backend));
  const training: Partial<TrainingSettings> = {
    epochs: request.epochs ?? RUN_DEFAULTS.epochs,
    batchSize: recipe.batch ?? RUN_DEFAULTS.batch,
    learningRate: recipe.lr ?? RUN_DEFAULTS.lr,
    weightDecay: recipe.weight_decay ?? RUN_DEFAULTS.weight_decay,
    warmupFraction: recipe.warmup ?? RUN_DEFAULTS.warmup,
    earlyStopPatience: recipe.patience ?? 0,
    checkpointEvery: recipe.checkpoint_every ?? 20,
    seed: request.seed,
  };

  const runsDir = resolve(hooks.runsDir);
  const name = request.name ?? `${request.task}:${method.spec}${request.trainDomain === 'target' ? ' (oracle: target labels)' : ''}`;
  const runId = hooks.resumeDir ? basename(hooks.resumeDir).replace(/\.partial$/, '') : newRunFolderId(request, method.spec);
  const partialDir = hooks.resumeDir ? resolve(hooks.resumeDir) : join(runsDir, `${runId}.partial`);
  const finalDir = join(runsDir, runId);
  if (existsSync(finalDir)) throw new InputError('this run folder is already complete', { file: finalDir });
  await mkdir(partialDir, { recursive: true });
  await writeJson(join(partialDir, 'request.json'), request);

  let encoder: AlignedEncoder | undefined;
  try {
    encoder = await timed('load_encoder', () => loadEncoder(modelDir, { backend: request.backend as BackendChoice }));
    log(`model: ${modelDir} (${encoder.engine}, fingerprint ${encoder.fingerprint.slice(0, 12)})`);
    const splits = await timed('load_data', () => loadSplits(task, data, method));
    const cacheDir = hooks.cacheDir ?? join(runsDir, '.cache');
    const encoded = await timed('encode', () => encodeEverything(request.task, encoder!, splits, data.targetImages, cacheDir));
    const { texts, cacheHits } = encoded;
    const imagePool = recipe['fusion.image_pool'] ?? (Math.round(Math.sqrt(encoded.images.tokenCount - 1)) % RUN_DEFAULTS['fusion.image_pool'] === 0 ? RUN_DEFAULTS['fusion.image_pool'] : 1);
    const images = poolImageTokenGrid(encoded.images, encoded.imageKeys, imagePool);
    log(`features: ${images.size} images (${cacheHits} from the cache), ${texts.size} texts`);
    const random = new SeededRandom(request.seed);
    const hyperparameters: Record<string, unknown> = {
      method: method.spec,
      objectives: Object.fromEntries(method.objectives.map((o) => [o.name, o.settings])),
      taskLoss: method.taskLoss,
      training: trainingSettingsSchema.parse(training),
      fusion: { hidden: recipe['fusion.hidden'] ?? RUN_DEFAULTS['fusion.hidden'], layers: recipe['fusion.layers'] ?? RUN_DEFAULTS['fusion.layers'], heads: recipe['fusion.heads'] ?? RUN_DEFAULTS['fusion.heads'], imagePool },
      encoder: { folder: modelDir, engine: encoder.engine, frozen: true },
      maxTrainExamples: request.maxTrainExamples ?? null,
      trainDomain: request.trainDomain ?? (data.synthRoot ? 'source' : null),
    };
    const model = await timed('train', () =>
      trainModel(request, method, recipe, splits, images, texts, data.targetImages, random, training, hyperparameters, encoder!.preprocessing, {
        checkpointDir: join(partialDir, 'checkpoint'),
        resume: Boolean(hooks.resumeDir),
        interruptAfterStep: hooks.interruptAfterStep,
      }),
    );
    const results: { split: LoadedSplit<unknown>; report: ScoreReport; predictionsFile: string }[] = [];
    for (const split of splits.evaluations) {
      const predictions = await timed('predict', async () => model.predict(split));
      const report = task.score(split, predictions);
      const stem = split.split.replace(/[^A-Za-z0-9._-]+/g, '_');
      const submission = join(partialDir, 'predictions', `${stem}.${submissionExtension(request.task)}`);
      await mkdir(join(partialDir, 'predictions'), { recursive: true });
      await task.writeSubmission(split, predictions, submission);
      await writeJson(join(partialDir, 'scores', `${stem}.json`), { split: split.split, metrics: report.metrics, official: report.official, perExample: report.perExample });
      results.push({ split, report, predictionsFile: submission });
      log(`${split.split}: ${report.primary} = ${report.metrics[report.primary].toFixed(2)}`);
    }
    model.dispose();
    const curve = model.training?.curve.map((p) => ({ step: p.step, loss: p.loss, learningRate: p.learningRate, ...(p.validation !== undefined ? { validation: p.validation } : {}), ...p.parts })) ?? [];
    await writeJson(join(partialDir, 'curve.json'), curve);
    await writeJson(join(partialDir, 'config.json'), { request, hyperparameters, backend: backend.name, model: { folder: modelDir, fingerprint: encoder.fingerprint }, versions: softwareVersions(), gitCommit: gitCommit() });
    await writeJson(join(partialDir, 'metrics.json'), Object.fromEntries(results.map((r) => [r.split.split, r.report.metrics])));
    await writeJson(join(partialDir, 'timings.json'), timings);
    await removeCheckpoint(join(partialDir, 'checkpoint'));
    await rm(join(partialDir, 'checkpoint'), { recursive: true, force: true });
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
                name,
                task: request.task,
                taskVersion: split.taskVersion,
                split: split.split,
                splitFingerprint: split.fingerprint,
                metric: report.metric,
                metricVersion: report.metricVersion,
                primaryMetric: report.primary,
                model: { name: basename(modelDir), fingerprint: encoder.fingerprint },
                method: { spec: method.spec, hyperparameters: JSON.parse(JSON.stringify(hyperparameters)) },
                seed: request.seed,
                backend: backend.name,
                versions: { ...softwareVersions() },
                gitCommit: gitCommit(),
                timings,
                metrics: report.metrics,
                curve: curve.length ? curve : undefined,
                predictions: { path: finalPredictions, sha256: createHash('sha256').update(await readFile(finalPredictions)).digest('hex') },
                perExamplePath: join(finalDir, 'scores', `${basename(finalPredictions).replace(/\.[^.]+$/, '')}.json`),
              },
              report.perExample,
            )
          : null;
        splitResults.push({ split: split.split, report, record });
      }
    } finally {
      await store?.close();
    }
    return { runDir: finalDir, name, backend: backend.name, splits: splitResults, training: model.training, timings };
  } finally {
    await encoder?.dispose();
  }
}

function newRunFolderId(request: RunRequest, spec: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '').replace('T', '-');
  const label = `${request.task}-${spec.replace(/\+/g, '_')}${request.trainDomain === 'target' ? '-oracle' : ''}-s${request.seed}`;
  return `${stamp}-${label}-${process.pid}`;
}

function submissionExtension(task: string): string {
  return task === 'vcr' ? 'csv' : task === 'retrieval' ? 'npy' : 'json';
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomically(file, `${JSON.stringify(value, null, 2)}\n`);
}

interface RunSplits {
  train: LoadedSplit<unknown> | null;
  validation: LoadedSplit<unknown> | null;
  evaluations: LoadedSplit<unknown>[];
  /** GQA-format scene graphs by image id (SynthScenes VQA, GQA), for `sg`. */
  graphs: Map<string, GqaSceneGraph>;
}

async function loadSplits(task: Task, data: RunData, method: MethodSpec): Promise<RunSplits> {
  const trains = method.base !== 'zeroshot';
  const train = trains ? await task.load(data.train) : null;
  const validation = trains ? await task.load(data.validation) : null;
  const evaluations = [];
  for (const options of data.evaluations) evaluations.push(await task.load(options));
  const graphs = new Map<string, GqaSceneGraph>();
  if (objectiveSettings(method, 'sg') && (data.task === 'vqa' || data.task === 'gqa')) {
    await collectSceneGraphs(data.task, train as LoadedSplit<unknown>, data.train, data.synthRoot, graphs);
  }
  return { train, validation, evaluations, graphs };
}

/** GQA examples carry their graphs; SynthScenes VQA reads the GQA scene-graph file of the same split. */
async function collectSceneGraphs(task: string, train: LoadedSplit<unknown>, options: LoadOptions, synthRoot: string | undefined, graphs: Map<string, GqaSceneGraph>): Promise<void> {
  if (task === 'gqa') {
    for (const example of train.examples as GqaExample[]) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
  } else if (synthRoot) {
    const root = synthRoot;
    const gqa = await loadGqaSplit({ split: options.split, files: { questions: synthPaths.gqaQuestions(root, options.split), sceneGraphs: synthPaths.gqaSceneGraphs(root, options.split) }, imagesDir: join(synthPaths.imagesRoot(root), options.split) });
    for (const example of gqa.examples) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
  }
  if (graphs.size === 0) throw new InputError(`--method with sg needs scene graphs (GQA's sceneGraphs file, or SynthScenes data); ${describeSplit(options)} has none`);
}

function textsOf(task: string, split: LoadedSplit<unknown>): string[] {
  if (task === 'vqa' || task === 'gqa') return answerExamples(task, split.examples).map((e) => e.example.question);
  if (task === 'vcr') return (split.examples as VcrExample[]).flatMap((e) => predictionItems(e).flatMap(choiceTexts));
  return (split.examples as RetrievalImage[]).flatMap((image) => image.captions.map((c) => c.text));
}

function imagesOf(task: string, split: LoadedSplit<unknown>): string[] {
  if (task === 'retrieval') return (split.examples as RetrievalImage[]).map((image) => image.path);
  return (split.examples as { imagePath: string }[]).map((e) => e.imagePath);
}

async function encodeEverything(
  task: string,
  encoder: AlignedEncoder,
  splits: RunSplits,
  targetImages: readonly string[],
  cacheDir: string,
): Promise<{ images: FeatureTable; imageKeys: string[]; texts: FeatureTable; cacheHits: number }> {
  const all = [splits.train, splits.validation, ...splits.evaluations].filter((s): s is LoadedSplit<unknown> => s !== null);
  const imageKeys = [...new Set([...all.flatMap((s) => imagesOf(task, s)), ...(splits.train ? targetImages : [])])];
  const { table: images, cacheHits } = await extractImageFeatures(encoder, imageKeys, { cacheRoot: cacheDir });
  const texts = await extractTextFeatures(encoder, all.flatMap((s) => textsOf(task, s)), { cacheRoot: cacheDir });
  return { images, imageKeys, texts, cacheHits };
}

interface TrainedModel {
  training: TrainingResult | null;
  predict(split: LoadedSplit<unknown>): unknown;
  /** Frees the heads' tensors (a demo runs many models in one process). */
  dispose(): void;
}

async function trainModel(
  request: RunRequest,
  method: MethodSpec,
  recipe: Recipe,
  splits: RunSplits,
  images: FeatureTable,
  texts: FeatureTable,
  targetImages: readonly string[],
  random: SeededRandom,
  settings: Partial<TrainingSettings>,
  hyperparameters: Record<string, unknown>,
  preprocessing: ImagePreprocessing,
  hooks: { checkpointDir: string; resume: boolean; interruptAfterStep?: number },
): Promise<TrainedModel> {
  const limit = <T>(items: T[]): T[] => (request.maxTrainExamples ? items.slice(0, request.maxTrainExamples) : items);
  const progressHooks = (total: number) => {
    const progress = startProgress('training', total, ['loss', 'samples/s']);
    return {
      ...hooks,
      onStep: (point: { loss: number }, samplesPerSecond: number) => progress.tick(1, { loss: point.loss.toFixed(4), 'samples/s': samplesPerSecond.toFixed(1) }),
      done: () => progress.stop(),
    };
  };
  const stepsFor = (examples: number) => Math.ceil(examples / (settings.batchSize ?? RUN_DEFAULTS.batch)) * (settings.epochs ?? RUN_DEFAULTS.epochs);
  const trainWithProgress = async (problem: TrainingProblem): Promise<TrainingResult> => {
    const progress = progressHooks(stepsFor(problem.exampleCount));
    try {
      return await train(problem, settings, progress);
    } finally {
      progress.done();
    }
  };

  if (request.task === 'retrieval') {
    if (method.base === 'zeroshot') return { training: null, predict: (split) => zeroShotSimilarities(images, texts, split.examples as RetrievalImage[]), dispose: () => undefined };
    const trainImages = limit(splits.train!.examples as RetrievalImage[]);
    const model = new ContrastiveRetrieval(method, images, texts, targetImages, random);
    const variables = model.namedVariables();
    const problem: TrainingProblem = {
      variables,
      exampleCount: trainImages.length,
      computeGradients: (batch, context) => model.step(batch.map((i) => trainImages[i]), context),
      afterOptimizerStep: () => model.afterStep(),
      validate: async () => {
        return getTask('retrieval').score(splits.validation!, model.similarities(splits.validation!.examples as RetrievalImage[])).metrics.rsum;
      },
    };
    return { training: await trainWithProgress(problem), predict: (split) => model.similarities(split.examples as RetrievalImage[]), dispose: () => model.dispose() };
  }

  const fusion = new FusionTransformer(
    { imageDim: images.tokenDim, textDim: texts.tokenDim, hidden: recipe['fusion.hidden'] ?? RUN_DEFAULTS['fusion.hidden'], layers: recipe['fusion.layers'] ?? RUN_DEFAULTS['fusion.layers'], heads: recipe['fusion.heads'] ?? RUN_DEFAULTS['fusion.heads'] },
    random.fork('fusion'),
  );
  const task = getTask(request.task);
  const validationScore = (predict: (split: LoadedSplit<unknown>) => unknown) => async () => {
    const report = task.score(splits.validation!, predict(splits.validation!));
    return report.metrics[report.primary];
  };

  if (request.task === 'vqa' || request.task === 'gqa') {
    const trainExamples = limit(answerExamples(request.task, splits.train!.examples));
    const minCount = recipe['answers.min_count'] ?? defaultMinAnswerCount(trainExamples.length);
    const vocabulary = answerVocabulary(trainExamples, minCount);
    if (vocabulary.length === 0) throw new InputError(`no answer is seen ${minCount} times in the training split; lower --set answers.min_count`);
    hyperparameters.answers = { minCount, vocabularySize: vocabulary.length };
    const targets = answerTargets(trainExamples, vocabulary);
    const sg = objectiveSettings(method, 'sg');
    const graphVocabulary = sg ? gqaGraphVocabulary(splits.graphs.values()) : undefined;
    const graphs = sg && graphVocabulary ? trainExamples.map((e) => {
      const source = exampleGraphSource(e, splits.graphs);
      return source ? gqaSceneGraph(source, graphVocabulary, preprocessing) : { objects: [] };
    }) : undefined;
    const composed = new FusionTraining({ method, images, texts, fusion, sceneGraphSizes: graphVocabulary ? vocabularySizes(graphVocabulary) : undefined, targetImageKeys: [...targetImages], random });
    const head = new AnswerHead(fusion.hidden, vocabulary, random);
    const variables = new Map([...composed.namedVariables(), ...head.namedVariables()]);
    const predict = (split: LoadedSplit<unknown>) => {
      const examples = answerExamples(request.task as 'vqa' | 'gqa', split.examples);
      const logits = composed.predictLogits(answerRows(examples), head, 1);
      return new Map(examples.map((e, i) => [e.example.questionId, argmaxAnswer(logits[i], vocabulary)] as [number | string, string]));
    };
    const problem: TrainingProblem = {
      variables,
      exampleCount: trainExamples.length,
      computeGradients: (batch, context) => {
        head.useTargets(batch.map((i) => targets[i]));
        return composed.step(answerRows(batch.map((i) => trainExamples[i]), graphs ? batch.map((i) => graphs[i]) : undefined), head, variables, context);
      },
      validate: validationScore(predict),
    };
    return { training: await trainWithProgress(problem), predict, dispose: () => (composed.dispose(), head.dispose(), fusion.dispose()) };
  }

  // VCR
  const examples = limit(splits.train!.examples as VcrExample[]).filter((e) => e.answerLabel !== undefined && e.rationaleLabel !== undefined);
  const items = trainingItems(examples);
  const sg = objectiveSettings(method, 'sg');
  const graphVocabulary = sg ? vcrObjectVocabulary(examples) : undefined;
  const graphs = graphVocabulary ? items.map((item) => vcrSceneGraph(item.example, graphVocabulary, preprocessing)) : undefined;
  const composed = new FusionTraining({ method, images, texts, fusion, sceneGraphSizes: graphVocabulary ? vocabularySizes(graphVocabulary) : undefined, targetImageKeys: [...targetImages], random });
  const head = new ChoiceHead(fusion.hidden, random, method.taskLoss.mc);
  const variables = new Map([...composed.namedVariables(), ...head.namedVariables()]);
  const predict = (split: LoadedSplit<unknown>) => {
    const list = split.examples as VcrExample[];
    const logits = composed.predictLogits(choiceRows(list.flatMap(predictionItems), preprocessing), head, 4);
    return vcrPredictionsFromLogits(list, logits);
  };
  const problem: TrainingProblem = {
    variables,
    exampleCount: items.length,
    computeGradients: (batch, context) => {
      head.useLabels(batch.map((i) => choiceLabel(items[i])));
      return composed.step(choiceRows(batch.map((i) => items[i]), preprocessing, graphs ? batch.map((i) => graphs[i]) : undefined), head, variables, context);
    },
    validate: validationScore(predict),
  };
  return { training: await trainWithProgress(problem), predict, dispose: () => (composed.dispose(), head.dispose(), fusion.dispose()) };
}
