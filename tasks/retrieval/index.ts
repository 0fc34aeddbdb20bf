import { InputError } from '../../core/errors.ts';
import type { LoadedSplit, ScoreOptions, ScoreReport, Task } from '../../core/types.ts';
import { KARPATHY_SPLITS, RETRIEVAL_TASK_VERSION, captionImageIndexOf, loadKarpathySplit, type RetrievalImage } from './karpathy.ts';
import { readNpyMatrix, writeNpyMatrix, type SimilarityMatrix } from './npy.ts';
import { synthPaths, type SynthDomain } from '../synth/layout.ts';
import { checkFiniteSimilarities, scoreRetrieval, type DirectionRecall } from './recall.ts';
import { isHubDatasetFolder } from '../hub-snapshot.ts';
import type { LoadOptions } from '../../core/types.ts';

export { KARPATHY_SPLITS, RETRIEVAL_TASK_VERSION, captionImageIndexOf, loadKarpathySplit, retrievalCaptions, type RetrievalCaption, type RetrievalImage } from './karpathy.ts';
export { encodeNpyMatrix, parseNpyMatrix, readNpyMatrix, writeNpyMatrix, type SimilarityMatrix } from './npy.ts';
export { RECALL_KS, checkFiniteSimilarities, scoreRetrieval, type DirectionRecall, type RetrievalScoreOptions, type RetrievalScores } from './recall.ts';

/** Bumped when the recall definition (tie rule, folds, per-example score) changes. */
export const RETRIEVAL_METRIC_VERSION = '1';

/** A matrix [images, captions] of the split; a bare typed array is read with the split's shape. */
export type RetrievalPredictions = SimilarityMatrix | Float32Array | Float64Array;

/** What `vlbench score --task retrieval` prints. */
export interface RetrievalOfficial {
  i2t: DirectionRecall;
  t2i: DirectionRecall;
  rsum: number;
  meanRecall: number;
}

/** Checks the matrix's shape against the split: rows = images, columns = captions, in file order. */
export function similarityMatrixFor(split: LoadedSplit<RetrievalImage>, predictions: RetrievalPredictions, source = 'similarities'): SimilarityMatrix {
  const images = split.examples.length;
  const captions = split.examples.reduce((sum, image) => sum + image.captions.length, 0);
  const expected = `[${images}, ${captions}] (images × captions of split "${split.split}")`;
  if (predictions instanceof Float32Array || predictions instanceof Float64Array) {
    if (predictions.length !== images * captions) throw new InputError(`expected a matrix ${expected} = ${images * captions} values, got ${predictions.length} values`, { file: source });
    return { data: predictions, rows: images, cols: captions };
  }
  if (predictions.rows !== images || predictions.cols !== captions) {
    throw new InputError(`expected a similarity matrix of shape ${expected}, got [${predictions.rows}, ${predictions.cols}]`, { file: source });
  }
  if (predictions.data.length !== images * captions) throw new InputError(`matrix claims [${images}, ${captions}] but holds ${predictions.data.length} values`, { file: source });
  return predictions;
}

/**
 * Recall@1/5/10 both ways, rsum and mean recall (×100), with `folds` read from the options
 * (COCO 1K = 5). Ties count against the model (recall.ts). Per example: one entry per image, its
 * share of rsum (the mean over images is rsum).
 */
export function scoreRetrievalSplit(split: LoadedSplit<RetrievalImage>, predictions: RetrievalPredictions, options: ScoreOptions = {}, source = 'similarities'): ScoreReport {
  const matrix = similarityMatrixFor(split, predictions, source);
  // A matrix read from a .npy file names that file in errors about its values; `source` is for arrays built in memory.
  const scores = scoreRetrieval(matrix.data, matrix.rows, captionImageIndexOf(split), { folds: options.folds, source: matrix.file ?? source });
  const official: RetrievalOfficial = { i2t: scores.i2t, t2i: scores.t2i, rsum: scores.rsum, meanRecall: scores.meanRecall };
  return {
    metric: 'retrieval-recall',
    metricVersion: RETRIEVAL_METRIC_VERSION,
    primary: 'rsum',
    metrics: {
      i2t_r1: scores.i2t.r1,
      i2t_r5: scores.i2t.r5,
      i2t_r10: scores.i2t.r10,
      t2i_r1: scores.t2i.r1,
      t2i_r5: scores.t2i.r5,
      t2i_r10: scores.t2i.r10,
      rsum: scores.rsum,
      meanRecall: scores.meanRecall,
      i2t_medr: scores.i2tMedianRank,
      i2t_meanr: scores.i2tMeanRank,
      t2i_medr: scores.t2iMedianRank,
      t2i_meanr: scores.t2iMeanRank,
      folds: scores.folds,
    },
    official,
    perExample: split.examples.map((image, row) => ({ id: image.id, score: scores.perImage[row] })),
  };
}

/**
 * A split from a Karpathy JSON (karpathy.ts), or from a Hub dataset folder (lmms-lab/flickr30k's
 * parquet, or a cache folder of it: hub-parquet.ts), which gives the same examples of the same images.
 */
export async function loadRetrievalSplit(options: LoadOptions): Promise<LoadedSplit<RetrievalImage>> {
  if (options.files?.annotations === undefined && options.dataDir !== undefined && (await isHubDatasetFolder(options.dataDir))) {
    const { loadRetrievalHubSplit } = await import('./hub-parquet.ts');
    return loadRetrievalHubSplit({ ...options, dataDir: options.dataDir });
  }
  if (options.revision !== undefined) throw new InputError('--revision picks a snapshot of a Hugging Face dataset folder; this is not one', { file: options.dataDir, field: '--revision' });
  return loadKarpathySplit(options);
}

/** Image-text retrieval on Karpathy splits (COCO 5K / 1K, Flickr30k 1K, SynthScenes). */
export const retrievalTask: Task<RetrievalImage, RetrievalPredictions> = {
  name: 'retrieval',
  scoreOptions: ['folds'],
  version: RETRIEVAL_TASK_VERSION,
  description: 'Image-text retrieval on Karpathy splits (COCO, Flickr30k): R@1/5/10 image→text and text→image, RSUM; .npy similarity matrix',
  splits: KARPATHY_SPLITS,
  load: loadRetrievalSplit,
  async readPredictions(split, file) {
    return similarityMatrixFor(split, await readNpyMatrix(file), file);
  },
  score(split, predictions, options) {
    return scoreRetrievalSplit(split, predictions, options);
  },
  async writeSubmission(split, predictions, file) {
    const matrix = similarityMatrixFor(split, predictions, 'similarities to write');
    // A file that could not be scored is not written.
    checkFiniteSimilarities(matrix.data, matrix.cols, 'similarities to write');
    await writeNpyMatrix(file, matrix);
  },
  // One Karpathy file per domain, its splits named inside it.
  synthScenes: ({ root, domain, split }) => ({ split, files: { annotations: synthPaths.retrieval(root, domain as SynthDomain) }, imagesDir: synthPaths.imagesRoot(root) }),
};
