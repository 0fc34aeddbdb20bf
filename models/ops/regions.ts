import * as tf from '@tensorflow/tfjs';
import { matMul } from './matmul.ts';

// Region pooling over a ViT's patch grid: shared by the scene-graph objective, the choice
// scorer's region tokens and the fusion's box geometry, so it is an op, not an objective.

/**
 * Where the patch tokens sit in an encoder's token sequence: `rows × cols` patches in
 * row-major order starting at token `offset` (CLIP ViT puts its class token at 0, so 1).
 */
export interface TokenGrid {
  rows: number;
  cols: number;
  offset: number;
}

/** [x1, y1, x2, y2] as fractions of the image width and height, y downwards. */
export type NormalisedBox = readonly [number, number, number, number];

/** A segmentation polygon: [x, y] points as fractions of the image width and height. */
export type NormalisedPolygon = readonly (readonly [number, number])[];

/**
 * Patch indices whose centres fall inside any of the polygons (even-odd rule), for a detection
 * that has a segmentation (VCR's `segms`): a person's mask leaves out the background its box
 * holds. When no patch centre is inside (a thin or small mask), the box's patches.
 */
export function segmentPatchIndices(grid: TokenGrid, box: NormalisedBox, polygons: readonly NormalisedPolygon[]): number[] {
  const inside: number[] = [];
  for (let row = 0; row < grid.rows; row++) {
    for (let col = 0; col < grid.cols; col++) {
      const point: [number, number] = [(col + 0.5) / grid.cols, (row + 0.5) / grid.rows];
      if (polygons.some((polygon) => insidePolygon(point, polygon))) inside.push(row * grid.cols + col);
    }
  }
  return inside.length > 0 ? inside : regionPatchIndices(grid, box);
}

function insidePolygon([x, y]: readonly [number, number], polygon: NormalisedPolygon): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * Patch indices (0-based inside the grid) whose centres fall inside the box, borders
 * included; when none does (a box smaller than a patch), the patch holding the box centre,
 * which is the patch whose centre is nearest to it.
 */
export function regionPatchIndices(grid: TokenGrid, box: NormalisedBox): number[] {
  const [x1, y1, x2, y2] = clampBox(box);
  const inside: number[] = [];
  for (let row = 0; row < grid.rows; row++) {
    const cy = (row + 0.5) / grid.rows;
    if (cy < y1 || cy > y2) continue;
    for (let col = 0; col < grid.cols; col++) {
      const cx = (col + 0.5) / grid.cols;
      if (cx >= x1 && cx <= x2) inside.push(row * grid.cols + col);
    }
  }
  if (inside.length > 0) return inside;
  const col = Math.min(grid.cols - 1, Math.floor(((x1 + x2) / 2) * grid.cols));
  const row = Math.min(grid.rows - 1, Math.floor(((y1 + y2) / 2) * grid.rows));
  return [row * grid.cols + col];
}

function clampBox(box: NormalisedBox): [number, number, number, number] {
  if (box.length !== 4 || !box.every(Number.isFinite) || box[2] < box[0] || box[3] < box[1]) {
    throw new Error(`region box ${JSON.stringify(box)} is not [x1, y1, x2, y2] with x1 ≤ x2, y1 ≤ y2`);
  }
  // Annotated boxes overhang the image by a pixel or so (GQA, VCR); the image ends at its border.
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  return [clamp(box[0]), clamp(box[1]), clamp(box[2]), clamp(box[3])];
}

function checkTokens(tokens: tf.Tensor3D, grid: TokenGrid, boxesPerImage: readonly (readonly NormalisedBox[])[]): void {
  if (tokens.rank !== 3) throw new Error(`region pooling needs tokens [batch, tokens, dim], got ${JSON.stringify(tokens.shape)}`);
  if (boxesPerImage.length !== tokens.shape[0]) throw new Error(`region pooling: ${boxesPerImage.length} box lists for a batch of ${tokens.shape[0]}`);
  if (grid.offset + grid.rows * grid.cols > tokens.shape[1]) {
    throw new Error(`region pooling: a ${grid.rows}×${grid.cols} grid at offset ${grid.offset} does not fit ${tokens.shape[1]} tokens`);
  }
}

/**
 * Mean of the patch tokens inside each box (inside its polygons where `polygonsPerImage` gives
 * some), padded to the most boxes in any image: `regions` [B, R, D], `mask` [B, R] (1 for a
 * real box). Differentiable in `tokens`.
 */
export function poolRegions(
  tokens: tf.Tensor3D,
  grid: TokenGrid,
  boxesPerImage: readonly (readonly NormalisedBox[])[],
  polygonsPerImage?: readonly (readonly (readonly NormalisedPolygon[] | undefined)[] | undefined)[],
): { regions: tf.Tensor3D; mask: tf.Tensor2D; maxRegions: number } {
  checkTokens(tokens, grid, boxesPerImage);
  const [batch, tokenCount] = tokens.shape;
  const maxRegions = Math.max(1, ...boxesPerImage.map((boxes) => boxes.length));
  const weights = new Float32Array(batch * maxRegions * tokenCount);
  const mask = new Float32Array(batch * maxRegions);
  boxesPerImage.forEach((boxes, image) => {
    boxes.forEach((box, region) => {
      const polygons = polygonsPerImage?.[image]?.[region];
      const patches = polygons?.length ? segmentPatchIndices(grid, box, polygons) : regionPatchIndices(grid, box);
      const base = (image * maxRegions + region) * tokenCount + grid.offset;
      for (const patch of patches) weights[base + patch] = 1 / patches.length;
      mask[image * maxRegions + region] = 1;
    });
  });
  return tf.tidy(() => ({
    // A weighted matmul rather than gather: gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks.
    regions: matMul(tf.tensor3d(weights, [batch, maxRegions, tokenCount]), tokens) as tf.Tensor3D,
    mask: tf.tensor2d(mask, [batch, maxRegions]),
    maxRegions,
  }));
}

/** The pooled regions of all images as one list [N, D], image by image in box order. */
export function poolRegionList(tokens: tf.Tensor3D, grid: TokenGrid, boxesPerImage: readonly (readonly NormalisedBox[])[]): tf.Tensor2D {
  return tf.tidy(() => {
    const { regions, maxRegions } = poolRegions(tokens, grid, boxesPerImage);
    const rowsOfPadded = boxesPerImage.flatMap((boxes, image) => boxes.map((_, region) => image * maxRegions + region));
    const padded = regions.reshape([boxesPerImage.length * maxRegions, tokens.shape[2]]) as tf.Tensor2D;
    return matMul(selectionMatrix(rowsOfPadded, padded.shape[0]), padded) as tf.Tensor2D;
  });
}

/** A [rows.length, size] one-hot matrix: multiplying by it selects rows without gather (see poolRegions). */
export function selectionMatrix(rows: readonly number[], size: number): tf.Tensor2D {
  const values = new Float32Array(rows.length * size);
  rows.forEach((row, i) => {
    if (!Number.isInteger(row) || row < 0 || row >= size) throw new Error(`selection of row ${row} from ${size}`);
    values[i * size + row] = 1;
  });
  return tf.tensor2d(values, [rows.length, size]);
}
