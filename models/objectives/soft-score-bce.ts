import * as tf from '@tensorflow/tfjs';
import { parseSettings, type SettingFields } from './settings.ts';

/**
 * VQA soft-score binary cross-entropy.
 *
 * Every candidate answer a of question b gets a target t[b,a] in {0, 0.3, 0.6, 0.9, 1}: the
 * official VQA accuracy the answer would score (see `vqaSoftScore`). The loss is
 *
 *   L = (1/B) · Σ_b Σ_a BCE(sigmoid(logit[b,a]), t[b,a])
 *
 * i.e. summed over answers and averaged over questions. This is the same number as the
 * common recipe (bottom-up-attention VQA, UNITER, VILLA), which takes the mean over all
 * B·A elements and multiplies it by A: mean·A = sum/B. Averaging over elements instead would
 * divide the gradient by the vocabulary size (3,129 on VQA v2) and change the effective
 * learning rate with the vocabulary; we keep the recipe's scale.
 */
export type SoftScoreBceSettings = Record<string, never>;

export const SOFT_SCORE_BCE_DEFAULTS: SoftScoreBceSettings = {};

export const SOFT_SCORE_BCE_SETTING_FIELDS: SettingFields<SoftScoreBceSettings> = {};

export function parseSoftScoreBceSettings(given: Readonly<Record<string, string>>): SoftScoreBceSettings {
  return parseSettings('bce', SOFT_SCORE_BCE_SETTING_FIELDS, SOFT_SCORE_BCE_DEFAULTS, given);
}

/** Element-wise BCE on logits, in the overflow-free form max(x,0) − x·t + log(1 + e^−|x|). */
export function sigmoidCrossEntropyWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.relu(logits).sub(logits.mul(targets)).add(tf.log1p(tf.exp(tf.neg(tf.abs(logits))))));
}

export function softScoreBceLoss(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  if (logits.rank !== 2 || !tf.util.arraysEqual(logits.shape, targets.shape)) {
    throw new Error(`softScoreBceLoss: logits ${JSON.stringify(logits.shape)} and targets ${JSON.stringify(targets.shape)} must both be [batch, answers]`);
  }
  return tf.tidy(() => sigmoidCrossEntropyWithLogits(logits, targets).sum().div(logits.shape[0]) as tf.Scalar);
}

/**
 * The official VQA accuracy of an answer that `matches` of the `annotators` human answers
 * give: the mean over leave-one-annotator-out subsets of min(1, matches among the others / 3).
 * With 10 annotators: 0, 1, 2, 3, ≥4 matches → 0, 0.3, 0.6, 0.9, 1.
 */
export function vqaSoftScore(matches: number, annotators = 10): number {
  if (!Number.isInteger(matches) || !Number.isInteger(annotators) || matches < 0 || matches > annotators || annotators < 1) {
    throw new Error(`vqaSoftScore: need integers 0 ≤ matches ≤ annotators, got ${matches} of ${annotators}`);
  }
  let total = 0;
  for (let left = 0; left < annotators; left++) {
    const othersMatching = left < matches ? matches - 1 : matches;
    total += Math.min(1, othersMatching / 3);
  }
  return total / annotators;
}

export interface SoftTarget {
  /** Index of the answer in the vocabulary. */
  answer: number;
  /** Its soft score in [0, 1]. */
  score: number;
}

/** Dense [batch, answers] targets from each question's scored candidate answers. */
export function softScoreTargets(perQuestion: readonly (readonly SoftTarget[])[], answers: number): tf.Tensor2D {
  const values = new Float32Array(perQuestion.length * answers);
  perQuestion.forEach((targets, row) => {
    const seen = new Set<number>();
    for (const { answer, score } of targets) {
      if (!Number.isInteger(answer) || answer < 0 || answer >= answers) {
        throw new Error(`softScoreTargets: question ${row} has answer index ${answer}, outside the vocabulary of ${answers}`);
      }
      if (!(score >= 0 && score <= 1)) throw new Error(`softScoreTargets: question ${row} has score ${score}, expected [0, 1]`);
      // Two entries for one answer mean the caller counted annotators apart that normalise alike.
      if (seen.has(answer)) throw new Error(`softScoreTargets: question ${row} lists answer ${answer} twice`);
      seen.add(answer);
      values[row * answers + answer] = score;
    }
  });
  return tf.tensor2d(values, [perQuestion.length, answers]);
}
