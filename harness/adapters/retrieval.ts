import { ContrastiveRetrieval, zeroShotSimilarities } from '../../models/fine-tuning/contrastive-retrieval.ts';
import type { RetrievalImage } from '../../tasks/retrieval/karpathy.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { limitTraining, unsupportedForProblem, type TaskAdapter } from './adapter.ts';

const imagesOfSplit = (split: LoadedSplit<unknown>) => split.examples as RetrievalImage[];

/**
 * Image-text retrieval: zero-shot ranks the encoder's own embeddings; `ft` trains a
 * contrastive problem on (image, caption) pairs, and domain objectives align image embeddings.
 */
export const retrievalAdapter: TaskAdapter = {
  task: 'retrieval',
  problemKind: 'contrastive',
  submissionExtension: 'npy',
  unsupportedMethod: (method) => unsupportedForProblem(method, 'retrieval', 'contrastive', true),
  imagesOf: (split) => imagesOfSplit(split).map((image) => image.path),
  textsOf: (split) => imagesOfSplit(split).flatMap((image) => image.captions.map((c) => c.text)),
  async build(context) {
    const { method, images, texts, splits } = context;
    if (method.base === 'zeroshot') {
      return { problem: null, predict: (split) => zeroShotSimilarities(images, texts, imagesOfSplit(split)), dispose: () => undefined, hyperparameters: {} };
    }
    const trainImages = limitTraining(imagesOfSplit(splits.train!), context.maxTrainExamples);
    const model = new ContrastiveRetrieval(method, images, texts, context.targetImages, context.random);
    return {
      problem: {
        variables: model.namedVariables(),
        exampleCount: trainImages.length,
        computeGradients: (batch, stepContext) => model.step(batch.map((i) => trainImages[i]), stepContext),
        afterOptimizerStep: () => model.afterStep(),
        // rsum, the sum of the six recalls, is the retrieval literature's model-selection number.
        validate: async () => context.task.score(splits.validation!, model.similarities(imagesOfSplit(splits.validation!))).metrics.rsum,
      },
      predict: (split) => model.similarities(imagesOfSplit(split)),
      dispose: () => model.dispose(),
      hyperparameters: {},
    };
  },
};
