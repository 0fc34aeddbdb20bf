import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import { INFO_NCE_DEFAULTS, l2Normalize } from './info-nce.ts';

/**
 * SigLIP's pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image
 * Pre-Training"): every image-text pair of the batch is its own binary problem, positive on
 * the diagonal and negative elsewhere, with a learnable log-scale t' and bias b:
 *
 *   L = −(1/|B|) Σ_i Σ_j log σ(z_ij · (t · x̂_i·ŷ_j + b)),   t = exp(t'),
 *   z_ij = 1 if i = j, −1 otherwise,
 *
 * x̂, ŷ the L2-normalised image and text embeddings. The paper initialises t' = log 10 and
 * b = −10, so training starts from "almost every pair is a negative" (the prior of a batch
 * with |B| − 1 negatives per positive) instead of paying a large loss for it. Its gradient in
 * the logits is (σ(logit_ij) − [i = j]) / |B|, so ∂L/∂b = Σ_ij (σ(logit_ij) − [i = j]) / |B|.
 * Unlike InfoNCE it needs no softmax over the batch. The scale is capped like InfoNCE's
 * (min(exp(t'), maxLogitScale)); pretraining writes the clamp back after each step.
 */
export const SIGMOID_DEFAULTS = { logitScaleInit: Math.log(10), logitBiasInit: -10, maxLogitScale: INFO_NCE_DEFAULTS.maxLogitScale };

/** The pair logits t · x̂ ŷᵀ + b [images, texts]. */
export function sigmoidPairLogits(imageEmbeds: tf.Tensor2D, textEmbeds: tf.Tensor2D, logScale: tf.Tensor, bias: tf.Tensor, maxLogitScale = SIGMOID_DEFAULTS.maxLogitScale): tf.Tensor2D {
  return tf.tidy(() => {
    const scale = tf.minimum(tf.exp(logScale.reshape([])), maxLogitScale);
    return matMul(l2Normalize(imageEmbeds), l2Normalize(textEmbeds), false, true).mul(scale).add(bias.reshape([])) as tf.Tensor2D;
  });
}

/** The sigmoid loss of a batch of matching pairs (image i goes with text i). */
export function sigmoidLoss(imageEmbeds: tf.Tensor2D, textEmbeds: tf.Tensor2D, logScale: tf.Tensor, bias: tf.Tensor, options: { maxLogitScale?: number } = {}): tf.Scalar {
  const batch = imageEmbeds.shape[0];
  if (imageEmbeds.rank !== 2 || textEmbeds.rank !== 2 || textEmbeds.shape[0] !== batch || textEmbeds.shape[1] !== imageEmbeds.shape[1]) {
    throw new Error(`sigmoid loss needs matching [B, D] embeddings, got [${imageEmbeds.shape.join(', ')}] and [${textEmbeds.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const logits = sigmoidPairLogits(imageEmbeds, textEmbeds, logScale, bias, options.maxLogitScale);
    const signs = tf.eye(batch).mul(2).sub(1);
    // log σ(u) = min(u, 0) − log(1 + exp(−|u|)): stable for any u, and made of ops every backend
    // differentiates (tf.logSigmoid's custom gradient fails under tf.tidy on wasm).
    const u = logits.mul(signs);
    const logSigmoid = tf.minimum(u, 0).sub(tf.log(tf.exp(tf.abs(u).neg()).add(1)));
    return logSigmoid.sum().neg().div(batch) as tf.Scalar;
  });
}
