import { InputError } from '../../core/errors.ts';

/**
 * Image-text retrieval recall over a similarity matrix S[image][caption] (row-major, rows = images,
 * columns = captions, the captions grouped image by image as in the Karpathy JSON).
 *
 * Ranks (1-based) are pessimistic on ties: a candidate that scores EQUAL to the right one counts as
 * ranked above it. So a model that gives every pair the same score gets rank n, never a lucky
 * rank 1, and the result does not depend on file order. Precisely:
 * - text→image, caption c of image g: rank = 1 + #{images i ≠ g : S[i][c] >= S[g][c]};
 * - image→text, image i with captions G: best = max over c in G of S[i][c];
 *   rank = 1 + #{captions c not in G : S[i][c] >= best} (other right captions never count).
 * A query is a hit at K when rank <= K. Recalls are ×100, rsum is the sum of the six, meanRecall rsum / 6.
 *
 * Both directions are counted in one row-major pass over the matrix, with no sort and no copy: memory
 * beyond the matrix is a few numbers per image and per caption.
 */

export const RECALL_KS = [1, 5, 10] as const;

export interface DirectionRecall {
  r1: number;
  r5: number;
  r10: number;
}

export interface RetrievalScores {
  i2t: DirectionRecall;
  t2i: DirectionRecall;
  rsum: number;
  meanRecall: number;
  /** floor of the median rank and the mean rank (1-based), averaged over folds. */
  i2tMedianRank: number;
  i2tMeanRank: number;
  t2iMedianRank: number;
  t2iMeanRank: number;
  /** Rank of each image's best right caption, within its fold. */
  imageRanks: Int32Array;
  /** Rank of each caption's image, within its fold. */
  captionRanks: Int32Array;
  /**
   * Per image, its share of rsum: 100 × (its three i2t hits) + 100 × (images ÷ captions of its fold)
   * × (the t2i hits of its captions). The mean over images is rsum exactly (up to rounding), so a
   * bootstrap over images resamples both directions with the gallery fixed.
   */
  perImage: Float64Array;
  folds: number;
}

export interface RetrievalScoreOptions {
  /** Split the images into this many consecutive equal folds (COCO 1K: 5), score each alone, average. */
  folds?: number;
  /** Names the matrix in error messages (a file path). */
  source?: string;
}

/**
 * Scores a similarity matrix. `captionImageIndex[c]` is the row (image) of caption c; it must be
 * non-decreasing and give every image at least one caption, as a Karpathy split does.
 */
export function scoreRetrieval(
  similarities: Float32Array | Float64Array,
  imageCount: number,
  captionImageIndex: Int32Array,
  options: RetrievalScoreOptions = {},
): RetrievalScores {
  const source = options.source ?? 'similarities';
  const captionCount = captionImageIndex.length;
  if (!Number.isInteger(imageCount) || imageCount < 1) throw new InputError(`expected at least one image, got ${imageCount}`, { file: source });
  if (similarities.length !== imageCount * captionCount) {
    throw new InputError(`expected ${imageCount} × ${captionCount} = ${imageCount * captionCount} similarities (images × captions), got ${similarities.length}`, { file: source });
  }
  const folds = options.folds ?? 1;
  if (!Number.isInteger(folds) || folds < 1 || imageCount % folds !== 0) {
    throw new InputError(`expected a number of folds that divides the ${imageCount} images evenly, got ${folds}`, { file: source, field: 'folds' });
  }
  const { captionStart, captionEnd } = captionRangesPerImage(captionImageIndex, imageCount);
  checkFiniteSimilarities(similarities, captionCount, source);

  const imageRanks = new Int32Array(imageCount);
  const captionRanks = new Int32Array(captionCount);
  const foldImages = imageCount / folds;
  for (let fold = 0; fold < folds; fold++) {
    const firstImage = fold * foldImages;
    const endImage = firstImage + foldImages;
    rankBlock(similarities, captionCount, captionImageIndex, captionStart, captionEnd, firstImage, endImage, imageRanks, captionRanks);
  }

  const i2tSums = [0, 0, 0];
  const t2iSums = [0, 0, 0];
  let i2tMedian = 0, i2tMean = 0, t2iMedian = 0, t2iMean = 0;
  const perImage = new Float64Array(imageCount);
  for (let fold = 0; fold < folds; fold++) {
    const firstImage = fold * foldImages;
    const endImage = firstImage + foldImages;
    const firstCaption = captionStart[firstImage];
    const endCaption = captionEnd[endImage - 1];
    const foldImageRanks = imageRanks.subarray(firstImage, endImage);
    const foldCaptionRanks = captionRanks.subarray(firstCaption, endCaption);
    RECALL_KS.forEach((k, j) => {
      i2tSums[j] += recallAt(foldImageRanks, k);
      t2iSums[j] += recallAt(foldCaptionRanks, k);
    });
    i2tMedian += medianRank(foldImageRanks);
    i2tMean += meanOf(foldImageRanks);
    t2iMedian += medianRank(foldCaptionRanks);
    t2iMean += meanOf(foldCaptionRanks);
    const captionWeight = foldImages / (endCaption - firstCaption);
    for (let i = firstImage; i < endImage; i++) {
      let captionHits = 0;
      for (let c = captionStart[i]; c < captionEnd[i]; c++) captionHits += hitsAtKs(captionRanks[c]);
      perImage[i] = 100 * hitsAtKs(imageRanks[i]) + 100 * captionWeight * captionHits;
    }
  }
  const i2t = { r1: i2tSums[0] / folds, r5: i2tSums[1] / folds, r10: i2tSums[2] / folds };
  const t2i = { r1: t2iSums[0] / folds, r5: t2iSums[1] / folds, r10: t2iSums[2] / folds };
  const rsum = i2t.r1 + i2t.r5 + i2t.r10 + t2i.r1 + t2i.r5 + t2i.r10;
  return {
    i2t,
    t2i,
    rsum,
    meanRecall: rsum / 6,
    i2tMedianRank: i2tMedian / folds,
    i2tMeanRank: i2tMean / folds,
    t2iMedianRank: t2iMedian / folds,
    t2iMeanRank: t2iMean / folds,
    imageRanks,
    captionRanks,
    perImage,
    folds,
  };
}

/**
 * Ranks within the block of images [firstImage, endImage) and their captions. Each row is read once,
 * front to back: the row's count for image→text and every column's count for text→image grow together.
 */
function rankBlock(
  s: Float32Array | Float64Array,
  stride: number,
  captionImageIndex: Int32Array,
  captionStart: Int32Array,
  captionEnd: Int32Array,
  firstImage: number,
  endImage: number,
  imageRanks: Int32Array,
  captionRanks: Int32Array,
): void {
  const firstCaption = captionStart[firstImage];
  const width = captionEnd[endImage - 1] - firstCaption;
  const goldScore = new Float64Array(width);
  for (let k = 0; k < width; k++) {
    const c = firstCaption + k;
    goldScore[k] = s[captionImageIndex[c] * stride + c];
  }
  // Starts at 0 and every row adds 1 where S[i][c] >= gold, the gold row itself included, so the
  // final count is 1 + the others at or above: the pessimistic rank.
  const atOrAboveGold = new Int32Array(width);
  for (let i = firstImage; i < endImage; i++) {
    const rowStart = i * stride + firstCaption;
    const ownStart = i * stride + captionStart[i];
    const ownEnd = i * stride + captionEnd[i];
    let best = -Infinity;
    for (let p = ownStart; p < ownEnd; p++) if (s[p] > best) best = s[p];
    let atOrAboveBest = 0;
    for (let k = 0; k < width; k++) {
      const v = s[rowStart + k];
      atOrAboveBest += v >= best ? 1 : 0;
      atOrAboveGold[k] += v >= goldScore[k] ? 1 : 0;
    }
    // The pass counted this image's own captions at or above its best; they are right answers, not competitors.
    let ownAtOrAbove = 0;
    for (let p = ownStart; p < ownEnd; p++) ownAtOrAbove += s[p] >= best ? 1 : 0;
    imageRanks[i] = 1 + atOrAboveBest - ownAtOrAbove;
  }
  captionRanks.set(atOrAboveGold, firstCaption);
}

function captionRangesPerImage(captionImageIndex: Int32Array, imageCount: number): { captionStart: Int32Array; captionEnd: Int32Array } {
  const captionStart = new Int32Array(imageCount).fill(-1);
  const captionEnd = new Int32Array(imageCount).fill(-1);
  let previous = -1;
  for (let c = 0; c < captionImageIndex.length; c++) {
    const image = captionImageIndex[c];
    if (image < 0 || image >= imageCount || image < previous) {
      throw new InputError(`caption ${c} belongs to image ${image}: expected captions grouped image by image in image order, images 0..${imageCount - 1}`, { field: 'captionImageIndex' });
    }
    if (image !== previous) captionStart[image] = c;
    captionEnd[image] = c + 1;
    previous = image;
  }
  const captionless = captionStart.indexOf(-1);
  if (captionless >= 0) throw new InputError(`image ${captionless} has no caption: image→text recall needs at least one per image`, { field: 'captionImageIndex' });
  return { captionStart, captionEnd };
}

/** Refuses NaN and ±Infinity, naming the first bad cell in row-major order. */
export function checkFiniteSimilarities(s: Float32Array | Float64Array, cols: number, source: string): void {
  for (let p = 0; p < s.length; p++) {
    // v - v is 0 for every finite v and NaN for NaN and ±Infinity.
    if (s[p] - s[p] !== 0) {
      const row = Math.floor(p / cols);
      throw new InputError(`expected finite similarities, got ${s[p]} at [image ${row}, caption ${p - row * cols}] (0-based row, column)`, { file: source });
    }
  }
}

function hitsAtKs(rank: number): number {
  return (rank <= 1 ? 1 : 0) + (rank <= 5 ? 1 : 0) + (rank <= 10 ? 1 : 0);
}

function recallAt(ranks: Int32Array, k: number): number {
  let hits = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i] <= k) hits++;
  return (100 * hits) / ranks.length;
}

/** floor(median) of 1-based ranks: vsepp's floor(median(0-based)) + 1. */
function medianRank(ranks: Int32Array): number {
  const sorted = Int32Array.from(ranks).sort();
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  return Math.floor(median);
}

function meanOf(ranks: Int32Array): number {
  let sum = 0;
  for (let i = 0; i < ranks.length; i++) sum += ranks[i];
  return sum / ranks.length;
}
