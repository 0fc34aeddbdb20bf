import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from '../../core/random.ts';
import { poolRegions, type NormalisedBox, type TokenGrid } from '../ops/regions.ts';
import { boxGeometry, type FusionTransformer } from './fusion.ts';
import { LayerNorm, Linear, ParameterModule, quickGelu, type TrainableModule } from './layers.ts';

/**
 * VCR choice scorer. Each (question, choice) text is fused with the image on its own; the
 * pooled fusion output goes through Linear → GELU → LayerNorm → Linear(1), giving one logit
 * per choice, and a softmax over the K choices is trained with multiple-choice CE. Q→A scores
 * question+answer texts; QA→R scores question+gold answer+rationale texts (and, for the
 * leaderboard CSV, question+each answer+rationale): the texts are the caller's business.
 *
 * The object boxes of the image become region tokens (`scoreChoices` with `regions`): the
 * image's tokens pooled inside each box (the scene-graph objective's pooling) plus the box
 * geometry, appended to the image tokens, so a choice mentioning "[1]" can attend to the
 * region of object 1.
 */
export interface ChoiceScorerConfig {
  inputDim: number;
  /** Hidden width; inputDim when absent. */
  hiddenDim?: number;
}

export class ChoiceScorer extends ParameterModule implements TrainableModule {
  private readonly hidden: Linear;
  private readonly norm: LayerNorm;
  private readonly output: Linear;

  constructor(
    readonly config: ChoiceScorerConfig,
    rng: SeededRandom,
    scope = 'choice_scorer',
  ) {
    super(scope, rng);
    const hiddenDim = config.hiddenDim ?? config.inputDim;
    this.hidden = new Linear(this.params, 'hidden', config.inputDim, hiddenDim);
    this.norm = new LayerNorm(this.params, 'norm', hiddenDim);
    this.output = new Linear(this.params, 'output', hiddenDim, 1);
  }

  /** [B·K, inputDim] pooled fusions, choice-major within each example → [B, K] logits. */
  apply(pooled: tf.Tensor2D, choices: number): tf.Tensor2D {
    if (pooled.shape[0] % choices !== 0) throw new Error(`ChoiceScorer: ${pooled.shape[0]} rows are not a whole number of ${choices}-choice examples`);
    return tf.tidy(() => this.output.apply(this.norm.apply(quickGelu(this.hidden.apply(pooled)))).reshape([-1, choices]) as tf.Tensor2D);
  }

}

export interface ChoiceInputs {
  /** [B, Ti, imageDim], the encoder's image tokens. */
  imageTokens: tf.Tensor3D;
  /** [B, K, Tt, textDim], one (question + choice) text per choice. */
  choiceTokens: tf.Tensor4D;
  /** [B, K, Tt], 1 for real tokens. */
  choiceMask: tf.Tensor3D;
  /** Object boxes per example, pooled from `imageTokens` on `grid` into region tokens. */
  regions?: { grid: TokenGrid; boxes: readonly (readonly NormalisedBox[])[] };
}

/** Fuses every choice with its image (and regions) and scores it: [B, K] logits. */
export function scoreChoices(fusion: FusionTransformer, scorer: ChoiceScorer, inputs: ChoiceInputs): tf.Tensor2D {
  const [batch, choices, textLength, textDim] = inputs.choiceTokens.shape;
  if (inputs.imageTokens.shape[0] !== batch) throw new Error(`scoreChoices: ${inputs.imageTokens.shape[0]} images for ${batch} examples`);
  return tf.tidy(() => {
    // Every choice sees the same image: repeat it K times, choice-major inside each example.
    const repeat = (t: tf.Tensor) => tf.tile(t.expandDims(1), [1, choices, ...t.shape.slice(1).map(() => 1)]).reshape([batch * choices, ...t.shape.slice(1)]);
    let regions;
    if (inputs.regions) {
      const pooled = poolRegions(inputs.imageTokens, inputs.regions.grid, inputs.regions.boxes);
      regions = {
        tokens: repeat(pooled.regions) as tf.Tensor3D,
        mask: repeat(pooled.mask) as tf.Tensor2D,
        geometry: repeat(boxGeometry(inputs.regions.boxes, pooled.maxRegions)) as tf.Tensor3D,
      };
    }
    const fused = fusion.apply({
      imageTokens: repeat(inputs.imageTokens) as tf.Tensor3D,
      textTokens: inputs.choiceTokens.reshape([batch * choices, textLength, textDim]) as tf.Tensor3D,
      textMask: inputs.choiceMask.reshape([batch * choices, textLength]) as tf.Tensor2D,
      regions,
    });
    return scorer.apply(fused.pooled, choices);
  });
}
