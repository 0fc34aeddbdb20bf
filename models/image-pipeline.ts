import { readFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import { isEmbeddedImage, readImageBytes } from '../core/image-bytes.ts';
import { imageAddon, imageAddonStatus, type AxisCoefficients, type ImageAddon } from './image-native.ts';

/**
 * The image pipeline: decode (JPEG, PNG, WebP) with sharp, apply EXIF rotation, then
 * CLIP-style preprocessing as Hugging Face's CLIPImageProcessor does it: resize the
 * shortest side with PIL's bicubic filter (resampleBicubicLikePil, bit for bit), center
 * crop, rescale to [0, 1], normalise by mean/std, channels first ([3, H, W], the layout of
 * HF's pixel_values and of ONNX exports).
 */
export interface ImagePreprocessing {
  doResize: boolean;
  resizeShortestEdge: number;
  /**
   * `size: {height, width}` in the config: the image is resized to exactly this size, its aspect
   * not kept (transformers' resize for that form of `size`; SigLIP's squash to 224×224).
   * Absent: the shortest side goes to resizeShortestEdge, the aspect kept.
   */
  resizeExact?: { width: number; height: number };
  doCenterCrop: boolean;
  cropHeight: number;
  cropWidth: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

/**
 * Bumped when the same file and settings give different pixels (the feature cache keys on it):
 * 2 = resizing by PIL's bicubic arithmetic, as CLIPImageProcessor does (1 was sharp's cubic).
 */
export const IMAGE_PIPELINE_VERSION = 2;

/** openai/clip-vit-base-patch32's preprocessor_config.json. */
export const OPENAI_CLIP_PREPROCESSING: ImagePreprocessing = {
  doResize: true,
  resizeShortestEdge: 224,
  doCenterCrop: true,
  cropHeight: 224,
  cropWidth: 224,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

/** A decoded image larger than this many pixels is refused (a "pixel bomb"): 8192 × 8192. */
export const MAX_INPUT_PIXELS = 8192 * 8192;

const sizeField = z.union([
  z.number().int().positive(),
  z.object({ shortest_edge: z.number().int().positive() }),
  z.object({ height: z.number().int().positive(), width: z.number().int().positive() }),
]);
const triple = z.tuple([z.number(), z.number(), z.number()]);
const preprocessorConfigSchema = z.object({
  image_processor_type: z.string().optional(),
  do_resize: z.boolean().default(true),
  size: sizeField.default({ shortest_edge: 224 }),
  resample: z.number().int().optional(),
  do_center_crop: z.boolean().optional(),
  crop_size: sizeField.default({ height: 224, width: 224 }),
  do_rescale: z.boolean().default(true),
  rescale_factor: z.number().positive().default(1 / 255),
  do_normalize: z.boolean().default(true),
  image_mean: triple.default(OPENAI_CLIP_PREPROCESSING.mean),
  image_std: triple.default(OPENAI_CLIP_PREPROCESSING.std),
});

/** Reads a Hugging Face preprocessor_config.json (CLIPImageProcessor fields). */
export async function readPreprocessorConfig(file: string): Promise<ImagePreprocessing> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InputError(`cannot read preprocessor config: ${(error as Error).message}`, { file });
  }
  const parsed = preprocessorConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`expected a CLIPImageProcessor config: ${issue.message}`, { file, field: issue.path.join('.') });
  }
  const c = parsed.data;
  if (c.resample !== undefined && c.resample !== 3) {
    // Only bicubic (PIL code 3) is what CLIP checkpoints use; anything else would silently change pixels.
    throw new InputError(`only bicubic resampling (3) is supported, got ${c.resample}`, { file, field: 'resample' });
  }
  const shortest = typeof c.size === 'number' ? c.size : 'shortest_edge' in c.size ? c.size.shortest_edge : Math.min(c.size.height, c.size.width);
  const exact = typeof c.size === 'object' && 'height' in c.size ? { width: c.size.width, height: c.size.height } : undefined;
  // SiglipImageProcessor has no center crop (it squashes to `size`); CLIPImageProcessor crops unless told not to.
  const centerCrop = c.do_center_crop ?? c.image_processor_type !== 'SiglipImageProcessor';
  // Without a crop, what reaches the model is the exact resize: cropWidth × cropHeight stay "the
  // model's input size" for every reader (batch shapes, box frames).
  const crop = !centerCrop && exact ? exact : typeof c.crop_size === 'number' ? { height: c.crop_size, width: c.crop_size } : 'shortest_edge' in c.crop_size ? { height: c.crop_size.shortest_edge, width: c.crop_size.shortest_edge } : c.crop_size;
  return {
    doResize: c.do_resize,
    resizeShortestEdge: shortest,
    ...(exact ? { resizeExact: exact } : {}),
    doCenterCrop: centerCrop,
    cropHeight: crop.height,
    cropWidth: crop.width,
    doRescale: c.do_rescale,
    rescaleFactor: c.rescale_factor,
    doNormalize: c.do_normalize,
    mean: c.image_mean,
    std: c.image_std,
  };
}

/** Writes the preprocessing as a Hugging Face preprocessor_config.json object. */
export function toPreprocessorConfig(prep: ImagePreprocessing): Record<string, unknown> {
  return {
    image_processor_type: 'CLIPImageProcessor',
    feature_extractor_type: 'CLIPFeatureExtractor',
    do_resize: prep.doResize,
    size: prep.resizeExact ? { height: prep.resizeExact.height, width: prep.resizeExact.width } : { shortest_edge: prep.resizeShortestEdge },
    resample: 3,
    do_center_crop: prep.doCenterCrop,
    crop_size: { height: prep.cropHeight, width: prep.cropWidth },
    do_rescale: prep.doRescale,
    rescale_factor: prep.rescaleFactor,
    do_normalize: prep.doNormalize,
    image_mean: prep.mean,
    image_std: prep.std,
    do_convert_rgb: true,
  };
}

/** HF's get_resize_output_image_size for a shortest-edge size: the long side is truncated, not rounded. */
export function resizedSize(width: number, height: number, shortestEdge: number): { width: number; height: number } {
  if (width <= height) return { width: shortestEdge, height: Math.trunc((shortestEdge * height) / width) };
  return { width: Math.trunc((shortestEdge * width) / height), height: shortestEdge };
}

/**
 * Where the resizing, cropping and normalising run: 'native' is native/tfjs-blas's
 * vlbench_image addon, async on libuv's threadpool (every core, beside sharp's decoding); 'js' is
 * resampleBicubicLikePil and a table look-up on the main thread. Both give the same bytes; the
 * default is 'native' where the addon is built (imageAddonStatus says why not).
 */
export type Resampler = 'native' | 'js';

/** The size an image is resized to and the window of it the center crop keeps. */
export function resizeAndCrop(width: number, height: number, prep: ImagePreprocessing): { resized: { width: number; height: number }; window: CropWindow } {
  const resized = !prep.doResize ? { width, height } : prep.resizeExact ? { ...prep.resizeExact } : resizedSize(width, height, prep.resizeShortestEdge);
  if (!prep.doCenterCrop) return { resized, window: { left: 0, top: 0, width: resized.width, height: resized.height } };
  if (resized.width < prep.cropWidth || resized.height < prep.cropHeight) {
    throw new Error(`image is ${resized.width}×${resized.height} after resizing, smaller than the ${prep.cropWidth}×${prep.cropHeight} crop`);
  }
  // HF's center_crop: top = (height - crop) // 2, left likewise.
  return { resized, window: { left: Math.floor((resized.width - prep.cropWidth) / 2), top: Math.floor((resized.height - prep.cropHeight) / 2), width: prep.cropWidth, height: prep.cropHeight } };
}

/** Decodes with sharp to packed sRGB bytes, EXIF rotation applied (what the pipeline resamples). */
export async function decodeRgb(input: Uint8Array | string): Promise<{ data: Buffer; width: number; height: number }> {
  const decoded = await sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
    .rotate()
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (decoded.info.channels !== 3) throw new Error(`expected 3 colour channels after conversion, got ${decoded.info.channels}`);
  return { data: decoded.data, width: decoded.info.width, height: decoded.info.height };
}

/**
 * Decodes an image the pipeline is given. A file on disk is read by sharp in its own threadpool
 * job: fs.readFile would take four more trips between the main thread and the pool (open, stat,
 * read, close), each one waiting behind the decodes queued there. An image embedded in a parquet
 * cell is decoded from its bytes. An unreadable file is refused as readImageBytes words it
 * (cannot read image: ENOENT, …), not as sharp does.
 */
async function decodeImage(file: string): Promise<{ data: Buffer; width: number; height: number }> {
  const input = isEmbeddedImage(file) ? await readImageBytes(file) : file;
  return decodeRgb(input).catch(async (error: unknown) => {
    if (typeof input === 'string') await readImageBytes(file);
    throw error;
  });
}

/** Decodes and preprocesses one image file into [3, H, W] float32 values. */
export async function preprocessImage(file: string, prep: ImagePreprocessing, options: { resampler?: Resampler } = {}): Promise<Float32Array> {
  return preprocessInto(file, prep, undefined, resamplerAddon(options.resampler));
}

/** preprocessImage, written into `out` when given (it must hold exactly the image's values). */
async function preprocessInto(file: string, prep: ImagePreprocessing, out: Float32Array | undefined, addon: ImageAddon | undefined): Promise<Float32Array> {
  try {
    // Decoded and rotated (EXIF) by sharp; resizing and cropping happen here, as PIL does them.
    const { data, width, height } = await decodeImage(file);
    const { resized, window } = resizeAndCrop(width, height, prep);
    const values = 3 * window.width * window.height;
    if (out && out.length !== values) throw new InputError(`preprocessed to ${values} values, expected ${out.length} (is crop disabled?)`, { file });
    const target = out ?? new Float32Array(values);
    await resampleCropWith(data, width, height, resized.width, resized.height, window, prep, target, addon);
    return target;
  } catch (error) {
    if (error instanceof InputError) throw error;
    const message = (error as Error).message.split('\n')[0];
    const hint = /pixel limit/i.test(message) ? ` (images over ${MAX_INPUT_PIXELS} pixels are refused)` : '';
    throw new InputError(`cannot decode image: ${message}${hint}`, { file });
  }
}

/** A window of an image: what the center crop keeps. */
export interface CropWindow {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Resizes packed RGB bytes to outWidth × outHeight (PIL's bicubic), crops `window` out of the
 * result and writes it into `out`: into a Float32Array channels first, rescaled and normalised
 * as `prep` says; into a Uint8Array as packed RGB bytes (what PIL's resize and crop give). In the
 * native addon (off the main thread; only the window's pixels are computed: each of PIL's output
 * pixels depends on its own coefficients alone, so they are the same bytes), or here.
 */
export async function resampleCropInto(
  rgb: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  window: CropWindow,
  prep: ImagePreprocessing,
  out: Float32Array | Uint8Array,
  resampler?: Resampler,
): Promise<void> {
  return resampleCropWith(rgb, width, height, outWidth, outHeight, window, prep, out, resamplerAddon(resampler));
}

/** resampleCropInto with the addon already chosen (undefined: in JavaScript). */
async function resampleCropWith(
  rgb: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  window: CropWindow,
  prep: ImagePreprocessing,
  out: Float32Array | Uint8Array,
  addon: ImageAddon | undefined,
): Promise<void> {
  const lut = out instanceof Float32Array ? normalisationTable(prep) : null;
  if (addon) {
    const h = outWidth !== width ? axisCoefficients(width, outWidth) : undefined;
    const v = outHeight !== height ? axisCoefficients(height, outHeight) : undefined;
    await addon.resampleCrop(rgb, width, height, outWidth, outHeight, h?.first ?? null, h?.count ?? null, h?.weights ?? null, h?.taps ?? null, v?.first ?? null, v?.count ?? null, v?.weights ?? null, v?.taps ?? null, window.left, window.top, window.width, window.height, lut, out);
    return;
  }
  let resized = resampleBicubicLikePil(rgb, width, height, outWidth, outHeight);
  if (window.width !== outWidth || window.height !== outHeight) resized = cropRgb(resized, outWidth, window.left, window.top, window.width, window.height);
  if (lut) channelsFirstInto(resized, window.width * window.height, lut, out as Float32Array);
  else out.set(resized);
}

/** The addon for a Resampler choice (undefined: JavaScript); without a choice, the addon where it is built. */
function resamplerAddon(resampler: Resampler | undefined): ImageAddon | undefined {
  if (resampler === 'js') return undefined;
  const addon = imageAddon();
  if (!addon && resampler === 'native') throw new Error(`native resampling asked for, but ${imageAddonStatus().reason}`);
  return addon;
}

/**
 * Objects of an image as the encoder's input: for each pixel box [x1, y1, x2, y2], the square around it
 * (its longer side plus `margin` of it on each side, so the outline and a little background are
 * in view, clipped to the image), resized to the encoder's crop size with PIL's bicubic filter.
 * The region features of `extractRegionFeatures` (R-CNN style: the object fills the encoder's
 * view, where a 12-px object on a 12-px patch grid is split across patches and lost).
 */
export async function preprocessBoxCrops(file: string, boxes: readonly (readonly [number, number, number, number])[], prep: ImagePreprocessing, margin = 0.25, options: { resampler?: Resampler } = {}): Promise<Float32Array[]> {
  const addon = resamplerAddon(options.resampler);
  // Decoded once for all of the image's boxes: a SynthScenes image holds up to six objects.
  let decoded: { data: Buffer; width: number; height: number };
  try {
    decoded = await decodeImage(file);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`cannot decode image: ${(error as Error).message.split('\n')[0]}`, { file });
  }
  const { width, height } = decoded;
  return Promise.all(
    boxes.map(async ([x1, y1, x2, y2]) => {
      const side = Math.max(x2 - x1, y2 - y1) * (1 + 2 * margin);
      const cx = (x1 + x2) / 2;
      const cy = (y1 + y2) / 2;
      const left = Math.max(0, Math.min(width - 1, Math.round(cx - side / 2)));
      const top = Math.max(0, Math.min(height - 1, Math.round(cy - side / 2)));
      const cropWidth = Math.max(1, Math.min(width - left, Math.round(side)));
      const cropHeight = Math.max(1, Math.min(height - top, Math.round(side)));
      const out = new Float32Array(3 * prep.cropWidth * prep.cropHeight);
      const square = cropRgb(decoded.data, width, left, top, cropWidth, cropHeight);
      await resampleCropWith(square, cropWidth, cropHeight, prep.cropWidth, prep.cropHeight, { left: 0, top: 0, width: prep.cropWidth, height: prep.cropHeight }, prep, out, addon);
      return out;
    }),
  );
}

/** PIL's fixed-point precision for 8-bit resampling: 32 bits less 8 for the value and 2 for overflow. */
const PIL_PRECISION_BITS = 22;

/** The cubic convolution kernel with a = -0.5, PIL's BICUBIC filter (support 2). */
function bicubicKernel(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/**
 * One axis of PIL's resampling (Pillow's precompute_coeffs + normalize_coeffs_8bpc): for each
 * output position, the first input index, the number of inputs, and fixed-point weights. The
 * kernel is widened by the scale factor when shrinking, so downscaling averages (antialiases).
 */
function pilAxisCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const row = new Float64Array(taps);
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    // C's (int) cast truncates toward zero; both bounds are rounded that way, as Pillow does.
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let k = 0; k < hi - lo; k++) {
      row[k] = bicubicKernel((k + lo - center + 0.5) / filterScale);
      total += row[k];
    }
    for (let k = 0; k < hi - lo; k++) {
      const w = total !== 0 ? row[k] / total : row[k];
      weights[out * taps + k] = Math.trunc(w < 0 ? -0.5 + w * (1 << PIL_PRECISION_BITS) : 0.5 + w * (1 << PIL_PRECISION_BITS));
    }
    first[out] = lo;
    count[out] = hi - lo;
  }
  return { first, count, weights, taps };
}

const coefficientCache = new Map<string, AxisCoefficients>();

/** pilAxisCoefficients, kept per (inSize, outSize): a folder of photos has a few sizes. */
function axisCoefficients(inSize: number, outSize: number): AxisCoefficients {
  const key = `${inSize}:${outSize}`;
  let coefficients = coefficientCache.get(key);
  if (!coefficients) {
    if (coefficientCache.size >= 256) coefficientCache.clear();
    coefficients = pilAxisCoefficients(inSize, outSize);
    coefficientCache.set(key, coefficients);
  }
  return coefficients;
}

/** PIL's clip8: the fixed-point sum back to 0..255. */
function clip8(sum: number): number {
  const v = sum >> PIL_PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes packed RGB bytes to outWidth × outHeight exactly as PIL's Image.resize with
 * resample=BICUBIC (what CLIPImageProcessor calls): a horizontal pass over the rows the vertical
 * pass will read, rounded to bytes, then a vertical pass, both in PIL's 22-bit fixed point. An
 * axis whose size does not change is not resampled. (sharp's cubic is the same filter, but its
 * arithmetic and, when enlarging, its pixel alignment differ: values moved by up to 5/255.)
 */
export function resampleBicubicLikePil(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  if (outWidth === width && outHeight === height) return rgb;
  const vertical = axisCoefficients(height, outHeight);
  const half = 1 << (PIL_PRECISION_BITS - 1);
  // Rows of the input the vertical pass reads.
  const firstRow = vertical.first[0];
  const lastRow = vertical.first[outHeight - 1] + vertical.count[outHeight - 1];
  let source = rgb;
  let sourceWidth = width;
  let rowOffset = 0;
  if (outWidth !== width) {
    const horizontal = axisCoefficients(width, outWidth);
    const rows = lastRow - firstRow;
    const temp = new Uint8Array(rows * outWidth * 3);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + firstRow) * width * 3;
      const outRow = y * outWidth * 3;
      for (let x = 0; x < outWidth; x++) {
        const lo = horizontal.first[x];
        const n = horizontal.count[x];
        const k0 = x * horizontal.taps;
        let r = half;
        let g = half;
        let b = half;
        for (let k = 0; k < n; k++) {
          const w = horizontal.weights[k0 + k];
          const p = inRow + (lo + k) * 3;
          r += rgb[p] * w;
          g += rgb[p + 1] * w;
          b += rgb[p + 2] * w;
        }
        temp[outRow + x * 3] = clip8(r);
        temp[outRow + x * 3 + 1] = clip8(g);
        temp[outRow + x * 3 + 2] = clip8(b);
      }
    }
    source = temp;
    sourceWidth = outWidth;
    rowOffset = firstRow;
  }
  if (outHeight === height) return source;
  const out = new Uint8Array(outWidth * outHeight * 3);
  const stride = sourceWidth * 3;
  // Row by row: each input row is added once per output row it weighs in (contiguous reads).
  // The sums stay below 2^31 (255 × the kernel's absolute sum × 2^22), as in Pillow's int32.
  const sums = new Int32Array(stride);
  for (let y = 0; y < outHeight; y++) {
    const lo = vertical.first[y] - rowOffset;
    const n = vertical.count[y];
    const k0 = y * vertical.taps;
    sums.fill(half);
    for (let k = 0; k < n; k++) {
      const w = vertical.weights[k0 + k];
      const row = (lo + k) * stride;
      for (let i = 0; i < stride; i++) sums[i] += source[row + i] * w;
    }
    const outRow = y * stride;
    for (let i = 0; i < stride; i++) out[outRow + i] = clip8(sums[i]);
  }
  return out;
}

function cropRgb(rgb: Uint8Array, width: number, left: number, top: number, cropWidth: number, cropHeight: number): Uint8Array {
  const out = new Uint8Array(cropWidth * cropHeight * 3);
  for (let y = 0; y < cropHeight; y++) out.set(rgb.subarray(((top + y) * width + left) * 3, ((top + y) * width + left + cropWidth) * 3), y * cropWidth * 3);
  return out;
}

const tableCache = new Map<string, Float32Array>();

/**
 * The float32 value of each byte of each channel: table[c * 256 + v] = (v · scale − mean[c]) / std[c],
 * the arithmetic once per possible byte (in float64, rounded to float32 as a Float32Array stores
 * it), where it used to be done per pixel with the same expression: the same values.
 */
export function normalisationTable(prep: ImagePreprocessing): Float32Array {
  const scale = prep.doRescale ? prep.rescaleFactor : 1;
  const key = `${scale},${prep.doNormalize ? `${prep.mean},${prep.std}` : '-'}`;
  let table = tableCache.get(key);
  if (!table) {
    table = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      const mean = prep.doNormalize ? prep.mean[c] : 0;
      const std = prep.doNormalize ? prep.std[c] : 1;
      for (let v = 0; v < 256; v++) table[c * 256 + v] = (v * scale - mean) / std;
    }
    if (tableCache.size >= 16) tableCache.clear();
    tableCache.set(key, table);
  }
  return table;
}

/** Packed RGB bytes of `plane` pixels to channels-first values through the table, into `out`. */
function channelsFirstInto(rgb: Uint8Array, plane: number, table: Float32Array, out: Float32Array): void {
  for (let p = 0; p < plane; p++) {
    out[p] = table[rgb[p * 3]];
    out[plane + p] = table[256 + rgb[p * 3 + 1]];
    out[2 * plane + p] = table[512 + rgb[p * 3 + 2]];
  }
}

export interface PixelBatch {
  files: string[];
  /** [n, 3, H, W] values, channels first. */
  pixels: Float32Array;
  shape: [number, 3, number, number];
}

/**
 * Preprocesses files in batches, up to `concurrency` images at once (decoded by sharp and, with
 * the native addon, resampled on libuv's threadpool, whose 4 threads UV_THREADPOOL_SIZE can
 * raise on machines of more cores), holding at most two batches of pixels (the one being decoded and the one handed out), so a
 * whole split never sits in memory.
 */
export async function* preprocessedBatches(
  files: readonly string[],
  prep: ImagePreprocessing,
  options: { batchSize: number; concurrency?: number; resampler?: Resampler },
): AsyncGenerator<PixelBatch> {
  const limit = pLimit(options.concurrency ?? 4);
  const addon = resamplerAddon(options.resampler);
  const plane = 3 * prep.cropHeight * prep.cropWidth;
  const decodeBatch = async (start: number): Promise<PixelBatch> => {
    const slice = files.slice(start, start + options.batchSize);
    const pixels = new Float32Array(slice.length * plane);
    await Promise.all(
      slice.map((file, i) =>
        // Each image is written in place into the batch (by the addon, off the main thread).
        limit(() => preprocessInto(file, prep, pixels.subarray(i * plane, (i + 1) * plane), addon)),
      ),
    );
    return { files: slice, pixels, shape: [slice.length, 3, prep.cropHeight, prep.cropWidth] };
  };
  let next = files.length > 0 ? decodeBatch(0) : undefined;
  for (let start = 0; next; start += options.batchSize) {
    const current = await next;
    // Decode the following batch while the caller works on this one.
    next = start + options.batchSize < files.length ? decodeBatch(start + options.batchSize) : undefined;
    // A caller that stops early abandons the prefetched batch; its failure must not crash the process.
    next?.catch(() => undefined);
    yield current;
  }
}
