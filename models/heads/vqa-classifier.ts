import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random.ts';
import { LayerNorm, Linear, ParameterModule, quickGelu, type TrainableModule } from './layers.ts';

/**
 * VQA answer classifier over the fusion's pooled output: Linear → GELU → LayerNorm → Linear,
 * the shape of UNITER's and LXMERT's VQA heads. One logit per answer of the vocabulary,
 * trained with soft-score BCE (objectives/soft-score-bce.ts); the prediction is the argmax.
 */
export interface VqaClassifierConfig {
  inputDim: number;
  answers: number;
  /** Hidden width; 2 · inputDim when absent. */
  hiddenDim?: number;
}

export class VqaClassifier extends ParameterModule implements TrainableModule {
  private readonly hidden: Linear;
  private readonly norm: LayerNorm;
  private readonly output: Linear;

  constructor(
    readonly config: VqaClassifierConfig,
    rng: SeededRandom,
    scope = 'vqa_classifier',
  ) {
    super(scope, rng);
    if (!Number.isInteger(config.answers) || config.answers < 1) throw new Error(`VqaClassifier: answers must be ≥ 1, got ${config.answers}`);
    const hiddenDim = config.hiddenDim ?? 2 * config.inputDim;
    this.hidden = new Linear(this.params, 'hidden', config.inputDim, hiddenDim);
    this.norm = new LayerNorm(this.params, 'norm', hiddenDim);
    this.output = new Linear(this.params, 'output', hiddenDim, config.answers);
  }

  /** [B, inputDim] → [B, answers] logits. */
  apply(pooled: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.output.apply(this.norm.apply(quickGelu(this.hidden.apply(pooled)))) as tf.Tensor2D);
  }

}
