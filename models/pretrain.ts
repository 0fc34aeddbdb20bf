import * as tf from '@tensorflow/tfjs';
import { InputError } from '../core/errors.ts';
import { preprocessedBatches, type ImagePreprocessing } from './image-pipeline.ts';
import { parseClipConfig, type ClipConfig } from './encoders/clip-config.ts';
import type { ClipModel } from './encoders/clip.ts';
import type { ClipTokenizer } from './encoders/clip-tokenizer.ts';
import { wordLevelTextConfig, type WordLevelVocabulary } from './encoders/word-level-tokenizer.ts';
import { INFO_NCE_DEFAULTS, clampLogitScale, infoNceLoss } from './objectives/info-nce.ts';
import { SIGMOID_DEFAULTS, sigmoidLoss } from './objectives/sigmoid-pairs.ts';
import { train, type CurvePoint, type StepContext, type TrainingHooks, type TrainingProblem, type TrainingResult, type TrainingSettings } from './train.ts';
import { transposedProductsAreFree } from './backends/wasm-blas.ts';

/**
 * Contrastive pretraining of a CLIP from scratch (or from an --init model) on image-caption
 * pairs, as CLIP itself was trained: symmetric InfoNCE over a batch, with the model's own
 * learnable logit scale (HF's `logit_scale`, initialised at log(1/0.07)) capped at 100.
 * Each step pairs every image of the batch with one of its captions, drawn from the step's
 * own random generator, so a resumed run sees exactly the captions an uninterrupted one does.
 */

/** Image-caption pairs held in memory: pretraining visits each image many times, so pixels are decoded once. */
export interface PretrainingPairs {
  /** [N, 3, H, W] preprocessed pixels, image after image. */
  pixels: Float32Array;
  imageSize: number;
  /** Captions of each image (at least one each). */
  captions: string[][];
}

export const PRETRAIN_CONFIG_NAMES = ['tiny', 'small'] as const;

/**
 * The contrastive loss: CLIP's symmetric InfoNCE, or SigLIP's pairwise sigmoid loss with a
 * learnable bias (models/objectives/sigmoid-pairs.ts).
 */
export const PRETRAIN_LOSSES = ['infonce', 'sigmoid'] as const;
export type PretrainLoss = (typeof PRETRAIN_LOSSES)[number];
export type PretrainConfigName = (typeof PRETRAIN_CONFIG_NAMES)[number];

/** Longest caption in tokens (with <|startoftext|> and <|endoftext|>) the text tower accepts. */
export const PRETRAIN_CONTEXT_LENGTH = 48;

interface TowerShape {
  hidden: number;
  layers: number;
  heads: number;
}

const PRETRAIN_SHAPES: Record<PretrainConfigName, { imageSize: number; patchSize: number; vision: TowerShape; text: TowerShape; projectionDim: number }> = {
  // For tests and benches: seconds per step on wasm.
  tiny: { imageSize: 32, patchSize: 8, vision: { hidden: 64, layers: 2, heads: 2 }, text: { hidden: 64, layers: 2, heads: 2 }, projectionDim: 64 },
  // The bundled SynthScenes CLIP: 64 patches of 12 px, so a small shape (13% of the side,
  // 12 px at 96 px) covers about one patch and fusion heads get 64 image tokens.
  small: { imageSize: 96, patchSize: 12, vision: { hidden: 192, layers: 4, heads: 3 }, text: { hidden: 128, layers: 3, heads: 2 }, projectionDim: 128 },
};

/**
 * A CLIPConfig for a named pretraining size, with the text ids of a word-level vocabulary. The
 * logit scale starts where the loss's paper starts it: log(1/0.07) for InfoNCE, log 10 for sigmoid.
 */
export function pretrainClipConfig(name: PretrainConfigName, vocabulary: WordLevelVocabulary, loss: PretrainLoss = 'infonce'): ClipConfig {
  const shape = PRETRAIN_SHAPES[name];
  const tower = (t: TowerShape) => ({ hidden_size: t.hidden, intermediate_size: 4 * t.hidden, num_hidden_layers: t.layers, num_attention_heads: t.heads, hidden_act: 'quick_gelu' });
  return parseClipConfig(
    {
      model_type: 'clip',
      projection_dim: shape.projectionDim,
      logit_scale_init_value: loss === 'sigmoid' ? SIGMOID_DEFAULTS.logitScaleInit : Math.log(1 / INFO_NCE_DEFAULTS.initialTemperature),
      text_config: { ...tower(shape.text), ...wordLevelTextConfig(vocabulary), max_position_embeddings: PRETRAIN_CONTEXT_LENGTH },
      vision_config: { ...tower(shape.vision), image_size: shape.imageSize, patch_size: shape.patchSize, num_channels: 3 },
    },
    `(pretraining config "${name}")`,
  );
}

/** The image pipeline of a pretrained model: CLIP's mean and std, resize then crop to image_size. */
export function pretrainPreprocessing(imageSize: number): ImagePreprocessing {
  return {
    doResize: true,
    resizeShortestEdge: imageSize,
    doCenterCrop: true,
    cropHeight: imageSize,
    cropWidth: imageSize,
    doRescale: true,
    rescaleFactor: 1 / 255,
    doNormalize: true,
    mean: [0.48145466, 0.4578275, 0.40821073],
    std: [0.26862954, 0.26130258, 0.27577711],
  };
}

/** Decodes and preprocesses every image once into one buffer. */
export async function loadPretrainingPairs(
  examples: ReadonlyArray<{ path: string; captions: readonly string[] }>,
  preprocessing: ImagePreprocessing,
  onImages?: (count: number) => void,
): Promise<PretrainingPairs> {
  if (preprocessing.cropHeight !== preprocessing.cropWidth) throw new InputError('pretraining needs square images');
  const size = preprocessing.cropHeight;
  const plane = 3 * size * size;
  const pixels = new Float32Array(examples.length * plane);
  let offset = 0;
  for await (const batch of preprocessedBatches(examples.map((e) => e.path), preprocessing, { batchSize: 64 })) {
    pixels.set(batch.pixels, offset * plane);
    offset += batch.files.length;
    onImages?.(batch.files.length);
  }
  const captions = examples.map((e, i) => {
    if (e.captions.length === 0) throw new InputError('image has no caption to pretrain with', { file: e.path, record: String(i) });
    return [...e.captions];
  });
  return { pixels, imageSize: size, captions };
}

/**
 * The sigmoid loss's learnable bias b: the model's own logit_bias (SigLIP), else a variable of
 * the run's (a CLIPModel has no place for it: zero-shot ranking does not depend on b).
 */
export function pretrainLogitBias(model: ClipModel, initial = SIGMOID_DEFAULTS.logitBiasInit): tf.Variable {
  return model.logitBias ?? tf.variable(tf.tensor1d([initial]), true, `pretrain/logit_bias/${Math.random().toString(36).slice(2)}`);
}

export interface PretrainLossOptions {
  loss?: PretrainLoss;
  /** The sigmoid loss's bias (pretrainLogitBias); required with loss 'sigmoid'. */
  logitBias?: tf.Variable;
}

/** The pretraining problem for train(): every parameter of the model trains (and the sigmoid loss's bias). */
export function contrastivePretrainingProblem(model: ClipModel, tokenizer: ClipTokenizer, pairs: PretrainingPairs, options: PretrainLossOptions = {}): TrainingProblem {
  const loss = options.loss ?? 'infonce';
  const bias = options.logitBias;
  if (loss === 'sigmoid' && !bias) throw new Error('the sigmoid loss needs its logit bias variable');
  const size = model.config.vision.image_size;
  if (pairs.imageSize !== size) throw new InputError(`pairs were preprocessed at ${pairs.imageSize} px, the model takes ${size} px`, { field: 'image_size' });
  const plane = 3 * size * size;
  const count = pairs.captions.length;
  if (pairs.pixels.length !== count * plane) throw new Error(`pixel buffer holds ${pairs.pixels.length} values, ${count} images need ${count * plane}`);
  model.setFreezePolicy('all');
  const variables = model.trainableParameters();
  if (loss === 'sigmoid' && !variables.has('logit_bias')) variables.set('logit_bias', bias!);
  const nameOf = new Map([...variables].map(([name, variable]) => [variable.name, name]));
  return {
    variables,
    exampleCount: count,
    computeGradients(batch: number[], context: StepContext) {
      const images = new Float32Array(batch.length * plane);
      batch.forEach((index, row) => images.set(pairs.pixels.subarray(index * plane, (index + 1) * plane), row * plane));
      const texts = batch.map((index) => context.random.pick(pairs.captions[index]));
      // Padding to the longest caption of the batch: causal attention means the pooled EOS never sees padding
      // (a SigLIP tokenizer pads to max_length whatever is asked).
      const tokens = tokenizer.encode(texts, 'longest');
      const { value, grads } = tf.tidy(() =>
        tf.variableGrads(() => {
          const pixels = tf.tensor4d(images, [batch.length, 3, size, size]);
          const imageEmbeds = model.imageForward(pixels).embeds;
          const textEmbeds = model.textForward(tokens).embeds;
          if (loss === 'sigmoid') return sigmoidLoss(imageEmbeds, textEmbeds, model.logitScale, bias!, { maxLogitScale: SIGMOID_DEFAULTS.maxLogitScale });
          return infoNceLoss(imageEmbeds, textEmbeds, model.logitScale as tf.Scalar, { maxLogitScale: INFO_NCE_DEFAULTS.maxLogitScale });
        }, [...variables.values()]),
      );
      const lossValue = value.dataSync()[0];
      value.dispose();
      const gradients = new Map<string, tf.Tensor>();
      for (const [variableName, gradient] of Object.entries(grads)) gradients.set(nameOf.get(variableName) ?? variableName, gradient);
      const logitScale = Math.exp(model.logitScale.dataSync()[0]);
      const parts: Record<string, number> = loss === 'sigmoid' ? { sigmoid: lossValue, logitScale, logitBias: bias!.dataSync()[0] } : { infonce: lossValue, logitScale };
      return { loss: lossValue, gradients, parts };
    },
  };
}

function swapLastAxes(x: tf.Tensor): tf.Tensor {
  const axes = x.shape.map((_, i) => i);
  [axes[axes.length - 2], axes[axes.length - 1]] = [axes[axes.length - 1], axes[axes.length - 2]];
  return tf.transpose(x, axes);
}

/** x·y with the transposes done as explicit copies: wasm's transposed matmul paths are 8-35× slower. */
function plainMatMul(x: tf.Tensor, transposeX: boolean, y: tf.Tensor, transposeY: boolean): tf.Tensor {
  return tf.matMul(transposeX ? swapLastAxes(x) : x, transposeY ? swapLastAxes(y) : y);
}

/**
 * tfjs's BatchMatMul gradient asks the backend for transposed products, which tfjs-wasm 4.22
 * runs 8-35× slower than a transpose followed by a plain product (models/objectives/matmul.ts
 * measures it); the CLIP's backward pass spent 99% of its time there (measured: 19 s of a
 * 19.2 s image-tower backward at batch 64). This swaps in the same gradient written with
 * explicit transposes while `work` runs, and puts tfjs's own back afterwards, so nothing
 * outside pretraining changes.
 */
export async function withTransposeFreeMatMulGradient<T>(work: () => Promise<T>): Promise<T> {
  const original = tf.getGradient('BatchMatMul');
  tf.registerGradient({
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      // Decided per backward pass: with BLAS kernels the transposed products are free and tfjs's own gradient is the fast one.
      if (transposedProductsAreFree()) return original.gradFunc(dy, saved, attrs);
      const [a, b] = saved;
      const gradient = dy as tf.Tensor;
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return { a: () => plainMatMul(gradient, false, b, true), b: () => plainMatMul(a, true, gradient, false) };
      if (!transposeA && transposeB) return { a: () => plainMatMul(gradient, false, b, false), b: () => plainMatMul(gradient, true, a, false) };
      if (transposeA && !transposeB) return { a: () => plainMatMul(b, false, gradient, true), b: () => plainMatMul(a, false, gradient, false) };
      return { a: () => plainMatMul(b, true, gradient, true), b: () => plainMatMul(gradient, true, a, true) };
    },
  });
  try {
    return await work();
  } finally {
    tf.registerGradient(original);
  }
}

export interface PretrainProgress {
  point: CurvePoint;
  samplesPerSecond: number;
}

/**
 * Runs the pretraining loop. After every optimiser step the logit scale is written back
 * clamped to [1, 100] (open_clip's rule), before any checkpoint, so a resumed run restarts
 * from the same clamped value.
 */
export async function pretrainClip(
  model: ClipModel,
  tokenizer: ClipTokenizer,
  pairs: PretrainingPairs,
  settings: Partial<TrainingSettings>,
  hooks: TrainingHooks = {},
  lossOptions: PretrainLossOptions = {},
): Promise<TrainingResult> {
  const problem = contrastivePretrainingProblem(model, tokenizer, pairs, lossOptions);
  try {
    return await withTransposeFreeMatMulGradient(() => train(problem, settings, {
      ...hooks,
      onStep(point, samplesPerSecond) {
        clampLogitScale(model.logitScale);
        hooks.onStep?.(point, samplesPerSecond);
      },
    }));
  } finally {
    model.setFreezePolicy('frozen');
  }
}
