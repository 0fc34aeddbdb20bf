import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import { booleanSetting, numberSetting, parseSettings, type SettingFields } from './settings.ts';

/**
 * Symmetric InfoNCE, as CLIP trains: image and text embeddings are L2-normalised, the
 * similarity matrix is scaled by exp(s) with a learnable log-scale s (initialised at
 * log(1/0.07) ≈ 2.6593, HF CLIP's `logit_scale_init_value`), and the loss is the mean of
 * the cross-entropy image→text (rows) and text→image (columns) with the matching pair as
 * the target:
 *
 *   S = min(exp(s), maxLogitScale) · norm(I) · norm(T)ᵀ
 *   L = ½ · (CE_rows(S) + CE_rows(Sᵀ)),  CE averaged over the batch.
 *
 * The scale is capped at 100 as in CLIP. The cap sits in the forward pass (min), so a
 * clamped scale receives no gradient; `clampLogitScale` additionally writes the clamp back
 * into the variable after an optimiser step, as open_clip does, so the variable cannot
 * drift far above the cap.
 *
 * When a batch holds several captions of one image (Karpathy splits: ~5 per image), pass
 * `sameItem`: rows with equal ids are all positives of each other and the target is uniform
 * over them, instead of treating a second caption of the same image as a negative.
 */
export interface InfoNceSettings {
  initialTemperature: number;
  maxLogitScale: number;
  learnableScale: boolean;
}

export const INFO_NCE_DEFAULTS: InfoNceSettings = { initialTemperature: 0.07, maxLogitScale: 100, learnableScale: true };

export const INFO_NCE_SETTING_FIELDS: SettingFields<InfoNceSettings> = {
  initialTemperature: {
    schema: numberSetting((n) => n.positive()),
    expects: 'a number > 0',
    doc: 'temperature τ the logit scale starts from (scale = 1/τ), used when the encoder has no trained logit scale',
  },
  maxLogitScale: { schema: numberSetting((n) => n.positive()), expects: 'a number > 0', doc: 'cap on exp(logit scale)' },
  learnableScale: { schema: booleanSetting(), expects: 'true or false', doc: 'whether the logit scale is trained' },
};

export function parseInfoNceSettings(given: Readonly<Record<string, string>>): InfoNceSettings {
  return parseSettings('infonce', INFO_NCE_SETTING_FIELDS, INFO_NCE_DEFAULTS, given);
}

/** A log-scale variable at log(1/τ), for encoders that do not bring their own. */
export function createLogitScale(settings: InfoNceSettings = INFO_NCE_DEFAULTS, name?: string): tf.Variable<tf.Rank.R0> {
  return tf.variable(tf.scalar(Math.log(1 / settings.initialTemperature)), settings.learnableScale, name);
}

/** Writes min(s, log(maxLogitScale)) back into the variable (and keeps s ≥ 0, i.e. scale ≥ 1). */
export function clampLogitScale(logScale: tf.Variable, settings: InfoNceSettings = INFO_NCE_DEFAULTS): void {
  tf.tidy(() => logScale.assign(tf.clipByValue(logScale, 0, Math.log(settings.maxLogitScale))));
}

export function l2Normalize(x: tf.Tensor, axis = -1): tf.Tensor {
  return tf.tidy(() => x.mul(tf.rsqrt(tf.maximum(x.square().sum(axis, true), 1e-12))));
}

/** Scaled cosine similarities [images, texts]: what both the loss and retrieval scoring rank by. */
export function similarityLogits(
  imageEmbeds: tf.Tensor2D,
  textEmbeds: tf.Tensor2D,
  logScale: tf.Scalar,
  maxLogitScale = INFO_NCE_DEFAULTS.maxLogitScale,
): tf.Tensor2D {
  return tf.tidy(() => {
    const scale = tf.minimum(tf.exp(logScale), maxLogitScale);
    return matMul(l2Normalize(imageEmbeds), l2Normalize(textEmbeds), false, true).mul(scale) as tf.Tensor2D;
  });
}

export function infoNceLoss(
  imageEmbeds: tf.Tensor2D,
  textEmbeds: tf.Tensor2D,
  logScale: tf.Scalar,
  options: { maxLogitScale?: number; sameItem?: readonly number[] } = {},
): tf.Scalar {
  const batch = imageEmbeds.shape[0];
  if (imageEmbeds.rank !== 2 || textEmbeds.rank !== 2 || textEmbeds.shape[0] !== batch || textEmbeds.shape[1] !== imageEmbeds.shape[1]) {
    throw new Error(`infoNceLoss: need paired [N, D] embeddings, got images ${JSON.stringify(imageEmbeds.shape)} and texts ${JSON.stringify(textEmbeds.shape)}`);
  }
  if (options.sameItem && options.sameItem.length !== batch) {
    throw new Error(`infoNceLoss: sameItem has ${options.sameItem.length} ids for a batch of ${batch}`);
  }
  const targets = positiveTargets(batch, options.sameItem);
  return tf.tidy(() => {
    const logits = similarityLogits(imageEmbeds, textEmbeds, logScale, options.maxLogitScale);
    const target = tf.tensor2d(targets, [batch, batch]);
    // The positive set is symmetric, so the same target matrix serves both directions.
    const imageToText = tf.logSoftmax(logits).mul(target).sum().neg().div(batch);
    const textToImage = tf.logSoftmax(logits.transpose()).mul(target).sum().neg().div(batch);
    return imageToText.add(textToImage).div(2) as tf.Scalar;
  });
}

function positiveTargets(batch: number, sameItem: readonly number[] | undefined): Float32Array {
  const targets = new Float32Array(batch * batch);
  for (let row = 0; row < batch; row++) {
    const positives: number[] = [];
    for (let col = 0; col < batch; col++) if (sameItem ? sameItem[col] === sameItem[row] : col === row) positives.push(col);
    for (const col of positives) targets[row * batch + col] = 1 / positives.length;
  }
  return targets;
}
