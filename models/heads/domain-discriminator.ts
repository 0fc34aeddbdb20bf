import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random.ts';
import { Linear, ParameterModule, type TrainableModule } from './layers.ts';

/**
 * DANN's domain discriminator: Linear → ReLU → Linear → one logit, positive for "source".
 * It sits behind the gradient reversal layer (objectives/dann.ts), so it is trained to
 * separate the domains while the features are trained to confuse it.
 */
export interface DomainDiscriminatorConfig {
  inputDim: number;
  hiddenDim: number;
}

export class DomainDiscriminator extends ParameterModule implements TrainableModule {
  private readonly hidden: Linear;
  private readonly output: Linear;

  constructor(
    readonly config: DomainDiscriminatorConfig,
    rng: SeededRandom,
    scope = 'domain_discriminator',
  ) {
    super(scope, rng);
    this.hidden = new Linear(this.params, 'hidden', config.inputDim, config.hiddenDim);
    this.output = new Linear(this.params, 'output', config.hiddenDim, 1);
  }

  /** [N, inputDim] → [N] logits. */
  apply(features: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => this.output.apply(tf.relu(this.hidden.apply(features))).reshape([-1]) as tf.Tensor1D);
  }

}
