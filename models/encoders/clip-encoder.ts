import * as tf from '@tensorflow/tfjs';
import { selectBackend, type SelectedBackend } from '../backends/select.ts';
import type { ImagePreprocessing } from '../image-pipeline.ts';
import type { BackendName } from '../../core/types.ts';
import { checkPixelBatch, fingerprintModelFolder, readModelPreprocessing, type AlignedEncoder, type LoadEncoderOptions, type HostTensor, type ImageEncoding, type TextEncoding } from './aligned-encoder.ts';

import type { ClipConfig } from './clip-config.ts';
import { ClipModel } from './clip.ts';
import { ClipTokenizer, type PaddingMode } from './clip-tokenizer.ts';

/**
 * The trainable encoder: the tfjs CLIP behind the AlignedEncoder interface. Training code
 * reaches past the interface to `model` (tensor-level forward passes and variables) and
 * `tokenizer`.
 */
export class TfjsClipEncoder implements AlignedEncoder {
  readonly engine = 'tfjs';
  readonly trainable = true;

  private constructor(
    readonly folder: string,
    readonly model: ClipModel,
    readonly tokenizer: ClipTokenizer,
    readonly preprocessing: ImagePreprocessing,
    readonly fingerprint: string,
    /** The tfjs backend it computes on, as selected (describeBackend prints it). */
    readonly selectedBackend: SelectedBackend,
  ) {}

  get backend(): BackendName {
    return this.selectedBackend.name;
  }

  static async load(folder: string, options: LoadEncoderOptions = {}): Promise<TfjsClipEncoder> {
    // A backend the caller selected is used as it is: selecting again would change the process's backend under it.
    const backend = typeof options.backend === 'object' ? options.backend : await selectBackend(options.backend ?? 'auto');
    const model = await ClipModel.load(folder);
    try {
      const tokenizer = await ClipTokenizer.load(folder, model.config.text.max_position_embeddings, { alwaysMaxLength: model.config.family === 'siglip' });
      const preprocessing = await readModelPreprocessing(folder, model.config);
      const fingerprint = await fingerprintModelFolder(folder, 'tfjs');
      model.setFreezePolicy(options.freeze ?? 'frozen');
      return new TfjsClipEncoder(folder, model, tokenizer, preprocessing, fingerprint, backend);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }

  get config(): ClipConfig {
    return this.model.config;
  }

  get embeddingDim(): number {
    return this.model.config.projectionDim;
  }

  get imageTokenDim(): number {
    return this.model.config.vision.hidden_size;
  }

  get textTokenDim(): number {
    return this.model.config.text.hidden_size;
  }

  async embedImages(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<HostTensor> {
    checkPixelBatch(pixels, shape, this.config);
    const embeds = tf.tidy(() => this.model.imageForward(tf.tensor4d(pixels, [...shape])).embeds);
    return download(embeds);
  }

  async encodeImages(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<ImageEncoding> {
    checkPixelBatch(pixels, shape, this.config);
    const out = tf.tidy(() => {
      const { embeds, tokens } = this.model.imageForward(tf.tensor4d(pixels, [...shape]));
      return { embeds, tokens };
    });
    return { embeds: await download(out.embeds), tokens: await download(out.tokens) };
  }

  async embedTexts(texts: readonly string[]): Promise<HostTensor> {
    // Padding to the longest text gives the same embeddings as max_length (causal attention:
    // the pooled EOS token never sees the padding after it) with less work.
    const batch = this.tokenizer.encode(texts, 'longest');
    const embeds = tf.tidy(() => this.model.textForward(batch).embeds);
    return download(embeds);
  }

  async encodeTexts(texts: readonly string[], options: { padding?: PaddingMode } = {}): Promise<TextEncoding> {
    const batch = this.tokenizer.encode(texts, options.padding ?? 'max_length');
    const out = tf.tidy(() => {
      const { embeds, tokens } = this.model.textForward(batch);
      return { embeds, tokens };
    });
    return { embeds: await download(out.embeds), tokens: await download(out.tokens), attentionMask: batch.attentionMask, inputIds: batch.inputIds };
  }

  textTokenIds(text: string): number[] {
    return this.tokenizer.encodeOne(text);
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}

async function download(tensor: tf.Tensor): Promise<HostTensor> {
  try {
    return { data: (await tensor.data()) as Float32Array, shape: tensor.shape };
  } finally {
    tensor.dispose();
  }
}
