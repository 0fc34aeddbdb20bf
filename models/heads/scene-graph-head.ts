import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import type { SeededRandom } from '../../core/random.ts';
import { selectionMatrix } from '../ops/regions.ts';
import { Linear, ParameterModule, type TrainableModule } from './layers.ts';

/**
 * Linear read-outs of the scene graph from region features (objectives/scene-graph.ts pools
 * them): object class and attributes from one region, the relation predicate ("none" first)
 * from the concatenation [subject region, object region] of an ordered pair. Kept linear on
 * purpose: the auxiliary loss should shape the encoder's tokens, not a deep head of its own.
 */
export interface SceneGraphVocabularySizes {
  objectClasses: number;
  attributes: number;
  /** Predicates without "none": relation logits have predicates + 1 columns, "none" first. */
  predicates: number;
}


export interface SceneGraphPredictions {
  /** [N, objectClasses] */
  objectLogits: tf.Tensor2D;
  /** [N, attributes] */
  attributeLogits: tf.Tensor2D;
  /** [pairs, predicates + 1], or null when there are no pairs. */
  relationLogits: tf.Tensor2D | null;
}


export interface SceneGraphHeadConfig extends SceneGraphVocabularySizes {
  inputDim: number;
}

export class SceneGraphHead extends ParameterModule implements TrainableModule {
  private readonly objectClassifier: Linear;
  private readonly attributeClassifier: Linear;
  private readonly relationClassifier: Linear;

  constructor(
    readonly config: SceneGraphHeadConfig,
    rng: SeededRandom,
    scope = 'scene_graph_head',
  ) {
    super(scope, rng);
    for (const key of ['inputDim', 'objectClasses'] as const) {
      if (!Number.isInteger(config[key]) || config[key] < 1) throw new Error(`SceneGraphHead: ${key} must be ≥ 1, got ${config[key]}`);
    }
    for (const key of ['attributes', 'predicates'] as const) {
      if (!Number.isInteger(config[key]) || config[key] < 0) throw new Error(`SceneGraphHead: ${key} must be ≥ 0, got ${config[key]}`);
    }
    this.objectClassifier = new Linear(this.params, 'object', config.inputDim, config.objectClasses);
    // A zero-width layer is still created so the head's parameter list does not depend on the data.
    this.attributeClassifier = new Linear(this.params, 'attribute', config.inputDim, Math.max(1, config.attributes));
    this.relationClassifier = new Linear(this.params, 'relation', 2 * config.inputDim, config.predicates + 1);
  }

  /** regions [N, inputDim]; pairs as [subject, object] indices into regions. */
  predict(regions: tf.Tensor2D, pairs: readonly (readonly [number, number])[]): SceneGraphPredictions {
    const count = regions.shape[0];
    const objectLogits = this.objectClassifier.apply(regions) as tf.Tensor2D;
    const attributeLogits = (this.config.attributes === 0 ? tf.zeros([count, 0]) : this.attributeClassifier.apply(regions)) as tf.Tensor2D;
    const relationLogits =
      pairs.length === 0
        ? null
        : tf.tidy(() => {
            const subjects = matMul(selectionMatrix(pairs.map(([s]) => s), count), regions);
            const objects = matMul(selectionMatrix(pairs.map(([, o]) => o), count), regions);
            return this.relationClassifier.apply(tf.concat([subjects, objects], 1)) as tf.Tensor2D;
          });
    return { objectLogits, attributeLogits, relationLogits };
  }

}
