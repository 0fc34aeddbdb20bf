// The lifecycle of `vlbench pretrain`: contrastive (CLIP) pretraining on a SynthScenes
// folder's captions, written as a complete Hugging Face model folder through a resumable
// `<out>.partial` folder that appears under its final name only when complete.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { partialFolderOf, writeJson } from './run-folder.ts';
import { dirname, join, resolve } from 'node:path';
import { describeBackend, selectBackend, type BackendChoice } from '../models/backends/select.ts';
import { InputError } from '../core/errors.ts';
import { toPreprocessorConfig } from '../models/image-pipeline.ts';
import { startProgress } from '../core/progress.ts';
import { SeededRandom } from '../core/random.ts';
import { VLBENCH_VERSION } from '../core/version.ts';
import { ClipModel } from '../models/encoders/clip.ts';
import { ClipTokenizer } from '../models/encoders/clip-tokenizer.ts';
import { synthTrainingTexts } from '../tasks/synth/training-texts.ts';
import { readModelPreprocessing } from '../models/encoders/aligned-encoder.ts';
import { writeSafetensors } from '../models/encoders/safetensors.ts';
import { wordLevelVocabulary, writeWordLevelTokenizer } from '../models/encoders/word-level-tokenizer.ts';
import {
  PRETRAIN_CONFIG_NAMES,
  loadPretrainingPairs,
  pretrainClip,
  pretrainClipConfig,
  pretrainLogitBias,
  pretrainPreprocessing,
  type PretrainConfigName,
  type PretrainLoss,
} from '../models/pretrain.ts';
import type { TrainingSettings } from '../models/train.ts';
import { loadKarpathySplit } from '../tasks/retrieval/index.ts';
import { SYNTH_DOMAINS, readSynthManifest, synthPaths, type SynthDomain } from '../tasks/synth/index.ts';

/** What a pretraining run is given: typed and checked by the caller (cli/commands/pretrain.ts parses the flags). */
export interface PretrainOptions {
  data: string;
  out: string;
  /** Model size for fresh weights; absent with `init`. */
  config?: PretrainConfigName;
  /** Continue from this model folder (its config and tokenizer). */
  init?: string;
  domain: SynthDomain;
  seed: number;
  settings: Partial<TrainingSettings>;
  backend: BackendChoice;
  resume: boolean;
  dtype: 'f32' | 'f16';
  /** The contrastive loss (default infonce); sigmoid trains a bias beside the logit scale. */
  loss?: PretrainLoss;
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
  /** The contrastive loss trained (absent in recipes written before --loss: infonce). */
  loss?: PretrainLoss;
  /** Mean loss (InfoNCE or sigmoid) over the last 10% of steps (a single batch is noisy). */
  finalLoss: number;
  lastStepLoss: number;
  logitScale: number;
  /**
   * The sigmoid loss's learned bias b. A SigLIP model keeps it as logit_bias; a CLIPModel has no
   * such parameter in the HF layout, so it is recorded here (zero-shot ranking does not use it).
   */
  logitBias?: number;
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

/** The work of `vlbench pretrain`, callable from code (tests pass `interruptAfterStep` to simulate a kill). */
export async function runPretrain(
  options: PretrainOptions,
  log: (line: string) => void = () => {},
  argv: readonly string[] = [],
  testHooks: { interruptAfterStep?: number } = {},
): Promise<PretrainOutcome> {
  const dataDir = resolve(options.data);
  const outDir = resolve(options.out);
  const configName: PretrainConfigName = options.config ?? 'small';
  const { domain, seed, settings, dtype } = options;
  const backendChoice = options.backend;
  if ((settings.batchSize ?? 0) < 2) throw new InputError('a contrastive batch needs at least 2 pairs', { field: '--batch' });
  if (options.init !== undefined && options.config !== undefined) throw new InputError('--init brings its own model size; drop --config', { field: '--config' });
  if (existsSync(outDir)) throw new InputError('the model folder already exists; choose another --out or remove it', { file: outDir, field: '--out' });
  if (!existsSync(dirname(outDir))) throw new InputError('the parent folder of --out does not exist', { file: dirname(outDir), field: '--out' });
  const partialDir = partialFolderOf(outDir);
  const checkpointDir = join(partialDir, 'checkpoint');
  const runFile = join(partialDir, 'run.json');
  if (existsSync(partialDir) && !options.resume) {
    throw new InputError(`an interrupted run left ${partialDir}: pass --resume to continue it, or remove that folder to start over`, { file: partialDir });
  }
  if (options.resume && !existsSync(runFile)) throw new InputError(`nothing to resume: ${runFile} does not exist`, { file: partialDir, field: '--resume' });

  const manifest = await readSynthManifest(dataDir);
  if (!manifest.counts[domain]) throw new InputError(`the SynthScenes folder has no ${domain} domain (generated: ${Object.keys(manifest.counts).join(', ')})`, { file: dataDir, field: '--domain' });
  const manifestSha256 = createHash('sha256').update(await readFile(synthPaths.manifest(dataDir))).digest('hex');
  const split = await loadKarpathySplit({ split: 'train', files: { annotations: synthPaths.retrieval(dataDir, domain) }, imagesDir: synthPaths.imagesRoot(dataDir) });
  const captions = split.examples.map((image) => image.captions.map((c) => c.text));
  const captionCount = captions.reduce((sum, list) => sum + list.length, 0);

  // The run's identity: a resumed run must be the same run, or its checkpoint means nothing.
  const loss: PretrainLoss = options.loss ?? 'infonce';
  // The loss joins the identity only when it is not the default, so older interrupted runs still resume.
  const identity = { data: dataDir, manifestSha256, domain, config: options.init ? 'init' : configName, init: options.init ? resolve(options.init) : null, settings, ...(loss === 'infonce' ? {} : { loss }) };
  if (options.resume) {
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
  if (options.init) {
    const initDir = resolve(options.init);
    model = await ClipModel.load(initDir);
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) {
      const file = join(initDir, name);
      if (!existsSync(file)) throw new InputError(`${name} is missing from the --init model folder`, { file: initDir, field: '--init' });
      await writeFileAtomically(join(modelDir, name), await readFile(file));
    }
  } else {
    // Questions and rationales are in the vocabulary too: a frozen text encoder must tell them apart when fine-tuned.
    const vocabulary = wordLevelVocabulary([...captions.flat(), ...(await synthTrainingTexts(dataDir))]);
    const config = pretrainClipConfig(configName, vocabulary, loss);
    model = ClipModel.initialise(config, new SeededRandom(seed).fork('init'));
    await writeWordLevelTokenizer(modelDir, vocabulary, config.text.max_position_embeddings);
    await writeJson(join(modelDir, 'preprocessor_config.json'), toPreprocessorConfig(pretrainPreprocessing(config.vision.image_size)));
  }
  let logitBias: import('@tensorflow/tfjs').Variable | undefined;
  try {
    await writeJson(runFile, { identity });
    const tokenizer = await ClipTokenizer.load(modelDir, model.config.text.max_position_embeddings, { alwaysMaxLength: model.config.family === 'siglip' });
    logitBias = loss === 'sigmoid' ? pretrainLogitBias(model) : undefined;
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
      resume: options.resume === true,
      interruptAfterStep: testHooks.interruptAfterStep,
      onStep(point, samplesPerSecond) {
        bar.tick(point.step - shown, { loss: point.loss.toFixed(4), 'samples/s': samplesPerSecond.toFixed(1) });
        shown = point.step;
      },
    }, { loss, logitBias });
    bar.stop();

    const tail = result.curve.slice(-Math.max(1, Math.round(result.curve.length / 10)));
    const every = Math.max(1, Math.floor(result.curve.length / 200));
    const recipe: PretrainRecipe = {
      vlbench: VLBENCH_VERSION,
      command: ['vlbench', ...argv].join(' '),
      config: options.init ? 'init' : configName,
      init: identity.init,
      seed,
      data: { folder: dataDir, manifestSha256, generatorVersion: manifest.generatorVersion, domain, split: 'train', images: split.examples.length, captions: captionCount },
      settings,
      dtype,
      backend: backend.name,
      steps: result.steps,
      finalLoss: tail.reduce((sum, p) => sum + p.loss, 0) / tail.length,
      lastStepLoss: result.curve[result.curve.length - 1]?.loss ?? NaN,
      ...(loss === 'infonce' ? {} : { loss }),
      logitScale: Math.exp(model.logitScale.dataSync()[0]),
      ...(logitBias ? { logitBias: logitBias.dataSync()[0] } : {}),
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
    if (logitBias && logitBias !== model.logitBias) logitBias.dispose();
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
  const partial = partialFolderOf(resolve(outDir));
  return existsSync(partial) && statSync(partial).isDirectory();
}
