import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { describeBackend, parseBackendChoice, selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { toPreprocessorConfig } from '../../models/image-pipeline.ts';
import { startProgress } from '../../core/progress.ts';
import { SeededRandom } from '../../core/random.ts';
import { VLBENCH_VERSION } from '../../core/version.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { synthTrainingTexts } from '../../tasks/synth/training-texts.ts';
import { readModelPreprocessing } from '../../models/encoders/aligned-encoder.ts';
import { writeSafetensors } from '../../models/encoders/safetensors.ts';
import { wordLevelVocabulary, writeWordLevelTokenizer } from '../../models/encoders/word-level-tokenizer.ts';
import {
  PRETRAIN_CONFIG_NAMES,
  loadPretrainingPairs,
  pretrainClip,
  pretrainClipConfig,
  pretrainPreprocessing,
  type PretrainConfigName,
} from '../../models/pretrain.ts';
import type { TrainingSettings } from '../../models/train.ts';
import { loadKarpathySplit } from '../../tasks/retrieval/index.ts';
import { SYNTH_DOMAINS, readSynthManifest, synthPaths, type SynthDomain } from '../../tasks/synth/index.ts';

export interface PretrainFlags {
  data?: string;
  out?: string;
  config?: string;
  init?: string;
  domain?: string;
  epochs?: string;
  batch?: string;
  seed?: string;
  lr?: string;
  weightDecay?: string;
  backend?: string;
  resume?: boolean;
  checkpointEvery?: string;
  dtype?: string;
}

/** What `vlbench-recipe.json` records: enough to rerun the exact training and to check what data it saw. */
export interface PretrainRecipe {
  vlbench: string;
  command: string;
  config: PretrainConfigName | 'init';
  init: string | null;
  seed: number;
  data: { folder: string; manifestSha256: string; generatorVersion: string; domain: SynthDomain; split: 'train'; images: number; captions: number };
  settings: Partial<TrainingSettings>;
  /** How model.safetensors stores the weights. */
  dtype: 'f32' | 'f16';
  backend: string;
  steps: number;
  /** Mean InfoNCE over the last 10% of steps (a single batch is noisy). */
  finalLoss: number;
  lastStepLoss: number;
  logitScale: number;
  seconds: number;
  samplesPerSecond: number;
  resumedFromStep: number | null;
  /** Loss every few steps, for the training curve. */
  curve: Array<{ step: number; loss: number; learningRate: number }>;
}

export interface PretrainOutcome {
  folder: string;
  recipe: PretrainRecipe;
}

/**
 * `vlbench pretrain`: contrastive (CLIP) pretraining on a SynthScenes folder's retrieval
 * captions, writing a complete Hugging Face model folder.
 *
 *   vlbench pretrain --data SYNTH_DIR --out MODEL_DIR [--config tiny|small] [--init MODEL_DIR]
 *                    [--epochs E] [--batch B] [--seed S] [--lr X] [--backend B] [--resume]
 */
export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('pretrain a CLIP contrastively (symmetric InfoNCE) on a SynthScenes folder; writes a Hugging Face model folder')
    .requiredOption('--data <dir>', 'SynthScenes folder (vlbench synth)')
    .requiredOption('--out <dir>', 'model folder to write (must not exist); checkpoints go to <dir>.partial/ until it is complete')
    .option('--config <name>', `model size: ${PRETRAIN_CONFIG_NAMES.join(' | ')} (default small)`)
    .option('--init <dir>', 'continue from this model folder (its config and tokenizer) instead of fresh weights')
    .option('--domain <name>', `which domain's train split to learn from: ${SYNTH_DOMAINS.join(' | ')}`, 'source')
    .option('--epochs <n>', 'passes over the training images', '10')
    .option('--batch <n>', 'image-caption pairs per step (the InfoNCE negatives)', '64')
    .option('--seed <n>', 'seed of initialisation, batch order and caption draws', '0')
    .option('--lr <x>', 'peak learning rate (AdamW, 10% linear warmup, cosine decay)', '0.001')
    .option('--weight-decay <x>', 'AdamW weight decay (matrices only)', '0.1')
    .option('--checkpoint-every <n>', 'steps between checkpoints', '25')
    .option('--backend <name>', 'tfjs backend: auto | tensorflow | wasm | cpu', 'auto')
    .option('--dtype <type>', 'how model.safetensors stores the weights: f32 | f16 (half the size; training is always float32)', 'f32')
    .option('--resume', 'continue the interrupted run whose checkpoint is in <out>.partial/')
    .action(async (flags: PretrainFlags) => {
      const { folder, recipe } = await runPretrain(flags, (line) => process.stdout.write(`${line}\n`), process.argv.slice(2));
      process.stdout.write(
        `wrote ${folder}: ${recipe.steps} steps in ${recipe.seconds.toFixed(0)} s (${recipe.samplesPerSecond.toFixed(1)} samples/s), final loss ${recipe.finalLoss.toFixed(4)}, logit scale ${recipe.logitScale.toFixed(2)}\n`,
      );
    });
}

function positiveInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InputError(`expected a positive integer, got ${JSON.stringify(value)}`, { field: flag });
  return n;
}

function positiveNumber(flag: string, value: string | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) throw new InputError(`expected a ${allowZero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(value)}`, { field: flag });
  return n;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify(value, null, 2) + '\n');
  await rename(temporary, file);
}

/** The work of `vlbench pretrain`, callable from code (tests pass `interruptAfterStep` to simulate a kill). */
export async function runPretrain(
  flags: PretrainFlags,
  log: (line: string) => void = () => {},
  argv: readonly string[] = [],
  testHooks: { interruptAfterStep?: number } = {},
): Promise<PretrainOutcome> {
  if (!flags.data) throw new InputError('--data is required (a SynthScenes folder)', { field: '--data' });
  if (!flags.out) throw new InputError('--out is required (the model folder to write)', { field: '--out' });
  const dataDir = resolve(flags.data);
  const outDir = resolve(flags.out);
  const configName = (flags.config ?? 'small') as PretrainConfigName;
  if (!(PRETRAIN_CONFIG_NAMES as readonly string[]).includes(configName)) throw new InputError(`unknown config "${flags.config}"; expected one of ${PRETRAIN_CONFIG_NAMES.join(', ')}`, { field: '--config' });
  const domain = (flags.domain ?? 'source') as SynthDomain;
  if (!(SYNTH_DOMAINS as readonly string[]).includes(domain)) throw new InputError(`unknown domain "${flags.domain}"; expected one of ${SYNTH_DOMAINS.join(', ')}`, { field: '--domain' });
  const seed = flags.seed === undefined ? 0 : Number(flags.seed);
  if (!/^\d+$/.test(String(flags.seed ?? '0').trim()) || !Number.isSafeInteger(seed) || seed > 2 ** 32 - 1) throw new InputError(`expected an integer from 0 to 4294967295, got ${JSON.stringify(flags.seed)}`, { field: '--seed' });
  const settings: Partial<TrainingSettings> = {
    epochs: positiveInteger('--epochs', flags.epochs, 10),
    batchSize: positiveInteger('--batch', flags.batch, 64),
    learningRate: positiveNumber('--lr', flags.lr, 1e-3),
    weightDecay: positiveNumber('--weight-decay', flags.weightDecay, 0.1, true),
    checkpointEvery: positiveInteger('--checkpoint-every', flags.checkpointEvery, 25),
    warmupFraction: 0.1,
    schedule: 'cosine',
    maxGradNorm: 1,
    seed,
  };
  if ((settings.batchSize ?? 0) < 2) throw new InputError('a contrastive batch needs at least 2 pairs', { field: '--batch' });
  const backendChoice = parseBackendChoice(flags.backend ?? 'auto');
  const dtype = flags.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new InputError(`expected f32 or f16, got ${JSON.stringify(flags.dtype)}`, { field: '--dtype' });
  if (flags.init !== undefined && flags.config !== undefined) throw new InputError('--init brings its own model size; drop --config', { field: '--config' });
  if (existsSync(outDir)) throw new InputError('the model folder already exists; choose another --out or remove it', { file: outDir, field: '--out' });
  if (!existsSync(dirname(outDir))) throw new InputError('the parent folder of --out does not exist', { file: dirname(outDir), field: '--out' });
  const partialDir = `${outDir}.partial`;
  const checkpointDir = join(partialDir, 'checkpoint');
  const runFile = join(partialDir, 'run.json');
  if (existsSync(partialDir) && !flags.resume) {
    throw new InputError(`an interrupted run left ${partialDir}: pass --resume to continue it, or remove that folder to start over`, { file: partialDir });
  }
  if (flags.resume && !existsSync(runFile)) throw new InputError(`nothing to resume: ${runFile} does not exist`, { file: partialDir, field: '--resume' });

  const manifest = await readSynthManifest(dataDir);
  if (!manifest.counts[domain]) throw new InputError(`the SynthScenes folder has no ${domain} domain (generated: ${Object.keys(manifest.counts).join(', ')})`, { file: dataDir, field: '--domain' });
  const manifestSha256 = createHash('sha256').update(await readFile(synthPaths.manifest(dataDir))).digest('hex');
  const split = await loadKarpathySplit({ split: 'train', files: { annotations: synthPaths.retrieval(dataDir, domain) }, imagesDir: synthPaths.imagesRoot(dataDir) });
  const captions = split.examples.map((image) => image.captions.map((c) => c.text));
  const captionCount = captions.reduce((sum, list) => sum + list.length, 0);

  // The run's identity: a resumed run must be the same run, or its checkpoint means nothing.
  const identity = { data: dataDir, manifestSha256, domain, config: flags.init ? 'init' : configName, init: flags.init ? resolve(flags.init) : null, settings };
  if (flags.resume) {
    const previous = JSON.parse(await readFile(runFile, 'utf8')) as { identity: unknown };
    if (JSON.stringify(previous.identity) !== JSON.stringify(identity)) {
      throw new InputError(`--resume with other options or data than the interrupted run (${JSON.stringify(previous.identity)})`, { file: runFile });
    }
  }
  const backend = await selectBackend(backendChoice);
  log(describeBackend(backend));

  await mkdir(partialDir, { recursive: true });
  const modelDir = join(partialDir, 'model');
  await mkdir(modelDir, { recursive: true });
  let model: ClipModel;
  if (flags.init) {
    const initDir = resolve(flags.init);
    model = await ClipModel.load(initDir);
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) {
      const file = join(initDir, name);
      if (!existsSync(file)) throw new InputError(`${name} is missing from the --init model folder`, { file: initDir, field: '--init' });
      await writeFile(join(modelDir, name), await readFile(file));
    }
  } else {
    // Questions and rationales are in the vocabulary too: a frozen text encoder must tell them apart when fine-tuned.
    const vocabulary = wordLevelVocabulary([...captions.flat(), ...(await synthTrainingTexts(dataDir))]);
    const config = pretrainClipConfig(configName, vocabulary);
    model = ClipModel.initialise(config, new SeededRandom(seed).fork('init'));
    await writeWordLevelTokenizer(modelDir, vocabulary, config.text.max_position_embeddings);
    await writeJson(join(modelDir, 'preprocessor_config.json'), toPreprocessorConfig(pretrainPreprocessing(config.vision.image_size)));
  }
  try {
    await writeJson(runFile, { identity });
    const tokenizer = await ClipTokenizer.load(modelDir, model.config.text.max_position_embeddings);
    const preprocessing = await readModelPreprocessing(modelDir, model.config);
    checkCaptionLengths(tokenizer, captions, synthPaths.retrieval(dataDir, domain));

    const decoding = startProgress('decode', split.examples.length);
    const pairs = await loadPretrainingPairs(
      split.examples.map((image, i) => ({ path: image.path, captions: captions[i] })),
      preprocessing,
      (count) => decoding.tick(count),
    );
    decoding.stop();

    const totalSteps = Math.ceil(split.examples.length / settings.batchSize!) * settings.epochs!;
    log(`pretraining ${model.config.vision.image_size} px CLIP on ${split.examples.length} ${domain} images (${captionCount} captions): ${totalSteps} steps of ${settings.batchSize}`);
    const bar = startProgress('pretrain', totalSteps, ['loss', 'samples/s']);
    let shown = 0;
    const result = await pretrainClip(model, tokenizer, pairs, settings, {
      checkpointDir,
      resume: flags.resume === true,
      interruptAfterStep: testHooks.interruptAfterStep,
      onStep(point, samplesPerSecond) {
        bar.tick(point.step - shown, { loss: point.loss.toFixed(4), 'samples/s': samplesPerSecond.toFixed(1) });
        shown = point.step;
      },
    });
    bar.stop();

    const tail = result.curve.slice(-Math.max(1, Math.round(result.curve.length / 10)));
    const every = Math.max(1, Math.floor(result.curve.length / 200));
    const recipe: PretrainRecipe = {
      vlbench: VLBENCH_VERSION,
      command: ['vlbench', ...argv].join(' '),
      config: flags.init ? 'init' : configName,
      init: identity.init,
      seed,
      data: { folder: dataDir, manifestSha256, generatorVersion: manifest.generatorVersion, domain, split: 'train', images: split.examples.length, captions: captionCount },
      settings,
      dtype,
      backend: backend.name,
      steps: result.steps,
      finalLoss: tail.reduce((sum, p) => sum + p.loss, 0) / tail.length,
      lastStepLoss: result.curve[result.curve.length - 1]?.loss ?? NaN,
      logitScale: Math.exp(model.logitScale.dataSync()[0]),
      seconds: result.seconds,
      samplesPerSecond: result.samplesPerSecond,
      resumedFromStep: result.resumedFromStep,
      curve: result.curve.filter((_, i) => i % every === 0 || i === result.curve.length - 1).map((p) => ({ step: p.step, loss: p.loss, learningRate: p.learningRate })),
    };
    await model.save(modelDir, { vlbench: VLBENCH_VERSION });
    if (dtype === 'f16') await writeSafetensors(join(modelDir, 'model.safetensors'), await model.exportTensors(), { dtype: 'F16', metadata: { format: 'pt', vlbench: VLBENCH_VERSION } });
    await writeJson(join(modelDir, 'vlbench-recipe.json'), recipe);
    // The finished folder appears in one rename; only then does the checkpoint go.
    await rename(modelDir, outDir);
    await rm(partialDir, { recursive: true, force: true });
    return { folder: outDir, recipe };
  } finally {
    model.dispose();
  }
}

/** A caption longer than the context would lose its end silently: refuse the data instead. */
function checkCaptionLengths(tokenizer: ClipTokenizer, captions: string[][], file: string): void {
  captions.forEach((list, image) =>
    list.forEach((caption, k) => {
      const length = tokenizer.encodeOne(caption).length;
      if (length > tokenizer.maxLength) {
        throw new InputError(`caption has ${length} tokens, more than the model's context of ${tokenizer.maxLength}`, { file, record: `train image ${image}, caption ${k}` });
      }
    }),
  );
}

/** Whether a folder holds an interrupted pretraining run. */
export function hasPartialRun(outDir: string): boolean {
  const partial = `${resolve(outDir)}.partial`;
  return existsSync(partial) && statSync(partial).isDirectory();
}
