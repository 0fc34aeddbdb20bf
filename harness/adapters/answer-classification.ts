import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VqaClassifier } from '../../models/heads/vqa-classifier.ts';
import { softScoreBceLoss, softScoreTargets, type SoftTarget } from '../../models/objectives/soft-score-bce.ts';
import type { SceneGraph } from '../../models/objectives/scene-graph.ts';
import { AnswerProcessingCache, vqaSoftScore } from '../../tasks/vqa/accuracy.ts';
import type { GqaSceneGraph } from '../../tasks/gqa/index.ts';
import type { SeededRandom } from '../../core/random.ts';
import { FusionTraining, type FusionTaskHead, type FusionRows } from '../../models/fine-tuning/fusion-training.ts';
import { methodNeeds } from '../../models/objectives/index.ts';
import { InputError } from '../../core/errors.ts';
import type { LoadedSplit, LoadOptions } from '../../core/types.ts';
import { RelationalFusion } from '../../models/heads/relational-fusion.ts';
import { QuestionWordTable } from '../../models/heads/question-words.ts';
import type { Fusion } from '../../models/heads/fusion.ts';
import { regionKey, type FeatureTable } from '../../models/features.ts';
import { regionBoxes, type ImageBoxes } from './object-regions.ts';
import { createFusion, limitTraining, unsupportedForProblem, validationScore, type AdapterContext, type AdapterDefaults, type TaskAdapter } from './adapter.ts';
import { gqaGraphVocabulary, gqaSceneGraph, vocabularySizes } from './scene-graphs.ts';
import { keyedPredictionRows } from './prediction-rows.ts';

/**
 * Answer classification over a vocabulary built from the training answers, on the fusion's
 * pooled rows: VQA v2 trains on the official soft scores of each question's ten answers, GQA on
 * its one answer (score 1). Predictions are the argmax answer string, keyed as the task's official
 * result format keys them. One task's adapter (vqa.ts, gqa.ts, …) is `answerClassificationAdapter`
 * of an `AnswerTask`: where its examples keep what this core reads, and its own rules.
 */
export interface AnswerTask<Example, Id extends number | string> {
  /** The task's name in tasks/registry.ts. */
  task: string;
  /** The key of an example's prediction (the official result file's: VQA's question_id, VizWiz's image). */
  predictionKeyOf(example: Example): Id;
  questionOf(example: Example): string;
  /** The image file the example asks about. */
  imagePathOf(example: Example): string;
  /** The image id detections are keyed by (COCO's `image_id`). */
  imageIdOf(example: Example): string;
  /** The answer vocabulary of the training examples, most frequent first (class indexes follow it). */
  vocabulary(train: readonly Example[], minCount: number): string[];
  /** Soft targets of each example over the vocabulary (answers outside it contribute nothing). */
  targets(examples: readonly Example[], vocabulary: readonly string[]): SoftTarget[][];
  /** The scene graph of an example's image, for `sg`; absent: the task has none. */
  graphOf?(example: Example, graphsByImageId: ReadonlyMap<string, GqaSceneGraph>): GqaSceneGraph | undefined;
  /** Scene graphs by image id of the training split (TaskAdapter.loadSceneGraphs). */
  loadSceneGraphs?(train: LoadedSplit<Example>, trainOptions: LoadOptions, synthRoot: string | undefined): Promise<Map<string, GqaSceneGraph>>;
  /** The floors beside a split's score (TaskAdapter.controls). */
  controls?(train: LoadedSplit<Example>, split: LoadedSplit<Example>, predictions: ReadonlyMap<Id, string>): Record<string, number>;
}

/** The usual VQA v2 recipe keeps answers seen ≥ 9 times; on small data (SynthScenes, tests) that drops real answers, so below 50k questions the default is 1. */
export function defaultMinAnswerCount(trainQuestions: number): number {
  return trainQuestions >= 50_000 ? 9 : 1;
}

/** The answers seen at least `minCount` times, most frequent first, ties in code-unit string order, so the same examples always give the same class indexes. */
export function countedAnswerVocabulary(answers: Iterable<string>, minCount: number): string[] {
  const counts = new Map<string, number>();
  for (const answer of answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  return [...counts]
    .filter(([, count]) => count >= minCount)
    .sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : a > b ? 1 : 0))
    .map(([answer]) => answer);
}

/** Targets of VQA-like examples (several human answers each): each distinct normalised answer in the vocabulary, at its official soft score. */
export function softAnswerTargets<Example>(examples: readonly Example[], answersOf: (example: Example) => readonly string[], vocabulary: readonly string[]): SoftTarget[][] {
  const cache = new AnswerProcessingCache();
  const indexOf = new Map(vocabulary.map((answer, i) => [answer, i]));
  return examples.map((example) => {
    const answers = answersOf(example);
    const targets: SoftTarget[] = [];
    for (const candidate of new Set(answers.map((a) => cache.normalize(a)))) {
      const index = indexOf.get(candidate);
      if (index !== undefined) targets.push({ answer: index, score: vqaSoftScore(answers, candidate, cache) });
    }
    return targets;
  });
}

/** Targets of examples with one answer each (exact match, score 1); none where it is missing or outside the vocabulary. */
export function exactAnswerTargets<Example>(examples: readonly Example[], answerOf: (example: Example) => string | undefined, vocabulary: readonly string[]): SoftTarget[][] {
  const indexOf = new Map(vocabulary.map((answer, i) => [answer, i]));
  return examples.map((example) => {
    const answer = answerOf(example);
    const index = answer === undefined ? undefined : indexOf.get(answer);
    return index === undefined ? [] : [{ answer: index, score: 1 }];
  });
}

/** The scene graph of an image found by its file name (SynthScenes VQA, whose GQA graphs are keyed by image name). */
export function graphByImageFile(imagePath: string, graphsByImageId: ReadonlyMap<string, GqaSceneGraph>): GqaSceneGraph | undefined {
  return graphsByImageId.get(basename(imagePath).replace(/\.jpg$/i, ''));
}

export class AnswerHead implements FusionTaskHead {
  readonly classifier: VqaClassifier;
  private targets?: tf.Tensor2D;

  constructor(inputDim: number, readonly vocabulary: readonly string[], random: SeededRandom) {
    this.classifier = new VqaClassifier({ inputDim, answers: vocabulary.length }, random.fork('answer-classifier'));
  }

  /** Sets the batch's targets; the loss reads them. */
  useTargets(targets: readonly (readonly SoftTarget[])[]): void {
    this.targets?.dispose();
    this.targets = softScoreTargets(targets, this.vocabulary.length);
  }

  logits(pooled: tf.Tensor2D): tf.Tensor2D {
    return this.classifier.apply(pooled);
  }

  loss(logits: tf.Tensor2D): tf.Scalar {
    if (!this.targets) throw new Error('AnswerHead: no targets set for this batch');
    return softScoreBceLoss(logits, this.targets);
  }

  namedVariables(): Map<string, tf.Variable> {
    return this.classifier.namedVariables();
  }

  dispose(): void {
    this.targets?.dispose();
    this.classifier.dispose();
  }
}

/** What the fusion's rows read of an example (any AnswerTask has it, whatever its prediction key). */
export type ExampleParts<Example> = Pick<AnswerTask<Example, number | string>, 'questionOf' | 'imagePathOf' | 'imageIdOf'>;

/** The fusion's rows of examples: image and text keys, and where given their graphs and object boxes. */
export function answerRows<Example>(spec: ExampleParts<Example>, examples: readonly Example[], graphs?: readonly SceneGraph[], boxes?: ImageBoxes, cropped = false): FusionRows {
  const imageOf = (example: Example) => spec.imagePathOf(example);
  return {
    imageKeys: examples.map(imageOf),
    textKeys: examples.map((example) => spec.questionOf(example)),
    graphs: graphs ? [...graphs] : undefined,
    boxes: boxes && examples.map((example) => boxes.boxesOf(imageOf(example))),
    regionKeys: boxes && cropped ? examples.map((example) => boxes.pixelBoxesOf(imageOf(example)).map((box) => regionKey(imageOf(example), box))) : undefined,
  };
}

/** At most this many boxes per image become object tokens (the highest-scoring): the pair term costs the square of the count. */
export const MAX_REGIONS = 10;

/**
 * The relational fusion (VQA's and GQA's default), its word table and the rows' boxes: over
 * `--regions` boxes when the run has them, else over the grid's cells.
 */
async function relationalParts<Example>(spec: ExampleParts<Example>, context: AdapterContext, trainExamples: readonly Example[]): Promise<{ fusion: Fusion; words?: QuestionWordTable; boxes?: ImageBoxes; regionTable?: FeatureTable }> {
  const { images, texts, head } = context;
  const words = texts.textTokenIds ? new QuestionWordTable(trainExamples.map((example) => spec.questionOf(example)), texts.textTokenIds) : undefined;
  let boxes: ImageBoxes | undefined;
  if (context.regions) {
    const all = [trainExamples, ...[context.splits.validation, ...context.splits.evaluations].filter((s) => s !== null).map((s) => examplesOf<Example>(s!))].flat();
    const gridSide = Math.round(Math.sqrt(images.tokenCount - 1));
    boxes = await regionBoxes(context.regions, all.map((example) => ({ imageId: spec.imageIdOf(example), imagePath: spec.imagePathOf(example) })), context.preprocessing, { maxRegions: MAX_REGIONS, fallbackGrid: gridSide });
    context.log?.(`regions: ${context.regions.file} (${context.regions.count} detections; ${boxes.fallbackImages} image(s) without a box fall back to the ${gridSide}×${gridSide} grid's cells; ${boxes.unusedDetections} detection(s) of images outside this run ignored)`);
  }
  const regionTable = boxes && context.encodeRegions ? await context.encodeRegions(boxes.pixelBoxes) : undefined;
  const fusion = new RelationalFusion(
    { imageDim: images.tokenDim, textDim: texts.tokenDim, regionDim: regionTable?.tokenDim, imageTokens: images.tokenCount, hidden: head.fusion.hidden, layers: head.fusion.layers, heads: head.fusion.heads, words: words?.size ?? 0 },
    context.random.fork('fusion'),
  );
  return { fusion, words, boxes, regionTable };
}

/** argmax over the vocabulary; ties go to the more frequent answer (lower index). */
export function argmaxAnswer(logits: Float32Array, vocabulary: readonly string[]): string {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return vocabulary[best];
}

/**
 * VQA's and GQA's defaults: the relational fusion (object tokens, a question read-out, count and
 * pair terms; bench/vqa-gates.ts is its gate), 2 layers of 4 heads, dropout 0.1, trained 40
 * epochs at batch 128 and lr 3e-3: on perfect object tokens it reached 63.4 at 5,000 SynthScenes
 * questions × 30 epochs and 82.1 at 10,000 × 40 (source validation), still rising.
 */
export const ANSWER_DEFAULTS = { epochs: 40, batchSize: 128, learningRate: 0.003, fusion: { kind: 'relational', layers: 2, heads: 4, dropout: 0.1 } } as const satisfies AdapterDefaults;

/** A split's examples as the task's loader made them: the one place the core takes the adapter's word for their type. */
function examplesOf<Example>(split: LoadedSplit<unknown>): readonly Example[] {
  return split.examples as Example[];
}

/** A task's adapter for `vlbench run`: answer classification on the fusion's pooled rows, as `spec` says. */
export function answerClassificationAdapter<Example, Id extends number | string>(spec: AnswerTask<Example, Id>): TaskAdapter {
  const task = spec.task;
  const rowsOf = (examples: readonly Example[], graphs?: readonly SceneGraph[], boxes?: ImageBoxes, cropped = false) => answerRows(spec, examples, graphs, boxes, cropped);
  const { controls, loadSceneGraphs, graphOf } = spec;
  return {
    task,
    problemKind: 'fusion',
    taskLoss: 'bce',
    submissionExtension: 'json',
    takesRegions: true,
    takesTargetQuestions: true,
    defaults: ANSWER_DEFAULTS,
    ...(controls ? { controls: (train: LoadedSplit<unknown>, split: LoadedSplit<unknown>, predictions: unknown) => controls(train as LoadedSplit<Example>, split as LoadedSplit<Example>, predictions as ReadonlyMap<Id, string>) } : {}),
    unsupportedMethod: (method) => unsupportedForProblem(method, task, 'fusion', false),
    imagesOf: (split) => examplesOf<Example>(split).map((example) => spec.imagePathOf(example)),
    textsOf: (split) => examplesOf<Example>(split).map((example) => spec.questionOf(example)),
    predictionRows: keyedPredictionRows((example) => spec.predictionKeyOf(example as Example)),
    ...(loadSceneGraphs ? { loadSceneGraphs: (train: LoadedSplit<unknown>, trainOptions: LoadOptions, synthRoot: string | undefined) => loadSceneGraphs(train as LoadedSplit<Example>, trainOptions, synthRoot) } : {}),
    async build(context) {
      const { method, splits, preprocessing, random } = context;
      const trainExamples = limitTraining([...examplesOf<Example>(splits.train!)], context.maxTrainExamples);
      const minCount = context.head.answersMinCount ?? defaultMinAnswerCount(trainExamples.length);
      const vocabulary = spec.vocabulary(trainExamples, minCount);
      if (vocabulary.length === 0) throw new InputError(`no answer is seen ${minCount} times in the training split; lower --set answers.min_count`);
      const targets = spec.targets(trainExamples, vocabulary);
      const graphVocabulary = methodNeeds(method).sceneGraphs ? gqaGraphVocabulary(splits.graphs.values()) : undefined;
      const graphs = graphVocabulary
        ? trainExamples.map((example) => {
            const source = graphOf?.(example, splits.graphs);
            return source ? gqaSceneGraph(source, graphVocabulary, preprocessing) : { objects: [] };
          })
        : undefined;
      const relational = context.head.fusion.kind === 'relational' ? await relationalParts(spec, context, trainExamples) : undefined;
      const fusion: Fusion = relational?.fusion ?? createFusion(context);
      const boxes = relational?.boxes;
      const cropped = relational?.regionTable !== undefined;
      const { encoder } = context;
      const composed = new FusionTraining({ method, images: context.images, texts: context.texts, fusion, words: relational?.words, regionTable: relational?.regionTable, dropout: relational ? context.head.fusion.dropout : undefined, sceneGraphSizes: graphVocabulary ? vocabularySizes(graphVocabulary) : undefined, targetImageKeys: [...context.targetImages], targetRows: context.splits.targetQuestions ? rowsOf(examplesOf<Example>(context.splits.targetQuestions)) : undefined, random, encoder });
      const head = new AnswerHead(fusion.hidden, vocabulary, random);
      const variables = new Map([...composed.namedVariables(), ...head.namedVariables(), ...(encoder?.namedVariables() ?? [])]);
      const predict = (split: LoadedSplit<unknown>) => {
        const examples = examplesOf<Example>(split);
        const logits = composed.predictLogits(rowsOf(examples, undefined, boxes, cropped), head, 1);
        return new Map(examples.map((example, i) => [spec.predictionKeyOf(example), argmaxAnswer(logits[i], vocabulary)] as [Id, string]));
      };
      return {
        problem: {
          variables,
          exampleCount: trainExamples.length,
          computeGradients: (batch, stepContext) => {
            head.useTargets(batch.map((i) => targets[i]));
            return composed.step(rowsOf(batch.map((i) => trainExamples[i]), graphs ? batch.map((i) => graphs[i]) : undefined, boxes, cropped), head, variables, stepContext);
          },
          validate: validationScore(context, predict),
          variableOptions: encoder?.variableOptions(),
        },
        predict,
        dispose: () => (composed.dispose(), head.dispose(), fusion.dispose()),
        hyperparameters: {
          answers: { minCount, vocabularySize: vocabulary.length },
          ...(relational ? { questionWords: relational.words?.size ?? 0 } : {}),
          ...(context.regions ? { regions: { file: basename(context.regions.file), fingerprint: context.regions.fingerprint, maxPerImage: MAX_REGIONS, features: relational?.regionTable ? 'crop' : 'pool' } } : {}),
        },
      };
    },
  };
}
