import { OPENAI_CLIP_PREPROCESSING, resampleCropInto, resizeAndCrop, type CropWindow, type ImagePreprocessing } from '../../models/image-pipeline.ts';

/**
 * The cases on which the native resampling (native/tfjs-blas/image_resample.c) must give the
 * JavaScript fallback's bytes and values exactly: CLIP's 640×480 shrink with its center crop,
 * enlarging, odd sizes, extreme aspect ratios, sides that keep their size, a window off the
 * center. Shared by image-resample-native.test.ts and the child process it runs without AVX2.
 */
export interface ResampleCase {
  name: string;
  width: number;
  height: number;
  outWidth: number;
  outHeight: number;
  window?: CropWindow;
}

export const RESAMPLE_CASES: ResampleCase[] = [
  { name: 'CLIP: 640×480 to 298×224, center 224', width: 640, height: 480, ...clip(640, 480) },
  { name: 'CLIP: 480×640 portrait to 224×298, center 224', width: 480, height: 640, ...clip(480, 640) },
  { name: 'odd shrink 333×251 to 97×73', width: 333, height: 251, outWidth: 97, outHeight: 73 },
  { name: 'enlarge 20×24 to 32×38', width: 20, height: 24, outWidth: 32, outHeight: 38 },
  { name: 'odd enlarge 37×23 to 61×40, window 5,3 50×31', width: 37, height: 23, outWidth: 61, outHeight: 40, window: { left: 5, top: 3, width: 50, height: 31 } },
  { name: 'enlarge from one pixel 1×1 to 5×3', width: 1, height: 1, outWidth: 5, outHeight: 3 },
  { name: 'extreme shrink 1000×3 to 7×2', width: 1000, height: 3, outWidth: 7, outHeight: 2 },
  { name: 'width kept 64×50 to 64×17', width: 64, height: 50, outWidth: 64, outHeight: 17 },
  { name: 'height kept 50×64 to 17×64, window 2,9 13×40', width: 50, height: 64, outWidth: 17, outHeight: 64, window: { left: 2, top: 9, width: 13, height: 40 } },
  { name: 'no resize, crop only 30×20, window 7,4 16×12', width: 30, height: 20, outWidth: 30, outHeight: 20, window: { left: 7, top: 4, width: 16, height: 12 } },
  { name: 'shrink one side, enlarge the other 90×11 to 31×29', width: 90, height: 11, outWidth: 31, outHeight: 29 },
];

function clip(width: number, height: number): { outWidth: number; outHeight: number; window: CropWindow } {
  const { resized, window } = resizeAndCrop(width, height, OPENAI_CLIP_PREPROCESSING);
  return { outWidth: resized.width, outHeight: resized.height, window };
}

/** Bytes with large jumps and every value (Knuth's multiplicative hash), with a smooth ramp mixed in. */
export function testImage(width: number, height: number, seed: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i % 7 === 0 ? (i / 3) % 256 : Math.imul(i + seed, 2654435761) >>> 24) & 255;
  // Saturated corners: the clip to 0..255 is exercised where the kernel's negative lobes overshoot.
  for (let c = 0; c < 3; c++) {
    rgb[c] = 255;
    rgb[rgb.length - 1 - c] = 0;
  }
  return rgb;
}

/** Each case through both resamplers, bytes and normalised values; the names of the cases that differ (with where). */
export async function nativeMismatches(prep: ImagePreprocessing = OPENAI_CLIP_PREPROCESSING): Promise<string[]> {
  const problems: string[] = [];
  for (const [index, c] of RESAMPLE_CASES.entries()) {
    const window = c.window ?? { left: 0, top: 0, width: c.outWidth, height: c.outHeight };
    const rgb = testImage(c.width, c.height, index);
    const values = 3 * window.width * window.height;
    const bytes = { js: new Uint8Array(values), native: new Uint8Array(values) };
    const floats = { js: new Float32Array(values), native: new Float32Array(values) };
    await resampleCropInto(rgb, c.width, c.height, c.outWidth, c.outHeight, window, prep, bytes.js, 'js');
    await resampleCropInto(rgb, c.width, c.height, c.outWidth, c.outHeight, window, prep, bytes.native, 'native');
    await resampleCropInto(rgb, c.width, c.height, c.outWidth, c.outHeight, window, prep, floats.js, 'js');
    await resampleCropInto(rgb, c.width, c.height, c.outWidth, c.outHeight, window, prep, floats.native, 'native');
    const byte = bytes.js.findIndex((v, i) => v !== bytes.native[i]);
    const float = floats.js.findIndex((v, i) => !Object.is(v, floats.native[i]));
    if (byte >= 0) problems.push(`${c.name}: byte ${byte} is ${bytes.native[byte]} natively, ${bytes.js[byte]} in JavaScript`);
    if (float >= 0) problems.push(`${c.name}: value ${float} is ${floats.native[float]} natively, ${floats.js[float]} in JavaScript`);
  }
  return problems;
}
