import * as tf from '@tensorflow/tfjs';
import { numberSetting, parseSettings, type SettingFields } from './settings.ts';

/**
 * Cross-entropy over the K choice scores of a multiple-choice question (VCR: 4 answers for
 * Q→A, 4 rationales for QA→R), averaged over the batch:
 *
 *   L = −(1/B) Σ_b Σ_k q[b,k] · log softmax(scores[b])_k,   q = (1−s)·onehot(label) + s/K
 *
 * with label smoothing s (0 by default, which is plain CE as in R2C and UNITER).
 */
export interface MultipleChoiceSettings {
  labelSmoothing: number;
}

export const MULTIPLE_CHOICE_DEFAULTS: MultipleChoiceSettings = { labelSmoothing: 0 };

export const MULTIPLE_CHOICE_SETTING_FIELDS: SettingFields<MultipleChoiceSettings> = {
  labelSmoothing: {
    schema: numberSetting((n) => n.min(0).lt(1)),
    expects: 'a number in [0, 1)',
    doc: 'probability mass spread uniformly over all choices (0 = plain cross-entropy)',
  },
};

export function parseMultipleChoiceSettings(given: Readonly<Record<string, string>>): MultipleChoiceSettings {
  return parseSettings('mc', MULTIPLE_CHOICE_SETTING_FIELDS, MULTIPLE_CHOICE_DEFAULTS, given);
}

export function multipleChoiceLoss(
  scores: tf.Tensor2D,
  labels: readonly number[],
  settings: MultipleChoiceSettings = MULTIPLE_CHOICE_DEFAULTS,
): tf.Scalar {
  const [batch, choices] = scores.shape;
  if (scores.rank !== 2 || labels.length !== batch) {
    throw new Error(`multipleChoiceLoss: scores ${JSON.stringify(scores.shape)} need [batch, choices] with one label per row, got ${labels.length} labels`);
  }
  labels.forEach((label, row) => {
    if (!Number.isInteger(label) || label < 0 || label >= choices) {
      throw new Error(`multipleChoiceLoss: row ${row} has label ${label}, expected an integer in [0, ${choices})`);
    }
  });
  return tf.tidy(() => {
    const smoothing = settings.labelSmoothing;
    const targets = tf.oneHot(tf.tensor1d(labels as number[], 'int32'), choices).toFloat().mul(1 - smoothing).add(smoothing / choices);
    return tf.logSoftmax(scores).mul(targets).sum().neg().div(batch) as tf.Scalar;
  });
}
