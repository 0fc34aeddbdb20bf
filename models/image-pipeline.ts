import { readFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { z } from 'zod';
import { InputError } from '../core/errors.ts';

/**
 * The image pipeline: decode (JPEG, PNG, WebP) with sharp, apply EXIF rotation, then
 * CLIP-style preprocessing as Hugging Face's CLIPImageProcessor does it: resize the
 * shortest side (bicubic), center crop, rescale to [0, 1], normalise by mean/std,
 * channels first ([3, H, W], the layout of HF's pixel_values and of ONNX exports).
 */
export interface ImagePreprocessing {
  doResize: boolean;
  resizeShortestEdge: number;
  doCenterCrop: boolean;
  cropHeight: number;
  cropWidth: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

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
  do_resize: z.boolean().default(true),
  size: sizeField.default({ shortest_edge: 224 }),
  resample: z.number().int().optional(),
  do_center_crop: z.boolean().default(true),
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
  const crop = typeof c.crop_size === 'number' ? { height: c.crop_size, width: c.crop_size } : 'shortest_edge' in c.crop_size ? { height: c.crop_size.shortest_edge, width: c.crop_size.shortest_edge } : c.crop_size;
  return {
    doResize: c.do_resize,
    resizeShortestEdge: shortest,
    doCenterCrop: c.do_center_crop,
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
    size: { shortest_edge: prep.resizeShortestEdge },
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

/** Decodes and preprocesses one image file into [3, H, W] float32 values. */
export async function preprocessImage(file: string, prep: ImagePreprocessing): Promise<Float32Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new InputError(`cannot read image: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
  try {
    let image = sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' }).rotate();
    const meta = await image.metadata();
    if (!meta.width || !meta.height) throw new Error('no image dimensions');
    // EXIF orientations 5-8 swap width and height.
    const swapped = (meta.orientation ?? 1) >= 5;
    let width = swapped ? meta.height : meta.width;
    let height = swapped ? meta.width : meta.height;
    if (prep.doResize) {
      const target = resizedSize(width, height, prep.resizeShortestEdge);
      if (target.width !== width || target.height !== height) {
        image = image.resize(target.width, target.height, { kernel: 'cubic', fit: 'fill' });
      }
      width = target.width;
      height = target.height;
    }
    if (prep.doCenterCrop) {
      if (width < prep.cropWidth || height < prep.cropHeight) {
        throw new Error(`image is ${width}×${height} after resizing, smaller than the ${prep.cropWidth}×${prep.cropHeight} crop`);
      }
      // HF's center_crop: top = (height - crop) // 2, left likewise.
      const top = Math.floor((height - prep.cropHeight) / 2);
      const left = Math.floor((width - prep.cropWidth) / 2);
      // Called after resize, sharp applies the extract to the resized image (one pipeline, no re-encode).
      image = image.extract({ left, top, width: prep.cropWidth, height: prep.cropHeight });
      width = prep.cropWidth;
      height = prep.cropHeight;
    }
    const { data, info } = await image.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 colour channels after conversion, got ${info.channels}`);
    return toChannelsFirst(data, info.width, info.height, prep);
  } catch (error) {
    if (error instanceof InputError) throw error;
    const message = (error as Error).message.split('\n')[0];
    const hint = /pixel limit/i.test(message) ? ` (images over ${MAX_INPUT_PIXELS} pixels are refused)` : '';
    throw new InputError(`cannot decode image: ${message}${hint}`, { file });
  }
}

function toChannelsFirst(rgb: Buffer, width: number, height: number, prep: ImagePreprocessing): Float32Array {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  const scale = prep.doRescale ? prep.rescaleFactor : 1;
  for (let c = 0; c < 3; c++) {
    const mean = prep.doNormalize ? prep.mean[c] : 0;
    const std = prep.doNormalize ? prep.std[c] : 1;
    for (let p = 0; p < plane; p++) out[c * plane + p] = (rgb[p * 3 + c] * scale - mean) / std;
  }
  return out;
}

export interface PixelBatch {
  files: string[];
  /** [n, 3, H, W] values, channels first. */
  pixels: Float32Array;
  shape: [number, 3, number, number];
}

/**
 * Preprocesses files in batches, decoding up to `concurrency` images at once and holding
 * at most two batches of pixels (the one being decoded and the one handed out), so a
 * whole split never sits in memory.
 */
export async function* preprocessedBatches(
  files: readonly string[],
  prep: ImagePreprocessing,
  options: { batchSize: number; concurrency?: number },
): AsyncGenerator<PixelBatch> {
  const limit = pLimit(options.concurrency ?? 4);
  const plane = 3 * prep.cropHeight * prep.cropWidth;
  const decodeBatch = async (start: number): Promise<PixelBatch> => {
    const slice = files.slice(start, start + options.batchSize);
    const pixels = new Float32Array(slice.length * plane);
    await Promise.all(
      slice.map((file, i) =>
        limit(async () => {
          const one = await preprocessImage(file, prep);
          if (one.length !== plane) throw new InputError(`preprocessed to ${one.length} values, expected ${plane} (is crop disabled?)`, { file });
          pixels.set(one, i * plane);
        }),
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
