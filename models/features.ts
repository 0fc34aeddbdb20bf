import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AlignedEncoder } from './encoders/aligned-encoder.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { InputError } from '../core/errors.ts';
import { FeatureCache } from './feature-cache.ts';
import { preprocessBoxCrops, preprocessedBatches } from './image-pipeline.ts';
import { startProgress } from '../core/progress.ts';

/**
 * Frozen-encoder features of a run, computed once and held as contiguous float32 rows, so
 * training batches are row copies rather than forward passes. Image features also go
 * to the on-disk FeatureCache, so a second method on the same data skips the encoder.
 */
export class FeatureTable {
  private readonly rowOf = new Map<string, number>();
  private realLengths?: Int32Array;
  /**
   * Text tables: how the encoder tokenised a text (AlignedEncoder.textTokenIds), so a caller can
   * find which token rows a word of it occupies (VCR grounds detection tags token by token).
   */
  textTokenIds?: (text: string) => number[];
  /**
   * Image tables made by poolImageTokenGrid: the table they were pooled from. Region features
   * pool over its full patch grid, so a small object stays a patch of its own while the fusion
   * attends over the cheaper pooled grid.
   */
  fullGrid?: FeatureTable;

  constructor(
    /** Values per row of each part: tokens [tokenCount × tokenDim], embeds [embedDim]. */
    readonly tokenCount: number,
    readonly tokenDim: number,
    readonly embedDim: number,
    readonly tokens: Float32Array,
    readonly embeds: Float32Array,
    keys: readonly string[],
    /** Text only: [rows × tokenCount], 1 for real tokens. */
    readonly masks?: Float32Array,
  ) {
    keys.forEach((key, row) => this.rowOf.set(key, row));
  }

  /**
   * A table that gives the fusion its token shapes, masks and keys but holds no values: the
   * tokens of a tower whose blocks train are computed in each step, never cached.
   */
  static shapeOnly(tokenCount: number, tokenDim: number, embedDim: number, keys: readonly string[], masks?: Float32Array): FeatureTable {
    return new FeatureTable(tokenCount, tokenDim, embedDim, new Float32Array(0), new Float32Array(0), keys, masks);
  }

  get size(): number {
    return this.rowOf.size;
  }

  row(key: string): number {
    const row = this.rowOf.get(key);
    if (row === undefined) throw new Error(`no features for ${key}`);
    return row;
  }

  /**
   * Copies the first `length` token rows of each of `keys` into one [keys.length × length × tokenDim]
   * array (all tokenCount by default).
   */
  gatherTokens(keys: readonly string[], length = this.tokenCount): Float32Array {
    if (this.tokens.length === 0 && keys.length > 0) throw new Error('this table holds no token values: its tokens come from trainable encoder blocks (see FeatureTable.shapeOnly)');
    const stride = this.tokenCount * this.tokenDim;
    const width = length * this.tokenDim;
    const out = new Float32Array(keys.length * width);
    keys.forEach((key, i) => out.set(this.tokens.subarray(this.row(key) * stride, this.row(key) * stride + width), i * width));
    return out;
  }

  gatherMasks(keys: readonly string[], length = this.tokenCount): Float32Array {
    if (!this.masks) throw new Error('this feature table has no masks');
    const out = new Float32Array(keys.length * length);
    keys.forEach((key, i) => out.set(this.masks!.subarray(this.row(key) * this.tokenCount, this.row(key) * this.tokenCount + length), i * length));
    return out;
  }

  /**
   * The longest real (unmasked) length among `keys`. A batch of short texts is cut to it rather
   * than to the run's longest text: padding is masked out of the fusion's attention and its
   * pooling, so the cut changes no output, only the work (VCR mixes 15-token Q→A texts with
   * 40-token QA→R texts).
   */
  longestText(keys: readonly string[]): number {
    if (!this.masks) return this.tokenCount;
    if (!this.realLengths) {
      this.realLengths = new Int32Array(this.size);
      for (let row = 0; row < this.size; row++) {
        let length = 0;
        for (let t = 0; t < this.tokenCount; t++) if (this.masks[row * this.tokenCount + t] > 0) length = t + 1;
        this.realLengths[row] = length;
      }
    }
    let longest = 1;
    for (const key of keys) longest = Math.max(longest, this.realLengths[this.row(key)]);
    return longest;
  }

  gatherEmbeds(keys: readonly string[]): Float32Array {
    if (this.embeds.length === 0 && keys.length > 0) throw new Error('this table holds no embeddings: they come from trainable encoder blocks (see FeatureTable.shapeOnly)');
    const out = new Float32Array(keys.length * this.embedDim);
    keys.forEach((key, i) => out.set(this.embeds.subarray(this.row(key) * this.embedDim, (this.row(key) + 1) * this.embedDim), i * this.embedDim));
    return out;
  }
}

export interface ImageFeatureOptions {
  cacheRoot?: string;
  batchSize?: number;
  concurrency?: number;
}

/** Encodes every distinct image once (cache first), returning their token and embedding rows. */
export async function extractImageFeatures(encoder: AlignedEncoder, imagePaths: readonly string[], options: ImageFeatureOptions = {}): Promise<{ table: FeatureTable; cacheHits: number }> {
  const paths = [...new Set(imagePaths)];
  if (paths.length === 0) throw new InputError('no images to encode');
  const { vision } = encoder.config;
  const tokenCount = 1 + (vision.image_size / vision.patch_size) ** 2;
  const tokenDim = encoder.imageTokenDim;
  const embedDim = encoder.embeddingDim;
  const rowWidth = tokenCount * tokenDim + embedDim;
  const tokens = new Float32Array(paths.length * tokenCount * tokenDim);
  const embeds = new Float32Array(paths.length * embedDim);
  const store = (row: number, values: Float32Array) => {
    tokens.set(values.subarray(0, tokenCount * tokenDim), row * tokenCount * tokenDim);
    embeds.set(values.subarray(tokenCount * tokenDim), row * embedDim);
  };
  const cache = options.cacheRoot ? new FeatureCache(join(options.cacheRoot, 'image-features'), encoder.fingerprint, encoder.preprocessing, 'vision-last-hidden-state+image-embeds') : undefined;
  const missing: { path: string; row: number; key?: string }[] = [];
  for (let row = 0; row < paths.length; row++) {
    const key = cache ? await FeatureCache.contentKey(paths[row]).catch(() => undefined) : undefined;
    const cached = cache && key ? await cache.get(key, rowWidth) : undefined;
    if (cached) store(row, cached);
    else missing.push({ path: paths[row], row, key });
  }
  if (missing.length > 0) {
    const progress = startProgress('encoding images', missing.length, ['images/s']);
    const started = performance.now();
    let done = 0;
    for await (const batch of preprocessedBatches(missing.map((m) => m.path), encoder.preprocessing, { batchSize: options.batchSize ?? 32, concurrency: options.concurrency ?? 4 })) {
      const encoding = await encoder.encodeImages(batch.pixels, batch.shape);
      for (let i = 0; i < batch.files.length; i++) {
        const entry = missing[done + i];
        const values = new Float32Array(rowWidth);
        values.set(encoding.tokens.data.subarray(i * tokenCount * tokenDim, (i + 1) * tokenCount * tokenDim));
        values.set(encoding.embeds.data.subarray(i * embedDim, (i + 1) * embedDim), tokenCount * tokenDim);
        store(entry.row, values);
        if (cache && entry.key) await cache.put(entry.key, values);
      }
      done += batch.files.length;
      progress.tick(batch.files.length, { 'images/s': (done / ((performance.now() - started) / 1000)).toFixed(1) });
    }
    progress.stop();
  }
  return { table: new FeatureTable(tokenCount, tokenDim, embedDim, tokens, embeds, paths), cacheHits: paths.length - missing.length };
}

/**
 * Encodes every distinct text once. Texts are batched in order of length and padded to the
 * longest of their batch, and token rows are cut to the longest text of the run (not the
 * model's context length): the text encoder is causal, so padding after a text changes none
 * of its outputs, only the work. With `cacheRoot`, the whole table is kept on disk, keyed by
 * the encoder's fingerprint and the texts, so the other methods of a comparison (same data,
 * same texts) read it instead of encoding again; a VCR split has 20 texts per question.
 */
export async function extractTextFeatures(encoder: AlignedEncoder, allTexts: readonly string[], options: { batchSize?: number; cacheRoot?: string } = {}): Promise<FeatureTable> {
  const texts = [...new Set(allTexts)];
  if (texts.length === 0) throw new InputError('no texts to encode');
  const tokenDim = encoder.textTokenDim;
  const embedDim = encoder.embeddingDim;
  const cacheFile = options.cacheRoot
    ? join(options.cacheRoot, 'text-features', `${createHash('sha256').update(JSON.stringify({ fingerprint: encoder.fingerprint, kind: 'text-last-hidden-state+text-embeds', texts })).digest('hex').slice(0, 32)}.f32`)
    : undefined;
  const tokenIdsOf = (text: string) => encoder.textTokenIds(text);
  if (cacheFile) {
    const cached = await readCachedTextTable(cacheFile, texts, tokenDim, embedDim);
    if (cached) return Object.assign(cached, { textTokenIds: tokenIdsOf });
  }
  const batchSize = options.batchSize ?? 64;
  const order = texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length || a - b);
  const encoded: { rows: number[]; encoding: Awaited<ReturnType<AlignedEncoder['encodeTexts']>> }[] = [];
  let longest = 1;
  const progress = startProgress('encoding texts', texts.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const encoding = await encoder.encodeTexts(rows.map((row) => texts[row]), { padding: 'longest' });
    const length = encoding.tokens.shape[1];
    for (let i = 0; i < rows.length; i++) {
      let real = 0;
      for (let t = 0; t < length; t++) real += encoding.attentionMask[i * length + t];
      longest = Math.max(longest, real);
    }
    encoded.push({ rows, encoding });
    progress.tick(rows.length);
  }
  progress.stop();
  const tokens = new Float32Array(texts.length * longest * tokenDim);
  const masks = new Float32Array(texts.length * longest);
  const embeds = new Float32Array(texts.length * embedDim);
  for (const { rows, encoding } of encoded) {
    const length = encoding.tokens.shape[1];
    rows.forEach((row, i) => {
      for (let t = 0; t < Math.min(length, longest); t++) {
        tokens.set(encoding.tokens.data.subarray((i * length + t) * tokenDim, (i * length + t + 1) * tokenDim), (row * longest + t) * tokenDim);
        masks[row * longest + t] = encoding.attentionMask[i * length + t];
      }
      embeds.set(encoding.embeds.data.subarray(i * embedDim, (i + 1) * embedDim), row * embedDim);
    });
  }
  const table = Object.assign(new FeatureTable(longest, tokenDim, embedDim, tokens, embeds, texts, masks), { textTokenIds: tokenIdsOf });
  if (cacheFile) await writeCachedTextTable(cacheFile, table);
  return table;
}

/** Cached table layout: [longest as float32], tokens, embeds, masks. Anything that does not add up is a miss. */
async function readCachedTextTable(file: string, texts: string[], tokenDim: number, embedDim: number): Promise<FeatureTable | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch {
    return undefined;
  }
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength - (bytes.byteLength % 4)));
  const longest = values[0];
  const n = texts.length;
  if (!Number.isInteger(longest) || longest < 1 || values.length !== 1 + n * (longest * tokenDim + embedDim + longest)) return undefined;
  const tokensEnd = 1 + n * longest * tokenDim;
  const embedsEnd = tokensEnd + n * embedDim;
  return new FeatureTable(longest, tokenDim, embedDim, values.subarray(1, tokensEnd), values.subarray(tokensEnd, embedsEnd), texts, values.subarray(embedsEnd));
}

async function writeCachedTextTable(file: string, table: FeatureTable): Promise<void> {
  const values = new Float32Array(1 + table.tokens.length + table.embeds.length + table.masks!.length);
  values[0] = table.tokenCount;
  values.set(table.tokens, 1);
  values.set(table.embeds, 1 + table.tokens.length);
  values.set(table.masks!, 1 + table.tokens.length + table.embeds.length);
  await writeFileAtomically(file, new Uint8Array(values.buffer));
}

/**
 * Average-pools the patch grid of image token rows by `factor` × `factor` (the class token
 * is kept). Fusion cost grows with the square of its sequence length; on a CPU, an 8×8 grid
 * pooled to 4×4 makes the heads train about 3× faster while boxes still land on distinct cells.
 */
export function poolImageTokenGrid(table: FeatureTable, keys: readonly string[], factor: number): FeatureTable {
  if (factor === 1) return table;
  const side = Math.round(Math.sqrt(table.tokenCount - 1));
  if (side * side !== table.tokenCount - 1 || side % factor !== 0) {
    throw new InputError(`--set fusion.image_pool=${factor} does not divide the encoder's ${side}×${side} patch grid`);
  }
  const pooledSide = side / factor;
  const pooledCount = 1 + pooledSide * pooledSide;
  const dim = table.tokenDim;
  const out = new Float32Array(keys.length * pooledCount * dim);
  const share = 1 / (factor * factor);
  keys.forEach((key, row) => {
    const source = table.row(key) * table.tokenCount * dim;
    const target = row * pooledCount * dim;
    out.set(table.tokens.subarray(source, source + dim), target);
    for (let r = 0; r < side; r++) {
      for (let c = 0; c < side; c++) {
        const from = source + (1 + r * side + c) * dim;
        const to = target + (1 + Math.floor(r / factor) * pooledSide + Math.floor(c / factor)) * dim;
        for (let d = 0; d < dim; d++) out[to + d] += table.tokens[from + d] * share;
      }
    }
  });
  return Object.assign(new FeatureTable(pooledCount, dim, table.embedDim, out, table.gatherEmbeds(keys), keys), { fullGrid: table });
}

/**
 * A stage of the image tower to cache: the input of its first trainable block (or the
 * preprocessed pixels when every weight trains). Only frozen computation goes into it;
 * `kind` names the stage in the cache key next to the model's fingerprint.
 */
export interface ImageStage {
  kind: string;
  /** Values per image: tokenCount × tokenDim. */
  tokenCount: number;
  tokenDim: number;
  encode(pixels: Float32Array, shape: readonly [number, 3, number, number]): Promise<Float32Array>;
}

/** Every distinct image at a stage of the tower (cache first, keyed by fingerprint, preprocessing, stage and image bytes). */
export async function extractImageStage(encoder: AlignedEncoder, imagePaths: readonly string[], stage: ImageStage, options: ImageFeatureOptions = {}): Promise<{ table: FeatureTable; cacheHits: number }> {
  const paths = [...new Set(imagePaths)];
  if (paths.length === 0) throw new InputError('no images to encode');
  const width = stage.tokenCount * stage.tokenDim;
  const values = new Float32Array(paths.length * width);
  const cache = options.cacheRoot ? new FeatureCache(join(options.cacheRoot, 'image-features'), encoder.fingerprint, encoder.preprocessing, stage.kind) : undefined;
  const missing: { path: string; row: number; key?: string }[] = [];
  for (let row = 0; row < paths.length; row++) {
    const key = cache ? await FeatureCache.contentKey(paths[row]).catch(() => undefined) : undefined;
    const cached = cache && key ? await cache.get(key, width) : undefined;
    if (cached) values.set(cached, row * width);
    else missing.push({ path: paths[row], row, key });
  }
  let done = 0;
  for await (const batch of preprocessedBatches(missing.map((m) => m.path), encoder.preprocessing, { batchSize: options.batchSize ?? 32, concurrency: options.concurrency ?? 4 })) {
    const encoded = await stage.encode(batch.pixels, batch.shape);
    for (let i = 0; i < batch.files.length; i++) {
      const entry = missing[done + i];
      const rowValues = encoded.subarray(i * width, (i + 1) * width);
      values.set(rowValues, entry.row * width);
      if (cache && entry.key) await cache.put(entry.key, rowValues.slice());
    }
    done += batch.files.length;
  }
  return { table: new FeatureTable(stage.tokenCount, stage.tokenDim, 0, values, new Float32Array(0), paths), cacheHits: paths.length - missing.length };
}

/** A stage of the text tower: the input of its first trainable block, or the token ids (stored as float32) when every weight trains. */
export interface TextStage {
  kind: string;
  tokenDim: number;
  /** Stage values [n, length, tokenDim] of texts padded to the longest of the batch, with their mask and EOS positions. */
  encode(texts: readonly string[]): Promise<{ values: Float32Array; length: number; attentionMask: Int32Array; eosPositions: Int32Array }>;
}

/**
 * Every distinct text at a stage of the tower, cut to the run's longest text as
 * extractTextFeatures does (the tower is causal: padding after a text changes nothing
 * before it). Each text's EOS position comes along, since the pooled output is read there.
 * Text stages are not kept on disk: they are cheap next to images, and a stage's values
 * exist only for this model and this boundary.
 */
export async function extractTextStage(allTexts: readonly string[], stage: TextStage, options: { batchSize?: number } = {}): Promise<{ table: FeatureTable; eosPositions: Int32Array; keys: string[] }> {
  const texts = [...new Set(allTexts)];
  if (texts.length === 0) throw new InputError('no texts to encode');
  const batchSize = options.batchSize ?? 64;
  const order = texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length || a - b);
  const encoded: { rows: number[]; result: Awaited<ReturnType<TextStage['encode']>> }[] = [];
  let longest = 1;
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const result = await stage.encode(rows.map((row) => texts[row]));
    for (let i = 0; i < rows.length; i++) {
      let real = 0;
      for (let t = 0; t < result.length; t++) real += result.attentionMask[i * result.length + t];
      longest = Math.max(longest, real);
    }
    encoded.push({ rows, result });
  }
  const dim = stage.tokenDim;
  const tokens = new Float32Array(texts.length * longest * dim);
  const masks = new Float32Array(texts.length * longest);
  const eosPositions = new Int32Array(texts.length);
  for (const { rows, result } of encoded) {
    rows.forEach((row, i) => {
      for (let t = 0; t < Math.min(result.length, longest); t++) {
        tokens.set(result.values.subarray((i * result.length + t) * dim, (i * result.length + t + 1) * dim), (row * longest + t) * dim);
        masks[row * longest + t] = result.attentionMask[i * result.length + t];
      }
      eosPositions[row] = result.eosPositions[i];
    });
  }
  return { table: new FeatureTable(longest, dim, 0, tokens, new Float32Array(0), texts, masks), eosPositions, keys: texts };
}

/** A pixel box [x1, y1, x2, y2] of an image file. */
export type PixelBox = readonly [number, number, number, number];

/** The key of one object's row in a region table. */
export function regionKey(imagePath: string, box: PixelBox): string {
  return `${imagePath}#${box.map((v) => Math.round(v * 100) / 100).join(',')}`;
}

/**
 * Object features, R-CNN style: each box's square crop (preprocessBoxCrops) through the image
 * encoder, its row the concatenation of the projected embedding, the class token and the mean
 * of the patch tokens (a [1 × (embed + 2·hidden)] token per object). On SynthScenes the bundled
 * CLIP's patch grid reads an object's shape at 36–39% (12-px objects on 12-px patches), its crops
 * at 93.5% (bench/region-probe.ts --crops). Cached per image and box list, as image features are.
 */
export async function extractRegionFeatures(encoder: AlignedEncoder, objects: ReadonlyMap<string, readonly PixelBox[]>, options: ImageFeatureOptions = {}): Promise<{ table: FeatureTable; cacheHits: number }> {
  const tokenDim = encoder.embeddingDim + 2 * encoder.imageTokenDim;
  const images = [...objects.entries()].filter(([, boxes]) => boxes.length > 0);
  const keys = images.flatMap(([path, boxes]) => boxes.map((box) => regionKey(path, box)));
  const rows = new Float32Array(keys.length * tokenDim);
  const cache = options.cacheRoot ? new FeatureCache(join(options.cacheRoot, 'region-features'), encoder.fingerprint, encoder.preprocessing, 'box-crop-0.25+embeds+cls+mean-patch') : undefined;
  const { cropHeight: height, cropWidth: width } = encoder.preprocessing;
  const progress = startProgress('encoding object crops', keys.length, ['crops/s']);
  const started = performance.now();
  let offset = 0;
  let done = 0;
  let cacheHits = 0;
  const batchSize = options.batchSize ?? 64;
  for (const [path, boxes] of images) {
    const key = cache ? createHash('sha256').update(`${await FeatureCache.contentKey(path).catch(() => path)}|${JSON.stringify(boxes)}`).digest('hex') : undefined;
    const cached = cache && key ? await cache.get(key, boxes.length * tokenDim) : undefined;
    if (cached) {
      rows.set(cached, offset * tokenDim);
      cacheHits += boxes.length;
    } else {
      const values = new Float32Array(boxes.length * tokenDim);
      for (let start = 0; start < boxes.length; start += batchSize) {
        const chunk = boxes.slice(start, start + batchSize);
        const pixels = new Float32Array(chunk.length * 3 * height * width);
        (await preprocessBoxCrops(path, chunk, encoder.preprocessing)).forEach((p, i) => pixels.set(p, i * p.length));
        const encoding = await encoder.encodeImages(pixels, [chunk.length, 3, height, width]);
        const [, tokenCount, hidden] = encoding.tokens.shape;
        const embedDim = encoding.embeds.shape[1];
        chunk.forEach((_, i) => {
          const row = (start + i) * tokenDim;
          values.set(encoding.embeds.data.subarray(i * embedDim, (i + 1) * embedDim), row);
          const base = i * tokenCount * hidden;
          values.set(encoding.tokens.data.subarray(base, base + hidden), row + embedDim);
          for (let t = 1; t < tokenCount; t++) for (let d = 0; d < hidden; d++) values[row + embedDim + hidden + d] += encoding.tokens.data[base + t * hidden + d] / (tokenCount - 1);
        });
      }
      rows.set(values, offset * tokenDim);
      if (cache && key) await cache.put(key, values);
    }
    offset += boxes.length;
    done += boxes.length;
    progress.tick(boxes.length, { 'crops/s': (done / ((performance.now() - started) / 1000)).toFixed(1) });
  }
  progress.stop();
  return { table: new FeatureTable(1, tokenDim, 0, rows, new Float32Array(0), keys), cacheHits };
}
