import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLIPTextModelWithProjection, CLIPVisionModelWithProjection, SiglipTextModel, SiglipVisionModel, Tensor, env, type PreTrainedModel } from '@huggingface/transformers';
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
import { ClipTokenizer, type PaddingMode } from './clip-tokenizer.ts';
import type { TokenBatch } from './clip.ts';

/**
 * Loads transformers.js for local files only: a model folder is read from disk and nothing
 * is ever fetched (there is no network here, and a benchmark must not change under a user
 * because a hub file changed).
 */
export function useLocalFilesOnly(): void {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.useBrowserCache = false;
}

type OnnxOutputs = Record<string, { data: ArrayLike<number>; dims: number[]; type: string }>;

/** A graph input's declared shape: a number is a fixed size, a string a named dynamic axis. */
export type DeclaredShape = readonly (number | string)[];

/**
 * What the text graph accepts, read from the ONNX file's declared input shapes. Exports in the
 * wild often fix the sequence (torch.onnx.export of openai/CLIP without a dynamic axis takes
 * exactly 77 tokens) and sometimes the batch.
 */
export interface TextGraphInputs {
  /** Declared shape per input name (input_ids, attention_mask). */
  declared: Record<string, DeclaredShape>;
  /** Every batch is padded to exactly this many tokens, when the graph fixes it. */
  fixedLength?: number;
  /** Batches are run in chunks of exactly this many texts, when the graph fixes it. */
  fixedBatch?: number;
}

/**
 * Inference-only encoder over a CLIP ONNX export (onnx/vision_model.onnx: pixel_values →
 * image_embeds [, last_hidden_state]; onnx/text_model.onnx: input_ids, attention_mask →
 * text_embeds [, last_hidden_state]), run by ONNX Runtime through transformers.js from the
 * local folder only, in fp32. Either graph may be absent; asking for it then says so.
 *
 * A SigLIP folder (model_type "siglip") is run through transformers.js' SiglipVisionModel /
 * SiglipTextModel, with the public exports' contract: vision pixel_values → last_hidden_state,
 * pooler_output (the attention-pooling head's output, the embedding); text input_ids (and
 * attention_mask only if the graph declares one) → last_hidden_state, pooler_output. Texts are
 * always padded to max_length, and the image tokens put pooler_output first (see TfjsClipEncoder).
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
    /** The text graph's declared inputs (undefined without a text graph). */
    readonly textInputs: TextGraphInputs | undefined,
    /** The vision graph's batch size, when its pixel_values input fixes it (exports without a dynamic batch axis). */
    readonly visionFixedBatch: number | undefined,
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
        const siglip = config.family === 'siglip';
        const model = kind === 'vision' ? (siglip ? SiglipVisionModel : CLIPVisionModelWithProjection) : siglip ? SiglipTextModel : CLIPTextModelWithProjection;
        return await model.from_pretrained(folder, options);
      } catch (error) {
        throw new InputError(`cannot load the ONNX graph: ${(error as Error).message.split('\n')[0]}`, { file });
      }
    };
    const vision = await load('vision');
    const text = await load('text');
    if (!vision && !text) throw new InputError('no onnx/vision_model.onnx or onnx/text_model.onnx', { file: folder });
    const tokenizer = text ? await ClipTokenizer.load(folder, config.text.max_position_embeddings, { alwaysMaxLength: config.family === 'siglip' }) : undefined;
    const textInputs = text ? readTextGraphInputs(declaredInputShapes(text), join(folder, 'onnx', 'text_model.onnx')) : undefined;
    const preprocessing = await readModelPreprocessing(folder, config);
    const fingerprint = await fingerprintModelFolder(folder, 'onnx');
    const pixelShape = vision ? declaredInputShapes(vision).pixel_values : undefined;
    const visionFixedBatch = typeof pixelShape?.[0] === 'number' && pixelShape[0] > 0 ? pixelShape[0] : undefined;
    return new OnnxClipEncoder(folder, config, vision, text, tokenizer, preprocessing, fingerprint, textInputs, visionFixedBatch);
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
    // Fitted here too, so the ids and mask returned match the tokens the graph saw.
    const batch = this.fitToGraph(this.tokenize(texts, options.padding ?? 'max_length'));
    const { embeds, tokens } = await this.runText(batch, true);
    return { embeds, tokens, attentionMask: batch.attentionMask, inputIds: batch.inputIds };
  }

  /**
   * Runs the text graph on ready token ids (benchmarks feed ids directly). A graph with a fixed
   * sequence length gets every batch padded to it; one with a fixed batch size is run in chunks
   * of that size. Padding is causal-safe: CLIP pools at EOS and masks what follows it, so the
   * embeddings do not depend on the padded length.
   */
  async runText(batch: TokenBatch, withTokens: boolean): Promise<{ embeds: HostTensor; tokens: HostTensor }> {
    if (!this.text || !this.textInputs || !this.tokenizer) throw new InputError('this model folder has no onnx/text_model.onnx', { file: this.folder });
    const file = join(this.folder, 'onnx', 'text_model.onnx');
    const fitted = this.fitToGraph(batch);
    const chunk = this.textInputs.fixedBatch ?? fitted.batch;
    const embeds: HostTensor[] = [];
    const tokens: HostTensor[] = [];
    for (let start = 0; start < fitted.batch; start += chunk) {
      const part = batchRows(fitted, start, chunk);
      const dims = [part.batch, part.length];
      const feeds: Record<string, Tensor> = { input_ids: new Tensor('int64', BigInt64Array.from(part.inputIds, BigInt), dims) };
      // SigLIP's exports take input_ids only (it attends over padding); CLIP's take the mask too.
      if (this.config.family !== 'siglip' || 'attention_mask' in this.textInputs.declared) {
        feeds.attention_mask = new Tensor('int64', BigInt64Array.from(part.attentionMask, BigInt), dims);
      }
      const outputs = await runGraph(this.text, feeds, this.textInputs.declared, file);
      const rows = Math.min(chunk, fitted.batch - start);
      embeds.push(firstRows(hostTensor(outputs, this.embedsOutput('text'), this.folder), rows));
      if (withTokens) tokens.push(firstRows(hostTensor(outputs, 'last_hidden_state', this.folder), rows));
    }
    return { embeds: concatRows(embeds), tokens: withTokens ? concatRows(tokens) : emptyTensor() };
  }

  private async runVision(pixels: Float32Array, shape: readonly [number, 3, number, number], withTokens: boolean): Promise<ImageEncoding> {
    if (!this.vision) throw new InputError('this model folder has no onnx/vision_model.onnx', { file: this.folder });
    checkPixelBatch(pixels, shape, this.config);
    const file = join(this.folder, 'onnx', 'vision_model.onnx');
    const declared = declaredInputShapes(this.vision);
    const [count, , height, width] = shape;
    const perImage = 3 * height * width;
    // A graph with a fixed batch runs in full chunks of it; the last chunk repeats its last image.
    const chunk = this.visionFixedBatch ?? count;
    const embeds: HostTensor[] = [];
    const tokens: HostTensor[] = [];
    for (let start = 0; start < count; start += chunk) {
      const rows = Math.min(chunk, count - start);
      let part = pixels.subarray(start * perImage, (start + rows) * perImage);
      if (rows < chunk) {
        const padded = new Float32Array(chunk * perImage);
        padded.set(part);
        for (let r = rows; r < chunk; r++) padded.set(part.subarray((rows - 1) * perImage), r * perImage);
        part = padded;
      }
      const outputs = await runGraph(this.vision, { pixel_values: new Tensor('float32', part, [chunk, 3, height, width]) }, declared, file);
      const partEmbeds = firstRows(hostTensor(outputs, this.embedsOutput('image'), this.folder), rows);
      embeds.push(partEmbeds);
      if (withTokens) {
        const partTokens = firstRows(hostTensor(outputs, 'last_hidden_state', this.folder), rows);
        tokens.push(this.config.family === 'siglip' ? prependRows(partEmbeds, partTokens) : partTokens);
      }
    }
    return { embeds: concatRows(embeds), tokens: withTokens ? concatRows(tokens) : emptyTensor() };
  }

  /** The graph output holding the embeddings: CLIP's projected *_embeds, SigLIP's pooler_output. */
  private embedsOutput(kind: 'image' | 'text'): string {
    return this.config.family === 'siglip' ? 'pooler_output' : `${kind}_embeds`;
  }

  /** The batch padded to the text graph's fixed sequence length, when it has one. */
  private fitToGraph(batch: TokenBatch): TokenBatch {
    const length = this.textInputs?.fixedLength;
    if (length === undefined || !this.tokenizer) return batch;
    return padToFixedLength(batch, length, this.tokenizer.padTokenId, join(this.folder, 'onnx', 'text_model.onnx'));
  }

  private tokenize(texts: readonly string[], padding: PaddingMode): TokenBatch {
    if (!this.tokenizer) throw new InputError('this model folder has no onnx/text_model.onnx', { file: this.folder });
    return this.tokenizer.encode(texts, padding);
  }

  textTokenIds(text: string): number[] {
    if (!this.tokenizer) throw new InputError('this model folder has no onnx/text_model.onnx', { file: this.folder });
    return this.tokenizer.encodeOne(text);
  }

  async dispose(): Promise<void> {
    await this.vision?.dispose();
    await this.text?.dispose();
  }
}

/** The declared input shapes of a transformers.js model's ONNX session (onnxruntime's inputMetadata). */
function declaredInputShapes(model: PreTrainedModel): Record<string, DeclaredShape> {
  const sessions = (model as unknown as { sessions?: Record<string, { inputMetadata?: readonly { name: string; isTensor: boolean; shape?: DeclaredShape }[] }> }).sessions ?? {};
  const declared: Record<string, DeclaredShape> = {};
  for (const session of Object.values(sessions)) {
    for (const input of session.inputMetadata ?? []) if (input.isTensor && input.shape) declared[input.name] = input.shape;
  }
  return declared;
}

/**
 * Reads what the text graph accepts from its declared shapes: [batch, sequence] for input_ids
 * and attention_mask, each axis a fixed size or a named dynamic one. A graph whose two inputs
 * disagree, or that declares another rank, cannot be fed and is refused here, at load time.
 */
export function readTextGraphInputs(declared: Record<string, DeclaredShape>, file: string): TextGraphInputs {
  const fixed = (axis: number): number | undefined => {
    const sizes = new Set<number | string>();
    for (const name of ['input_ids', 'attention_mask']) {
      const shape = declared[name];
      if (shape === undefined) continue;
      if (shape.length !== 2) throw new InputError(`the text graph declares ${name} ${formatShape(shape)}; expected [batch, sequence]`, { file, field: name });
      sizes.add(typeof shape[axis] === 'number' && shape[axis] > 0 ? shape[axis] : 'dynamic');
    }
    if (sizes.size > 1) throw new InputError(`input_ids and attention_mask declare different shapes (${formatShape(declared.input_ids)} vs ${formatShape(declared.attention_mask)})`, { file });
    const [size] = sizes;
    return typeof size === 'number' ? size : undefined;
  };
  const inputs: TextGraphInputs = { declared };
  const fixedBatch = fixed(0);
  const fixedLength = fixed(1);
  if (fixedBatch !== undefined) inputs.fixedBatch = fixedBatch;
  if (fixedLength !== undefined) inputs.fixedLength = fixedLength;
  return inputs;
}

/**
 * Re-pads a token batch to exactly `length` tokens per text (a graph with a fixed sequence
 * length). A text with more tokens than that cannot be fed whole and is refused by index: cutting
 * it would move CLIP's pooled EOS token and silently change its embedding.
 */
export function padToFixedLength(batch: TokenBatch, length: number, padTokenId: number, file: string): TokenBatch {
  if (batch.length === length) return batch;
  const inputIds = new Int32Array(batch.batch * length).fill(padTokenId);
  const attentionMask = new Int32Array(batch.batch * length);
  for (let row = 0; row < batch.batch; row++) {
    let used = 0;
    for (let k = 0; k < batch.length; k++) if (batch.attentionMask[row * batch.length + k]) used = k + 1;
    if (used > length) {
      throw new InputError(`text ${row + 1} of the batch has ${used} tokens, but the text graph takes exactly ${length} (input_ids declared [batch, ${length}]): shorten it to at most ${length} tokens, special tokens included`, { file, field: 'input_ids' });
    }
    const copied = Math.min(batch.length, length);
    inputIds.set(batch.inputIds.subarray(row * batch.length, row * batch.length + copied), row * length);
    attentionMask.set(batch.attentionMask.subarray(row * batch.length, row * batch.length + copied), row * length);
  }
  return { inputIds, attentionMask, batch: batch.batch, length };
}

/** Rows start..start+count of a batch; past the end, the last row repeats (a fixed-batch graph needs full chunks). */
function batchRows(batch: TokenBatch, start: number, count: number): TokenBatch {
  if (start === 0 && count === batch.batch) return batch;
  const inputIds = new Int32Array(count * batch.length);
  const attentionMask = new Int32Array(count * batch.length);
  for (let i = 0; i < count; i++) {
    const row = Math.min(start + i, batch.batch - 1);
    inputIds.set(batch.inputIds.subarray(row * batch.length, (row + 1) * batch.length), i * batch.length);
    attentionMask.set(batch.attentionMask.subarray(row * batch.length, (row + 1) * batch.length), i * batch.length);
  }
  return { inputIds, attentionMask, batch: count, length: batch.length };
}

function firstRows(tensor: HostTensor, rows: number): HostTensor {
  if (tensor.shape[0] === rows) return tensor;
  const perRow = tensor.data.length / tensor.shape[0];
  return { data: tensor.data.slice(0, rows * perRow), shape: [rows, ...tensor.shape.slice(1)] };
}

/** [N, 1 + L, D]: each row's vector of `first` [N, D] before its tokens of `rest` [N, L, D]. */
function prependRows(first: HostTensor, rest: HostTensor): HostTensor {
  const [n, length, dim] = rest.shape;
  const data = new Float32Array(n * (length + 1) * dim);
  for (let row = 0; row < n; row++) {
    data.set(first.data.subarray(row * dim, (row + 1) * dim), row * (length + 1) * dim);
    data.set(rest.data.subarray(row * length * dim, (row + 1) * length * dim), (row * (length + 1) + 1) * dim);
  }
  return { data, shape: [n, length + 1, dim] };
}

function concatRows(parts: HostTensor[]): HostTensor {
  if (parts.length === 1) return parts[0];
  const data = new Float32Array(parts.reduce((sum, part) => sum + part.data.length, 0));
  let offset = 0;
  for (const part of parts) {
    data.set(part.data, offset);
    offset += part.data.length;
  }
  return { data, shape: [parts.reduce((sum, part) => sum + part.shape[0], 0), ...parts[0].shape.slice(1)] };
}

/**
 * Runs a graph. ONNX Runtime refusing the feeds (a shape the export did not allow) is the
 * model's contract, not a vlbench bug: it becomes an InputError naming each input with the shape
 * given and the shape the graph declares.
 */
async function runGraph(model: PreTrainedModel, feeds: Record<string, Tensor>, declared: Record<string, DeclaredShape>, file: string): Promise<OnnxOutputs> {
  try {
    return (await model(feeds)) as OnnxOutputs;
  } catch (error) {
    const given = Object.entries(feeds).map(([name, tensor]) => `${name} ${formatShape(tensor.dims)} (${tensor.type})`).join(', ');
    const expected = Object.entries(declared).map(([name, shape]) => `${name} ${formatShape(shape)}`).join(', ') || 'no input shapes';
    const reason = (error as Error).message.replace(/\s+/g, ' ').trim();
    throw new InputError(`ONNX Runtime cannot run the graph on ${given}; the graph declares ${expected}: ${reason}`, { file });
  }
}

function formatShape(shape: DeclaredShape | undefined): string {
  return shape === undefined ? '(not declared)' : `[${shape.join(', ')}]`;
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
