import { ContrastiveRetrieval, similaritiesOfEmbeddings, zeroShotEmbeddings, type SplitEmbeddings } from '../../models/fine-tuning/contrastive-retrieval.ts';
import type { RetrievalImage } from '../../tasks/retrieval/karpathy.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { limitTraining, unsupportedForProblem, type PredictionRows, type TaskAdapter } from './adapter.ts';
import { decodeFloat32, encodeFloat32, exampleIdOf } from './prediction-rows.ts';

const imagesOfSplit = (split: LoadedSplit<unknown>) => split.examples as RetrievalImage[];

/**
 * Image-text retrieval: zero-shot ranks the encoder's own embeddings; `ft` trains a
 * contrastive problem on (image, caption) pairs, and domain objectives align image embeddings.
 */
export const retrievalAdapter: TaskAdapter = {
  task: 'retrieval',
  problemKind: 'contrastive',
  taskLoss: 'infonce',
  submissionExtension: 'npy',
  unsupportedMethod: (method) => unsupportedForProblem(method, 'retrieval', 'contrastive', true),
  imagesOf: (split) => imagesOfSplit(split).map((image) => image.path),
  textsOf: (split) => imagesOfSplit(split).flatMap((image) => image.captions.map((c) => c.text)),
  predictionRows: embeddingRows(),
  // The demo ranks with the encoder as it is, then fine-tuned (frozen and with blocks tuned), 2 epochs.
  demo: { methods: ['zeroshot', 'ft'], takesMethods: false, epochs: 2, tunedFt: true },
  async build(context) {
    const { method, images, texts, splits } = context;
    if (method.base === 'zeroshot') {
      const embed = (split: LoadedSplit<unknown>) => zeroShotEmbeddings(images, texts, imagesOfSplit(split));
      return { problem: null, predict: (split) => similaritiesOfEmbeddings(embed(split)), embed, dispose: () => undefined, hyperparameters: {} };
    }
    const trainImages = limitTraining(imagesOfSplit(splits.train!), context.maxTrainExamples);
    const { encoder } = context;
    const model = new ContrastiveRetrieval(method, images, texts, context.targetImages, context.random, encoder);
    const variables = new Map([...model.namedVariables(), ...(encoder?.namedVariables() ?? [])]);
    return {
      problem: {
        variables,
        variableOptions: encoder?.variableOptions(),
        exampleCount: trainImages.length,
        computeGradients: (batch, stepContext) => model.step(batch.map((i) => trainImages[i]), stepContext, variables),
        afterOptimizerStep: () => model.afterStep(),
        // rsum, the sum of the six recalls, is the retrieval literature's model-selection number.
        validate: async () => context.task.score(splits.validation!, model.similarities(imagesOfSplit(splits.validation!))).metrics.rsum,
      },
      // Through the embeddings a shard contributes, so a merge ranks exactly this product.
      predict: (split) => similaritiesOfEmbeddings(model.embeddings(imagesOfSplit(split))),
      embed: (split) => model.embeddings(imagesOfSplit(split)),
      dispose: () => model.dispose(),
      hyperparameters: {},
    };
  },
};

/** A retrieval shard's row for one image: its normalised embedding and its captions' (float32, base64); the similarity matrix is built at merge. */
interface EmbeddingRow {
  image: string;
  captions: string;
}

function embeddingRows(): PredictionRows {
  return {
    joinComputes: true,
    rows(model, slice) {
      const { dim, images, captions } = model.embed!(slice);
      let caption = 0;
      return new Map(
        imagesOfSplit(slice).map((image, row) => {
          const entry: EmbeddingRow = { image: encodeFloat32(images.subarray(row * dim, (row + 1) * dim)), captions: encodeFloat32(captions.subarray(caption * dim, (caption + image.captions.length) * dim)) };
          caption += image.captions.length;
          return [exampleIdOf(image), entry];
        }),
      );
    },
    join(split, rows) {
      const list = imagesOfSplit(split);
      const parts = list.map((image) => rows.get(exampleIdOf(image)) as EmbeddingRow);
      const images = parts.map((part) => decodeFloat32(part.image));
      const dim = images[0]?.length ?? 0;
      list.forEach((image, i) => {
        const captions = decodeFloat32(parts[i].captions).length;
        if (images[i].length !== dim || captions !== image.captions.length * dim) throw new Error(`image ${exampleIdOf(image)}: expected a ${dim}-value embedding and ${image.captions.length} caption embeddings of ${dim}, got ${images[i].length} and ${captions} values`);
      });
      const embeddings: SplitEmbeddings = { dim, images: concatFloat32(images), captions: concatFloat32(parts.map((part) => decodeFloat32(part.captions))) };
      return similaritiesOfEmbeddings(embeddings);
    },
  };
}

function concatFloat32(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
