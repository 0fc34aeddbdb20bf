import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { BackendChoice, SelectedBackend } from '../backends/select.ts';
import { readPreprocessorConfig, type ImagePreprocessing } from '../image-pipeline.ts';
import type { BackendName } from '../../core/types.ts';
import type { ClipConfig } from './clip-config.ts';
import type { FreezePolicy } from './clip.ts';
import type { PaddingMode } from './clip-tokenizer.ts';

/** A float32 array with its shape, independent of the engine that computed it. */
export interface HostTensor {
  data: Float32Array;
  shape: number[];
}

export interface ImageEncoding {
  /** [N, projection_dim] projected features before L2 normalisation (HF get_image_features). */
  embeds: HostTensor;
  /** [N, 1 + P, Dv]: HF's vision last_hidden_state, the encoder output BEFORE post_layernorm
   *  (token 0 is the class token, then patches row by row). Fusion heads normalise it themselves.
   *  SigLIP (no class token): token 0 is the attention-pooling head's output (= embeds), then HF's
   *  last_hidden_state, which for SigLIP is AFTER post_layernorm, so the layout stays [N, 1 + P, Dv]. */
  tokens: HostTensor;
}

export interface TextEncoding {
  /** [N, projection_dim] projected features before L2 normalisation (HF get_text_features). */
  embeds: HostTensor;
  /** [N, T, Dt]: HF's text last_hidden_state, AFTER final_layer_norm (causal: a token saw only those before it;
   *  SigLIP: bidirectional, T always max_length). */
  tokens: HostTensor;
  /** [N, T] 1 for real tokens, 0 for padding. */
  attentionMask: Int32Array;
  /** [N, T] token ids as fed to the model. */
  inputIds: Int32Array;
}

/**
 * One aligned image-text encoder (CLIP family), whatever runs it. Tasks and heads meet the
 * model only through this: pixels in (preprocessed by `preprocessing`, [N, 3, H, W]
 * channels first), embeddings and token features out.
 */
export interface AlignedEncoder {
  readonly engine: 'tfjs' | 'onnx';
  /** What computed the numbers (goes into run records). */
  readonly backend: BackendName;
  /** Absolute path of the model folder. */
  readonly folder: string;
  readonly config: ClipConfig;
  /** Size of the shared embedding space (projection_dim). */
  readonly embeddingDim: number;
  /** Hidden sizes of the token outputs. */
  readonly imageTokenDim: number;
  readonly textTokenDim: number;
  /** sha256 (hex) of the folder as loaded: config.json, weight files, tokenizer and preprocessor files (see fingerprintModelFolder). */
  readonly fingerprint: string;
  /** Whether the weights can be fine-tuned (the tfjs engine; ONNX is inference only). */
  readonly trainable: boolean;
  /** The image pipeline settings from the folder's preprocessor_config.json. */
  readonly preprocessing: ImagePreprocessing;
  embedImages(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<HostTensor>;
  embedTexts(texts: readonly string[]): Promise<HostTensor>;
  encodeImages(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<ImageEncoding>;
  encodeTexts(texts: readonly string[], options?: { padding?: PaddingMode }): Promise<TextEncoding>;
  /**
   * The token ids the text encoder reads for one text, special tokens included, before
   * truncation to the context: where a word of the text lands in `encodeTexts`' token rows
   * (VCR grounds each detection tag's tokens in its region).
   */
  textTokenIds(text: string): number[];
  dispose(): Promise<void>;
}

export type EncoderEngine = 'tfjs' | 'onnx';
export const ENCODER_ENGINES: readonly EncoderEngine[] = ['tfjs', 'onnx'];

export interface LoadEncoderOptions {
  /** Overrides the choice by folder contents (model.safetensors → tfjs; onnx/ only → onnx). */
  engine?: EncoderEngine;
  /**
   * tfjs backend (ignored by the ONNX engine): the backend the process already selected (a run
   * selects once and passes it down), or a choice to select now (library callers, tests).
   */
  backend?: BackendChoice | SelectedBackend;
  /** tfjs only: which weights train (default 'frozen'). */
  freeze?: FreezePolicy;
}

/** The files a folder's fingerprint covers, for an engine: those that change its outputs. */
export function fingerprintFiles(folder: string, engine: EncoderEngine): string[] {
  const weights = engine === 'tfjs' ? ['model.safetensors'] : ['onnx/vision_model.onnx', 'onnx/text_model.onnx'];
  return ['config.json', ...weights, 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json'].filter((f) => existsSync(join(folder, f)));
}

/**
 * sha256 over the files that decide the encoder's outputs: config.json and the weights, and
 * also the tokenizer and preprocessor files, since a changed vocabulary or normalisation
 * changes every number too.
 * Each file enters as its relative name, its byte length, then its bytes.
 */
export async function fingerprintModelFolder(folder: string, engine: EncoderEngine): Promise<string> {
  const hash = createHash('sha256');
  for (const name of fingerprintFiles(folder, engine)) {
    const file = join(folder, name);
    hash.update(`${name}\0${statSync(file).size}\0`);
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** The folder's preprocessor_config.json, checked against the model's input size. */
export async function readModelPreprocessing(folder: string, config: ClipConfig): Promise<ImagePreprocessing> {
  const file = join(folder, 'preprocessor_config.json');
  if (!existsSync(file)) {
    throw new InputError('preprocessor_config.json is missing: without it the image normalisation is unknown (copy the one the checkpoint was trained with)', { file: folder });
  }
  const prep = await readPreprocessorConfig(file);
  const size = config.vision.image_size;
  // What reaches the model is the crop (CLIP: shortest side, then center crop), or, without a
  // crop, the exact resize (SigLIP: a squash to size×size); either must be the model's input.
  if (prep.doCenterCrop) {
    if (prep.cropHeight !== size || prep.cropWidth !== size) throw new InputError(`the crop (${prep.cropWidth}×${prep.cropHeight}) must be the model's image_size ${size}×${size}`, { file, field: 'crop_size' });
  } else if (!prep.doResize || !prep.resizeExact || prep.resizeExact.height !== size || prep.resizeExact.width !== size) {
    const resize = !prep.doResize ? 'no resize' : prep.resizeExact ? `a resize to ${prep.resizeExact.width}×${prep.resizeExact.height}` : `a resize of the shortest side to ${prep.resizeShortestEdge}`;
    throw new InputError(`without a center crop the resize must give the model's image_size ${size}×${size} (size: {height, width}), got ${resize}`, { file, field: 'size' });
  }
  return prep;
}

/** Checks a pixel batch against the model before any engine sees it. */
export function checkPixelBatch(pixels: Float32Array, shape: readonly number[], config: ClipConfig): void {
  const size = config.vision.image_size;
  if (shape.length !== 4 || shape[1] !== 3 || shape[2] !== size || shape[3] !== size) {
    throw new InputError(`pixel batch has shape [${shape.join(', ')}], this model needs [N, 3, ${size}, ${size}]`, { field: 'pixel_values' });
  }
  if (pixels.length !== shape[0] * 3 * size * size) throw new InputError(`pixel batch holds ${pixels.length} values, shape [${shape.join(', ')}] needs ${shape[0] * 3 * size * size}`, { field: 'pixel_values' });
}
