import { InputError, listSome } from '../../core/errors.ts';
import type { LoadedSplit, ScoreReport } from '../../core/types.ts';
import { VCR_CHOICES, type VcrExample } from './load.ts';

/** Bumped when the definition of q2a / qa2r / q2ar or the per-example score changes. */
export const VCR_METRIC_VERSION = '1';

/**
 * A model's scores for one example, as in the leaderboard CSV: four answer probabilities, and for
 * each answer a (assumed right) four rationale probabilities. Only the argmax matters for scoring,
 * so any finite scores (logits) score the same as their softmax.
 */
export interface VcrProbabilities {
  answer: number[];
  /** rationaleGivenAnswer[a][r]: rationale r given answer a (the CSV's rationale_conditioned_on_a<a>_<r>). */
  rationaleGivenAnswer: number[][];
}

/** Predictions by annot_id. */
export type VcrPredictions = Map<string, VcrProbabilities>;

export interface VcrAccuracy {
  /** ×100 */
  q2a: number;
  qa2r: number;
  q2ar: number;
}

/**
 * Index of the largest value; on a tie the first such index wins, as numpy's argmax does, so a
 * model that outputs four equal probabilities is scored as choosing choice 0.
 */
export function argmaxFirst(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Q→A: argmax of the answer scores is answer_label. QA→R: argmax of the rationale scores given the
 * GOLD answer is rationale_label (whatever answer the model picked). Q→AR: both. ×100.
 * Per example: 100 when Q→AR is right, else 0 (the primary metric is q2ar).
 */
export function scoreVcr(split: LoadedSplit<VcrExample>, predictions: VcrPredictions, source = 'predictions'): ScoreReport {
  if (split.examples.length === 0) throw new InputError(`VCR split "${split.split}" has no examples to score`);
  const unlabelled = split.examples.filter((example) => example.answerLabel === undefined || example.rationaleLabel === undefined);
  if (unlabelled.length) {
    throw new InputError(`VCR split "${split.split}" has no labels for ${listSome(unlabelled.map((e) => e.id))} examples (the test split is scored by the leaderboard: write the CSV with writeSubmission)`);
  }
  checkVcrPredictions(split, predictions, source);
  let answersRight = 0;
  let rationalesRight = 0;
  let bothRight = 0;
  const perExample = split.examples.map((example) => {
    const prediction = predictions.get(example.id)!;
    const answerLabel = example.answerLabel!;
    const answerRight = argmaxFirst(prediction.answer) === answerLabel;
    const rationaleRight = argmaxFirst(prediction.rationaleGivenAnswer[answerLabel]) === example.rationaleLabel;
    if (answerRight) answersRight++;
    if (rationaleRight) rationalesRight++;
    if (answerRight && rationaleRight) bothRight++;
    // The image, so the leaderboard resamples images (all their questions together), not questions.
    return { id: example.id, score: answerRight && rationaleRight ? 100 : 0, image: example.imageId };
  });
  const count = split.examples.length;
  const official: VcrAccuracy = {
    q2a: (100 * answersRight) / count,
    qa2r: (100 * rationalesRight) / count,
    q2ar: (100 * bothRight) / count,
  };
  return {
    metric: 'vcr-accuracy',
    metricVersion: VCR_METRIC_VERSION,
    primary: 'q2ar',
    metrics: { ...official },
    official,
    perExample,
  };
}

/**
 * Refuses predictions that do not cover the split exactly (missing or extra annot_ids) or hold
 * anything but 4 + 4×4 finite numbers, so nothing is ever scored on a subset.
 */
export function checkVcrPredictions(split: LoadedSplit<VcrExample>, predictions: VcrPredictions, source: string): void {
  const splitIds = new Set(split.examples.map((example) => example.id));
  const missing = split.examples.filter((example) => !predictions.has(example.id)).map((example) => example.id);
  const extra = [...predictions.keys()].filter((id) => !splitIds.has(id));
  if (missing.length || extra.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing annot_ids of split "${split.split}": ${listSome(missing)}`);
    if (extra.length) parts.push(`annot_ids not in split "${split.split}": ${listSome(extra)}`);
    throw new InputError(`${parts.join('; ')} (expected exactly the split's ${split.examples.length} ids)`, { file: source });
  }
  for (const [id, prediction] of predictions) {
    const rows = [prediction.answer, ...(prediction.rationaleGivenAnswer ?? [])];
    const wellFormed =
      Array.isArray(prediction.answer) && Array.isArray(prediction.rationaleGivenAnswer) &&
      prediction.rationaleGivenAnswer.length === VCR_CHOICES && rows.every((row) => Array.isArray(row) && row.length === VCR_CHOICES);
    if (!wellFormed) throw new InputError(`expected 4 answer scores and 4×4 rationale scores`, { file: source, record: id });
    rows.forEach((row, group) => {
      row.forEach((value, choice) => {
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          const column = group === 0 ? `answer_${choice}` : `rationale_conditioned_on_a${group - 1}_${choice}`;
          throw new InputError(`expected a finite number, got ${String(value)}`, { file: source, record: id, field: column });
        }
      });
    });
  }
}
