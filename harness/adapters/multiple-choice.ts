import * as tf from '@tensorflow/tfjs';
import { ChoiceScorer } from '../../models/heads/choice-scorer.ts';
import { multipleChoiceLoss, type MultipleChoiceSettings } from '../../models/objectives/multiple-choice-ce.ts';
import type { SceneGraph } from '../../models/objectives/scene-graph.ts';
import type { NormalisedBox } from '../../models/ops/regions.ts';
import { VCR_CHOICES, type VcrExample } from '../../tasks/vcr/load.ts';
import type { VcrPredictions } from '../../tasks/vcr/score.ts';
import type { ImagePreprocessing } from '../../models/image-pipeline.ts';
import type { SeededRandom } from '../../core/random.ts';
import { FusionTraining, type FusionRows, type FusionTaskHead } from '../../models/fine-tuning/fusion-training.ts';
import { methodNeeds } from '../../models/objectives/index.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { createFusion, limitTraining, unsupportedForProblem, validationScore, type TaskAdapter } from './adapter.ts';
import { boxInCrop, vcrObjectVocabulary, vcrSceneGraph, vocabularySizes } from './scene-graphs.ts';
import { keyedPredictionRows } from './prediction-rows.ts';

/**
 * VCR as multiple choice, R2C style: Q→A scores "question + answer_i" for the 4 answers;
 * QA→R scores "question + answer + rationale_j" for the 4 rationales. Training uses both
 * sub-tasks (QA→R with the gold answer); prediction also scores the rationales given each
 * answer, which the leaderboard CSV needs.
 */
export interface ChoiceItem {
  example: VcrExample;
  /** Which sub-task: choose the answer, or the rationale given answer `givenAnswer`. */
  mode: 'answer' | 'rationale';
  givenAnswer: number;
}

export function choiceTexts(item: ChoiceItem): string[] {
  const { question, answers, rationales } = item.example;
  if (item.mode === 'answer') return answers.map((answer) => `${question.text} ${answer.text}`);
  return rationales.map((rationale) => `${question.text} ${answers[item.givenAnswer].text} ${rationale.text}`);
}

export function choiceLabel(item: ChoiceItem): number {
  const label = item.mode === 'answer' ? item.example.answerLabel : item.example.rationaleLabel;
  if (label === undefined) throw new Error(`VCR item ${item.example.id} has no label to train on`);
  return label;
}

/** Two training items per labelled example: Q→A, and QA→R given the gold answer. */
export function trainingItems(examples: readonly VcrExample[]): ChoiceItem[] {
  return examples.flatMap((example) => [
    { example, mode: 'answer' as const, givenAnswer: -1 },
    { example, mode: 'rationale' as const, givenAnswer: example.answerLabel ?? 0 },
  ]);
}

/** Every text a split needs: 4 answer texts and 16 rationale texts (4 per answer) per example. */
export function predictionItems(example: VcrExample): ChoiceItem[] {
  return [{ example, mode: 'answer', givenAnswer: -1 }, ...Array.from({ length: VCR_CHOICES }, (_, a) => ({ example, mode: 'rationale' as const, givenAnswer: a }))];
}

/** Each item's 4 rows share its image, its graph and its object boxes (R2C gives the model the detections). */
export function choiceRows(items: readonly ChoiceItem[], prep: ImagePreprocessing, graphs?: readonly SceneGraph[]): FusionRows {
  const boxesOf = (example: VcrExample) =>
    example.boxes.map(([x1, y1, x2, y2]) => boxInCrop([x1, y1, x2, y2], example.imageWidth, example.imageHeight, prep)).filter((b): b is NormalisedBox => b !== null);
  return {
    imageKeys: items.flatMap((item) => Array(VCR_CHOICES).fill(item.example.imagePath)),
    textKeys: items.flatMap(choiceTexts),
    graphs: graphs ? items.flatMap((_, i) => Array(VCR_CHOICES).fill(graphs[i])) : undefined,
    boxes: items.flatMap((item) => Array(VCR_CHOICES).fill(boxesOf(item.example))),
  };
}

export class ChoiceHead implements FusionTaskHead {
  readonly scorer: ChoiceScorer;
  private labels: number[] = [];

  constructor(inputDim: number, random: SeededRandom, private readonly settings: MultipleChoiceSettings) {
    this.scorer = new ChoiceScorer({ inputDim }, random.fork('choice-scorer'));
  }

  useLabels(labels: number[]): void {
    this.labels = labels;
  }

  logits(pooled: tf.Tensor2D): tf.Tensor2D {
    return this.scorer.apply(pooled, VCR_CHOICES);
  }

  loss(logits: tf.Tensor2D): tf.Scalar {
    return multipleChoiceLoss(logits, this.labels, this.settings);
  }

  namedVariables(): Map<string, tf.Variable> {
    return this.scorer.namedVariables();
  }

  dispose(): void {
    this.scorer.dispose();
  }
}

function softmax(logits: Float32Array): number[] {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / sum);
}

/** Turns the 5 logit rows of each example (answers, then rationales given answer 0..3) into leaderboard probabilities. */
export function vcrPredictionsFromLogits(examples: readonly VcrExample[], logitRows: readonly Float32Array[]): VcrPredictions {
  const predictions: VcrPredictions = new Map();
  examples.forEach((example, i) => {
    const rows = logitRows.slice(i * 5, i * 5 + 5);
    predictions.set(example.id, { answer: softmax(rows[0]), rationaleGivenAnswer: rows.slice(1).map(softmax) });
  });
  return predictions;
}

/** The VCR adapter: Q→A and QA→R as 4-way multiple choice on the fusion's pooled rows. */
export const vcrAdapter: TaskAdapter = {
  task: 'vcr',
  problemKind: 'fusion',
  submissionExtension: 'csv',
  unsupportedMethod: (method) => unsupportedForProblem(method, 'vcr', 'fusion', false),
  predictionRows: keyedPredictionRows((example) => (example as VcrExample).id),
  imagesOf: (split) => (split.examples as VcrExample[]).map((e) => e.imagePath),
  textsOf: (split) => (split.examples as VcrExample[]).flatMap((e) => predictionItems(e).flatMap(choiceTexts)),
  async build(context) {
    const { method, preprocessing, random } = context;
    const examples = limitTraining(context.splits.train!.examples as VcrExample[], context.maxTrainExamples).filter((e) => e.answerLabel !== undefined && e.rationaleLabel !== undefined);
    const items = trainingItems(examples);
    const graphVocabulary = methodNeeds(method).sceneGraphs ? vcrObjectVocabulary(examples) : undefined;
    const graphs = graphVocabulary ? items.map((item) => vcrSceneGraph(item.example, graphVocabulary, preprocessing)) : undefined;
    const fusion = createFusion(context);
    const composed = new FusionTraining({ method, images: context.images, texts: context.texts, fusion, sceneGraphSizes: graphVocabulary ? vocabularySizes(graphVocabulary) : undefined, targetImageKeys: [...context.targetImages], random });
    const head = new ChoiceHead(fusion.hidden, random, method.taskLoss.mc);
    const variables = new Map([...composed.namedVariables(), ...head.namedVariables()]);
    const predict = (split: LoadedSplit<unknown>) => {
      const list = split.examples as VcrExample[];
      const logits = composed.predictLogits(choiceRows(list.flatMap(predictionItems), preprocessing), head, 4);
      return vcrPredictionsFromLogits(list, logits);
    };
    return {
      problem: {
        variables,
        exampleCount: items.length,
        computeGradients: (batch, stepContext) => {
          head.useLabels(batch.map((i) => choiceLabel(items[i])));
          return composed.step(choiceRows(batch.map((i) => items[i]), preprocessing, graphs ? batch.map((i) => graphs[i]) : undefined), head, variables, stepContext);
        },
        validate: validationScore(context, predict),
      },
      predict,
      dispose: () => (composed.dispose(), head.dispose(), fusion.dispose()),
      hyperparameters: {},
    };
  },
};
