import { readImageBytes } from '../../core/image-bytes.ts';
import sharp from 'sharp';
import type { NormalisedBox } from '../../models/ops/regions.ts';
import type { PixelBox } from '../../models/features.ts';
import type { ImagePreprocessing } from '../../models/image-pipeline.ts';
import type { DetectionFile } from '../../tasks/detections.ts';
import { InputError } from '../../core/errors.ts';
import { boxInCrop, cropFrame } from './scene-graphs.ts';

/**
 * Object boxes for answer-classification rows: `--regions FILE` detections, by image, in the
 * encoder's crop coordinates, at most `maxRegions` per image (the highest scores: the
 * fusion's pair term grows with the square of the count). An image the file gives no box
 * falls back to the grid: one box per cell of a `fallbackGrid` × `fallbackGrid` grid, so its
 * rows still have objects to reason over; the run log says how many did.
 */
export interface ImageBoxes {
  /** In the encoder's crop coordinates (what the fusion's geometry reads). */
  boxesOf(imagePath: string): NormalisedBox[];
  /** The same boxes in the image's pixels [x1, y1, x2, y2] (what region features crop). */
  pixelBoxesOf(imagePath: string): PixelBox[];
  /** Every image's pixel boxes. */
  pixelBoxes: ReadonlyMap<string, PixelBox[]>;
  /** Images of the run with no detection (grid boxes instead). */
  fallbackImages: number;
  /** Detections of images outside this run's splits (ignored). */
  unusedDetections: number;
}

export async function regionBoxes(
  detections: DetectionFile,
  images: readonly { imageId: string; imagePath: string }[],
  preprocessing: ImagePreprocessing,
  options: { maxRegions: number; fallbackGrid: number },
): Promise<ImageBoxes> {
  const byPath = new Map<string, string>();
  for (const { imageId, imagePath } of images) byPath.set(imagePath, imageId);
  const runIds = new Set(byPath.values());
  let unusedDetections = 0;
  for (const [id, list] of detections.byImage) if (!runIds.has(id)) unusedDetections += list.length;
  if (unusedDetections === detections.count) {
    throw new InputError(`none of its ${detections.count} detections is of an image of this run (image ids such as ${JSON.stringify([...detections.byImage.keys()].slice(0, 3))}, this run's such as ${JSON.stringify([...runIds].slice(0, 3))})`, { file: detections.file, field: 'image_id' });
  }
  const boxes = new Map<string, NormalisedBox[]>();
  const pixelBoxes = new Map<string, PixelBox[]>();
  let fallbackImages = 0;
  for (const [imagePath, imageId] of byPath) {
    const list = detections.byImage.get(imageId);
    let size: { width?: number; height?: number };
    try {
      size = await sharp(await readImageBytes(imagePath)).metadata();
    } catch (error) {
      throw new InputError(`cannot read the image its detections belong to: ${(error as Error).message}`, { file: imagePath });
    }
    const { width = 0, height = 0 } = size;
    // The grid's cells over the part of the image the encoder sees: pixel boxes whose crop boxes are the cells.
    const fallback = () => {
      fallbackImages++;
      const cells = gridBoxes(options.fallbackGrid);
      boxes.set(imagePath, cells);
      pixelBoxes.set(imagePath, cells.map((cell) => cropBoxInPixels(cell, width, height, preprocessing)));
    };
    if (!list?.length) {
      fallback();
      continue;
    }
    const kept = [...list].sort((a, b) => b.score - a.score).slice(0, options.maxRegions);
    const normalised: NormalisedBox[] = [];
    const pixels: PixelBox[] = [];
    for (const detection of kept) {
      const [x, y, w, h] = detection.bbox;
      // A pixel or so past the border is how annotators and detectors round; more is a wrong box or a wrong image.
      if (x + w > width + 1 || y + h > height + 1) {
        throw new InputError(`bbox [${detection.bbox.join(', ')}] reaches past its ${width}×${height} image (${imagePath})`, { file: detections.file, record: detection.record, field: 'bbox' });
      }
      const box = boxInCrop([x, y, x + w, y + h], width, height, preprocessing);
      if (box) {
        normalised.push(box);
        pixels.push([x, y, x + w, y + h]);
      }
    }
    if (!normalised.length) fallback();
    else {
      boxes.set(imagePath, normalised);
      pixelBoxes.set(imagePath, pixels);
    }
  }
  const known = (imagePath: string) => {
    if (!boxes.has(imagePath)) throw new Error(`region boxes: ${imagePath} is not an image of this run`);
    return imagePath;
  };
  return {
    boxesOf: (imagePath) => boxes.get(known(imagePath))!,
    pixelBoxesOf: (imagePath) => pixelBoxes.get(known(imagePath))!,
    pixelBoxes,
    fallbackImages,
    unusedDetections,
  };
}

/** A box in the encoder's crop coordinates, back in the pixels of a width × height image (the inverse of boxInCrop for boxes inside the crop). */
export function cropBoxInPixels(box: NormalisedBox, width: number, height: number, prep: ImagePreprocessing): PixelBox {
  const { scaleX, scaleY, cropWidth, cropHeight, left, top } = cropFrame(width, height, prep);
  return [(box[0] * cropWidth + left) / scaleX, (box[1] * cropHeight + top) / scaleY, (box[2] * cropWidth + left) / scaleX, (box[3] * cropHeight + top) / scaleY];
}

/** The cells of a side × side grid as boxes, row-major. */
export function gridBoxes(side: number): NormalisedBox[] {
  const out: NormalisedBox[] = [];
  for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) out.push([c / side, r / side, (c + 1) / side, (r + 1) / side]);
  return out;
}
