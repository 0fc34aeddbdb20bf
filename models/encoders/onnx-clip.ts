import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLIPTextModelWithProjection, CLIPVisionModelWithProjection, Tensor, type PreTrainedModel } from '@huggingface/transformers';
import { InputError } from '../../core/errors.ts';
import type { ImagePreprocessing } from '../image-pipeline.ts';
import {
  checkPixelBatch,
  fingerprintModelFolder,
  readModelPreprocessing,
  type AlignedEncoder,
  type HostTensor,
  type ImageEncoding,
  type TextEncoding,
} from './aligned-encoder.ts';
import { readClipConfig, type ClipConfig } from './clip-config.ts';
import { ClipTokenizer, useLocalFilesOnly, type PaddingMode } from './clip-tokenizer.ts';
import type { TokenBatch } from './clip.ts';

type OnnxOutputs = Record<string, { data: ArrayLike<number>; dims: number[]; type: string }>;

/**
 * Inference-only encoder over a CLIP ONNX export (onnx/vision_model.onnx: pixel_values →
 * image_embeds [, last_hidden_state]; onnx/text_model.onnx: input_ids, attention_mask →
 * text_embeds [, last_hidden_state]), run by ONNX Runtime through transformers.js from the
 * local folder only, in fp32. Either graph may be absent; asking for it then says so.
 */
export class OnnxClipEncoder implements AlignedEncoder {
  readonly engine = 'onnx';
  readonly trainable = false;
  readonly backend = 'onnxruntime';

  private constructor(
    readonly folder: string,
    readonly config: ClipConfig,
    private readonly vision: PreTrainedModel | undefined,
    private readonly text: PreTrainedModel | undefined,
    readonly tokenizer: ClipTokenizer | undefined,
    readonly preprocessing: ImagePreprocessing,
    readonly fingerprint: string,
  ) {}

  static async load(folder: string): Promise<OnnxClipEncoder> {
    const configFile = join(folder, 'config.json');
    if (!existsSync(configFile)) throw new InputError('not a model folder: config.json is missing', { file: folder });
    const config = await readClipConfig(configFile);
    useLocalFilesOnly();
    const options = { dtype: 'fp32' as const, local_files_only: true, device: 'cpu' as const };
    const load = async (kind: 'vision' | 'text') => {
      const file = join(folder, 'onnx', `${kind}_model.onnx`);
      if (!existsSync(file)) return undefined;
      try {
        const model = kind === 'vision' ? CLIPVisionModelWithProjection : CLIPTextModelWithProjection;
        return await model.from_pretrained(folder, options);
      } catch (error) {
        throw new InputError(`cannot load the ONNX graph: ${(error as Error).message.split('\n')[0]}`, { file });
      }
    };
    const vision = await load('vision');
    const text = await load('text');
    if (!vision && !text) throw new InputError('no onnx/vision_model.onnx or onnx/text_model.onnx', { file: folder });
    const tokenizer = text ? await ClipTokenizer.load(folder, config.text.max_position_embeddings) : undefined;
    const preprocessing = await readModelPreprocessing(folder, config);
    const fingerprint = await fingerprintModelFolder(folder, 'onnx');
    return new OnnxClipEncoder(folder, config, vision, text, tokenizer, preprocessing, fingerprint);
  }

  get embeddingDim(): number {
    return this.config.projectionDim;
  }

  get imageTokenDim(): number {
    return this.config.vision.hidden_size;
  }

  get textTokenDim(): number {
    return this.config.text.hidden_size;
  }

  async embedImages(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<HostTensor> {
    return (await this.runVision(pixels, shape, false)).embeds;
  }

  async encodeImages(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<ImageEncoding> {
    return this.runVision(pixels, shape, true);
  }

  async embedTexts(texts: readonly string[]): Promise<HostTensor> {
    return (await this.runText(this.tokenize(texts, 'longest'), false)).embeds;
  }

  async encodeTexts(texts: readonly string[], options: { padding?: PaddingMode } = {}): Promise<TextEncoding> {
    const batch = this.tokenize(texts, options.padding ?? 'max_length');
    const { embeds, tokens } = await this.runText(batch, true);
    return { embeds, tokens, attentionMask: batch.attentionMask, inputIds: batch.inputIds };
  }

  /** Runs the text graph on ready token ids (benchmarks feed ids directly). */
  async runText(batch: TokenBatch, withTokens: boolean): Promise<{ embeds: HostTensor; tokens: HostTensor }> {
    if (!this.text) throw new InputError('this model folder has no onnx/text_model.onnx', { file: this.folder });
    const dims = [batch.batch, batch.length];
    const outputs = (await this.text({
      input_ids: new Tensor('int64', BigInt64Array.from(batch.inputIds, BigInt), dims),
      attention_mask: new Tensor('int64', BigInt64Array.from(batch.attentionMask, BigInt), dims),
    })) as OnnxOutputs;
    return { embeds: hostTensor(outputs, 'text_embeds', this.folder), tokens: withTokens ? hostTensor(outputs, 'last_hidden_state', this.folder) : emptyTensor() };
  }

  private async runVision(pixels: Float32Array, shape: readonly [number, 3, number, number], withTokens: boolean): Promise<ImageEncoding> {
    if (!this.vision) throw new InputError('this model folder has no onnx/vision_model.onnx', { file: this.folder });
    checkPixelBatch(pixels, shape, this.config);
    const outputs = (await this.vision({ pixel_values: new Tensor('float32', pixels, [...shape]) })) as OnnxOutputs;
    return { embeds: hostTensor(outputs, 'image_embeds', this.folder), tokens: withTokens ? hostTensor(outputs, 'last_hidden_state', this.folder) : emptyTensor() };
  }

  private tokenize(texts: readonly string[], padding: PaddingMode): TokenBatch {
    if (!this.tokenizer) throw new InputError('this model folder has no onnx/text_model.onnx', { file: this.folder });
    return this.tokenizer.encode(texts, padding);
  }

  async dispose(): Promise<void> {
    await this.vision?.dispose();
    await this.text?.dispose();
  }
}

function hostTensor(outputs: OnnxOutputs, name: string, folder: string): HostTensor {
  const output = outputs[name];
  if (!output) throw new InputError(`the ONNX graph has no output "${name}" (outputs: ${Object.keys(outputs).join(', ')})`, { file: folder });
  if (output.type !== 'float32') throw new InputError(`ONNX output "${name}" is ${output.type}, expected float32 (export with dtype fp32)`, { file: folder });
  return { data: Float32Array.from(output.data), shape: [...output.dims] };
}

function emptyTensor(): HostTensor {
  return { data: new Float32Array(0), shape: [0] };
}
