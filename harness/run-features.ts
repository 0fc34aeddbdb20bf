import { join } from 'node:path';
import type { AlignedEncoder } from '../models/encoders/aligned-encoder.ts';
import { InputError } from './errors.ts';
import { FeatureCache } from './feature-cache.ts';
import { preprocessedBatches } from './images.ts';
import { startProgress } from './progress.ts';

/**
 * Frozen-encoder features of a run, computed once and held as contiguous float32 rows, so
 * training batches are row copies rather than forward passes. Image features also go
 * to the on-disk FeatureCache, so a second method on the same data skips the encoder.
 */
export class FeatureTable {
  private readonly rowOf = new Map<string, number>();

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

  get size(): number {
    return this.rowOf.size;
  }

  row(key: string): number {
    const row = this.rowOf.get(key);
    if (row === undefined) throw new Error(`no features for ${key}`);
    return row;
  }

  /** Copies the token rows of `keys` into one [keys.length × tokenCount × tokenDim] array. */
  gatherTokens(keys: readonly string[]): Float32Array {
    const width = this.tokenCount * this.tokenDim;
    const out = new Float32Array(keys.length * width);
    keys.forEach((key, i) => out.set(this.tokens.subarray(this.row(key) * width, (this.row(key) + 1) * width), i * width));
    return out;
  }

  gatherMasks(keys: readonly string[]): Float32Array {
    if (!this.masks) throw new Error('this feature table has no masks');
    const out = new Float32Array(keys.length * this.tokenCount);
    keys.forEach((key, i) => out.set(this.masks!.subarray(this.row(key) * this.tokenCount, (this.row(key) + 1) * this.tokenCount), i * this.tokenCount));
    return out;
  }

  gatherEmbeds(keys: readonly string[]): Float32Array {
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
 * Encodes every distinct text once. Token rows are cut to the longest text of the run (not
 * the model's context length): the encoder is causal, so trailing padding changes nothing,
 * and the fusion then attends over fewer positions.
 */
export async function extractTextFeatures(encoder: AlignedEncoder, allTexts: readonly string[], options: { batchSize?: number } = {}): Promise<FeatureTable> {
  const texts = [...new Set(allTexts)];
  if (texts.length === 0) throw new InputError('no texts to encode');
  const batchSize = options.batchSize ?? 64;
  const encodings = [];
  let longest = 1;
  const progress = startProgress('encoding texts', texts.length);
  for (let start = 0; start < texts.length; start += batchSize) {
    const encoding = await encoder.encodeTexts(texts.slice(start, start + batchSize), { padding: 'max_length' });
    const [count, length] = [encoding.tokens.shape[0], encoding.tokens.shape[1]];
    for (let i = 0; i < count; i++) {
      let real = 0;
      for (let t = 0; t < length; t++) real += encoding.attentionMask[i * length + t];
      longest = Math.max(longest, real);
    }
    encodings.push(encoding);
    progress.tick(count);
  }
  progress.stop();
  const tokenDim = encoder.textTokenDim;
  const embedDim = encoder.embeddingDim;
  const tokens = new Float32Array(texts.length * longest * tokenDim);
  const masks = new Float32Array(texts.length * longest);
  const embeds = new Float32Array(texts.length * embedDim);
  let row = 0;
  for (const encoding of encodings) {
    const [count, length] = [encoding.tokens.shape[0], encoding.tokens.shape[1]];
    for (let i = 0; i < count; i++, row++) {
      for (let t = 0; t < longest; t++) {
        tokens.set(encoding.tokens.data.subarray((i * length + t) * tokenDim, (i * length + t + 1) * tokenDim), (row * longest + t) * tokenDim);
        masks[row * longest + t] = encoding.attentionMask[i * length + t];
      }
      embeds.set(encoding.embeds.data.subarray(i * embedDim, (i + 1) * embedDim), row * embedDim);
    }
  }
  return new FeatureTable(longest, tokenDim, embedDim, tokens, embeds, texts, masks);
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
  return new FeatureTable(pooledCount, dim, table.embedDim, out, table.gatherEmbeds(keys), keys);
}
