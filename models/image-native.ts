/**
 * The image pipeline's native resampling (native/tfjs-blas/image_resample.c, built beside the
 * BLAS kernels by scripts/build-native.mjs as vlbench_image.node): PIL's bicubic resize, the
 * crop and the float32 channels-first values as async work on libuv's threadpool, so every core
 * resamples while the main thread only schedules. Optional: where it is not built (no compiler,
 * the build skipped, not Linux), or VLBENCH_NATIVE_IMAGE=0, the pipeline resamples in JavaScript
 * on the main thread, to the same bytes.
 *
 * Its own addon, not tfjs_blas.node: that one loads OpenBLAS, whose threads and kernel choice
 * models/backends/wasm-blas.ts sets before loading it; this one links nothing but libc.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packagePath } from '../core/package-root.ts';

const ADDON_FILE = join(packagePath('native', 'tfjs-blas'), 'build', 'Release', 'vlbench_image.node');

/** The coefficients of one axis of PIL's resampling (see pilAxisCoefficients in image-pipeline.ts). */
export interface AxisCoefficients {
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
  taps: number;
}

export interface ImageAddon {
  /** Which horizontal pass runs: 'avx2-madd' (with AVX2), 'avx2-mullo' or 'scalar' (no AVX2); VLBENCH_IMAGE_SIMD forces one of the latter two. */
  simd?: string;
  /**
   * Resizes packed RGB bytes (width × height) to outWidth × outHeight with the given axes (null:
   * that side keeps its size) and writes the window left, top, cropWidth × cropHeight of it to
   * `out`: channels first through `lut` (3 × 256 float32 values, lut[c * 256 + byte]) into a
   * Float32Array, or, with lut null, packed RGB bytes into a Uint8Array. Resolves when written.
   */
  resampleCrop(
    src: Uint8Array,
    width: number,
    height: number,
    outWidth: number,
    outHeight: number,
    hFirst: Int32Array | null,
    hCount: Int32Array | null,
    hWeights: Int32Array | null,
    hTaps: number | null,
    vFirst: Int32Array | null,
    vCount: Int32Array | null,
    vWeights: Int32Array | null,
    vTaps: number | null,
    left: number,
    top: number,
    cropWidth: number,
    cropHeight: number,
    lut: Float32Array | null,
    out: Float32Array | Uint8Array,
  ): Promise<void>;
}

let loaded: { addon?: ImageAddon; reason: string } | undefined;

/** Whether the native resampling is built and loads, and why not. */
export function imageAddonStatus(): { available: boolean; reason: string } {
  loaded ??= load();
  return { available: loaded.addon !== undefined, reason: loaded.reason };
}

/** The addon, or undefined where the pipeline resamples in JavaScript. */
export function imageAddon(): ImageAddon | undefined {
  loaded ??= load();
  return loaded.addon;
}

function load(): { addon?: ImageAddon; reason: string } {
  if (process.env.VLBENCH_NATIVE_IMAGE === '0') return { reason: 'VLBENCH_NATIVE_IMAGE=0: resampling in JavaScript' };
  if (!existsSync(ADDON_FILE)) return { reason: `native/tfjs-blas is not built (no ${ADDON_FILE}): resampling in JavaScript; to build it: node scripts/build-native.mjs` };
  try {
    const addon = createRequire(import.meta.url)(ADDON_FILE) as ImageAddon;
    if (typeof addon.resampleCrop !== 'function') return { reason: `${ADDON_FILE} has no resampleCrop (an older build): rebuild it: node scripts/build-native.mjs` };
    return { addon, reason: 'native/tfjs-blas/build/Release/vlbench_image.node' };
  } catch (error) {
    return { reason: `${ADDON_FILE} failed to load (${(error as Error).message.split('\n')[0]}): resampling in JavaScript; rebuild it: node scripts/build-native.mjs` };
  }
}
