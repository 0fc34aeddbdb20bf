import * as tf from '@tensorflow/tfjs';
import { ParameterStore } from '../heads/layers.ts';
import { methodNeeds, type MethodSpec, type ObjectiveModule } from '../objectives/index.ts';
import { clampLogitScale, createLogitScale, infoNceLoss, l2Normalize } from '../objectives/info-nce.ts';
import { matMul } from '../ops/matmul.ts';
import type { StepContext, StepResult } from '../train.ts';
import type { FeatureTable } from '../features.ts';
import type { SeededRandom } from '../../core/random.ts';
import type { TrainableTokens } from './encoder-tuning.ts';

/** One image and its captions, as the retrieval adapter hands them over (task-neutral: any
 *  dataset whose rows have an image path and captions trains here). */
export interface CaptionedImage {
  path: string;
  captions: readonly { text: string }[];
}

/**
 * Retrieval fine-tuning on a frozen encoder: a learned linear map on each tower's projected
 * embedding (initialised to the identity, so step 0 is exactly zero-shot) and the logit
 * scale, trained with symmetric InfoNCE on (image, one of its captions) pairs. W·(P·x) is
 * (W·P)·x: this is fine-tuning the encoder's projections, without touching its weights.
 * With an encoder whose blocks train (encoder.train_blocks > 0) the same loss trains the
 * towers themselves: the maps stay at the identity and untrained (the projections they
 * would duplicate train), and a tower's embeddings come from its trainable blocks each step.
 * `mmd` / `dann` align the normalised image embeddings of source and target images (the
 * target's unlabelled images through the same tower).
 */
export class ContrastiveRetrieval {
  private readonly params: ParameterStore;
  readonly imageMap: tf.Variable;
  readonly textMap: tf.Variable;
  readonly logScale: tf.Variable;
  /** The modules of the SPEC's objectives (mmd, dann), in SPEC order. */
  private readonly objectives: ObjectiveModule[];
  private readonly needsTarget: boolean;

  constructor(
    private readonly method: MethodSpec,
    private readonly images: FeatureTable,
    private readonly texts: FeatureTable,
    private readonly targetImageKeys: readonly string[],
    random: SeededRandom,
    private readonly encoder?: TrainableTokens,
  ) {
    const dim = images.embedDim;
    this.params = new ParameterStore('retrieval', random.fork('retrieval-adapter'));
    this.imageMap = this.params.zeros('image_map', [dim, dim]);
    this.textMap = this.params.zeros('text_map', [dim, dim]);
    this.imageMap.assign(tf.eye(dim));
    this.textMap.assign(tf.eye(dim));
    this.logScale = createLogitScale(method.taskLoss.infonce);
    this.objectives = method.objectives.flatMap((objective) =>
      objective.definition.create ? [objective.definition.create(objective.settings as never, { kind: 'contrastive', featureDim: dim, random })] : [],
    );
    this.needsTarget = methodNeeds(method).targetDomain;
    if (this.needsTarget && targetImageKeys.length === 0) throw new Error(`${method.spec} needs target-domain images and none were found`);
  }

  namedVariables(): Map<string, tf.Variable> {
    const maps = this.encoder ? [] : [...this.params.namedVariables()];
    return new Map([...maps, ['retrieval/logit_scale', this.logScale], ...this.objectives.flatMap((module) => [...module.namedVariables()])]);
  }

  private imageEmbeds(keys: readonly string[]): tf.Tensor2D {
    if (this.encoder?.trainsImages) return l2Normalize(this.encoder.images(keys).embeds) as tf.Tensor2D;
    return l2Normalize(matMul(tf.tensor2d(this.images.gatherEmbeds(keys), [keys.length, this.images.embedDim]), this.imageMap)) as tf.Tensor2D;
  }

  private textEmbeds(keys: readonly string[]): tf.Tensor2D {
    if (this.encoder?.trainsTexts) return l2Normalize(this.encoder.textEmbeds(keys, this.texts.longestText(keys))) as tf.Tensor2D;
    return l2Normalize(matMul(tf.tensor2d(this.texts.gatherEmbeds(keys), [keys.length, this.texts.embedDim]), this.textMap)) as tf.Tensor2D;
  }

  /** One batch of images, each with one caption drawn by the step's generator; `variables` are the problem's (a training encoder's included). */
  step(batch: readonly CaptionedImage[], context: StepContext, variables: Map<string, tf.Variable> = this.namedVariables()): StepResult {
    const imageKeys = batch.map((image) => image.path);
    const textKeys = batch.map((image) => context.random.pick(image.captions).text);
    const targetKeys = this.needsTarget ? batch.map(() => context.random.pick(this.targetImageKeys)) : [];
    const nameOf = new Map([...variables].map(([name, variable]) => [variable.name, name]));
    const recorded: Record<string, tf.Scalar> = {};
    const { value, grads } = tf.variableGrads(() => {
      const images = this.imageEmbeds(imageKeys);
      let total = infoNceLoss(images, this.textEmbeds(textKeys), this.logScale as tf.Scalar, { maxLogitScale: this.method.taskLoss.infonce.maxLogitScale });
      recorded.task = tf.keep(total.clone());
      const target = targetKeys.length ? this.imageEmbeds(targetKeys) : undefined;
      for (const module of this.objectives) {
        for (const term of module.lossTerms({ features: images, targetFeatures: target, step: context.step, totalSteps: context.totalSteps })) {
          recorded[term.name] = tf.keep((term.recorded ?? term.contribution).clone());
          for (const [name, value] of Object.entries(term.diagnostics ?? {})) recorded[name] = tf.keep(value.clone());
          total = total.add(term.contribution);
        }
      }
      return total;
    }, [...variables.values()]);
    const loss = value.dataSync()[0];
    value.dispose();
    const gradients = new Map<string, tf.Tensor>();
    for (const [tfName, g] of Object.entries(grads)) gradients.set(nameOf.get(tfName)!, g);
    const parts = Object.fromEntries(Object.entries(recorded).map(([k, t]) => [k, t.dataSync()[0]]));
    tf.dispose(Object.values(recorded));
    return { loss, gradients, parts };
  }

  /** Keeps the temperature within its cap after each optimiser step. */
  afterStep(): void {
    clampLogitScale(this.logScale, this.method.taskLoss.infonce);
  }

  /** Cosine similarities [images × captions] of a split, captions image by image in file order. */
  similarities(split: readonly CaptionedImage[]): Float32Array {
    const imageKeys = split.map((image) => image.path);
    const captionKeys = split.flatMap((image) => image.captions.map((c) => c.text));
    // In chunks: with a training encoder each embedding is a forward pass through its blocks.
    const chunk = this.encoder ? 64 : Math.max(imageKeys.length, captionKeys.length);
    const embedAll = (keys: string[], embed: (part: string[]) => tf.Tensor2D) => tf.concat(Array.from({ length: Math.ceil(keys.length / chunk) }, (_, i) => embed(keys.slice(i * chunk, (i + 1) * chunk)))) as tf.Tensor2D;
    return tf.tidy(() => matMul(embedAll(imageKeys, (k) => this.imageEmbeds(k)), embedAll(captionKeys, (k) => this.textEmbeds(k)), false, true).dataSync() as Float32Array);
  }

  /**
   * The normalised embeddings `similarities` ranks, of a split's images and of their captions
   * (image by image, in file order), in fixed-shape blocks (embedInBlocks): a sharded run's
   * embeddings of a slice are bit for bit the rows of the whole split's.
   */
  embeddings(split: readonly CaptionedImage[]): SplitEmbeddings {
    const imageKeys = split.map((image) => image.path);
    const captionKeys = split.flatMap((image) => image.captions.map((c) => c.text));
    // A training encoder runs a forward pass per block: smaller blocks keep its memory bounded.
    const rows = this.encoder ? 64 : EMBEDDING_BLOCK_ROWS;
    const images = embedInBlocks(imageKeys, rows, (keys) => this.imageEmbeds(keys));
    // A training image tower's width is its projection's, read off the rows it gave.
    return { dim: imageKeys.length ? images.length / imageKeys.length : this.images.embedDim, images, captions: embedInBlocks(captionKeys, rows, (keys) => this.textEmbeds(keys)) };
  }

  dispose(): void {
    this.params.dispose();
    this.logScale.dispose();
    for (const module of this.objectives) module.dispose();
  }
}

/** Zero-shot similarities straight from the encoder's embeddings. */
export function zeroShotSimilarities(images: FeatureTable, texts: FeatureTable, split: readonly CaptionedImage[]): Float32Array {
  const imageKeys = split.map((image) => image.path);
  const captionKeys = split.flatMap((image) => image.captions.map((c) => c.text));
  return tf.tidy(() => {
    const a = l2Normalize(tf.tensor2d(images.gatherEmbeds(imageKeys), [imageKeys.length, images.embedDim]));
    const b = l2Normalize(tf.tensor2d(texts.gatherEmbeds(captionKeys), [captionKeys.length, texts.embedDim]));
    return matMul(a, b, false, true).dataSync() as Float32Array;
  });
}

/** Normalised embeddings [rows × dim], row-major: a split's images, and its captions image by image in file order. */
export interface SplitEmbeddings {
  dim: number;
  images: Float32Array;
  captions: Float32Array;
}

/** Rows per block of `embedInBlocks` on a frozen encoder. */
const EMBEDDING_BLOCK_ROWS = 256;

/**
 * Embeds keys in blocks of exactly `rows` rows (the last one padded with repeats of its first
 * key, then cut): every product has the same shape whichever rows share it, and BLAS libraries
 * (cuBLAS, OpenBLAS, XNNPACK) pick kernels and summation orders by shape. So a row's
 * embedding does not depend on which shard, or which other rows, it was computed with.
 */
export function embedInBlocks(keys: readonly string[], rows: number, embed: (keys: readonly string[]) => tf.Tensor2D): Float32Array {
  let out = new Float32Array(0);
  for (let start = 0; start < keys.length; start += rows) {
    const block = keys.slice(start, start + rows);
    const padded = [...block, ...Array<string>(rows - block.length).fill(block[0])];
    const values = tf.tidy(() => embed(padded).dataSync() as Float32Array);
    const dim = values.length / rows;
    if (out.length === 0) out = new Float32Array(keys.length * dim);
    out.set(values.subarray(0, block.length * dim), start * dim);
  }
  return out;
}

/** Zero-shot embeddings: the encoder's own, normalised (what zeroShotSimilarities ranks), in the same blocks as ContrastiveRetrieval.embeddings. */
export function zeroShotEmbeddings(images: FeatureTable, texts: FeatureTable, split: readonly CaptionedImage[]): SplitEmbeddings {
  const imageKeys = split.map((image) => image.path);
  const captionKeys = split.flatMap((image) => image.captions.map((c) => c.text));
  return {
    dim: images.embedDim,
    images: embedInBlocks(imageKeys, EMBEDDING_BLOCK_ROWS, (keys) => l2Normalize(tf.tensor2d(images.gatherEmbeds(keys), [keys.length, images.embedDim])) as tf.Tensor2D),
    captions: embedInBlocks(captionKeys, EMBEDDING_BLOCK_ROWS, (keys) => l2Normalize(tf.tensor2d(texts.gatherEmbeds(keys), [keys.length, texts.embedDim])) as tf.Tensor2D),
  };
}

/** Cosine similarities [images × captions] from normalised embeddings: the one product both an unsharded run and a shard merge rank. */
export function similaritiesOfEmbeddings(embeddings: SplitEmbeddings): Float32Array {
  const { dim } = embeddings;
  return tf.tidy(() => matMul(tf.tensor2d(embeddings.images, [embeddings.images.length / dim, dim]), tf.tensor2d(embeddings.captions, [embeddings.captions.length / dim, dim]), false, true).dataSync() as Float32Array);
}
