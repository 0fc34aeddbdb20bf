import * as tf from '@tensorflow/tfjs';
import { boxGeometry, FusionTransformer, type RegionTokens } from '../heads/fusion.ts';
import type { SceneGraphVocabularySizes } from '../heads/scene-graph-head.ts';
import { adversarialGradients, type PerturbationDeltas } from '../objectives/adversarial.ts';
import { methodNeeds, objectiveSettings, type MethodSpec, type ObjectiveBatch, type ObjectiveModule } from '../objectives/index.ts';
import type { SceneGraph } from '../objectives/scene-graph.ts';
import { poolRegions, type NormalisedBox, type TokenGrid } from '../ops/regions.ts';
import type { StepContext, StepResult } from '../train.ts';
import type { FeatureTable } from '../features.ts';
import type { SeededRandom } from '../../core/random.ts';

/**
 * What VQA, GQA and VCR fine-tuning share: a fusion transformer over frozen encoder tokens,
 * a task head, and the auxiliary objectives of the method SPEC composed around them.
 *
 * One training step:
 *  - the task loss (soft-score BCE or multiple-choice CE) over the batch's fusion rows,
 *    through `adv` when the SPEC has it (K steps of perturbation on the token embeddings
 *    entering the fusion, gradients accumulated, VILLA style): the one objective that wraps
 *    the forward pass instead of adding a term;
 *  - every other objective's loss terms (models/objectives/objective.ts), summed in SPEC
 *    order. They see the pooled fusion rows, the fusion's output image tokens on the patch
 *    grid and the rows' scene graphs; objectives that need a target domain also see the same
 *    rows' texts fused with unlabelled target-domain images, so the only shift left to align
 *    is the images'.
 */
export interface FusionRows {
  imageKeys: string[];
  textKeys: string[];
  /** Scene graph of each row's image, for `sg` (boxes in crop coordinates). */
  graphs?: SceneGraph[];
  /** Object boxes of each row's image (crop coordinates): pooled into region tokens the fusion attends to. */
  boxes?: NormalisedBox[][];
}

export interface FusionTaskHead {
  /** Pooled fusion rows → logits [examples, classes]. */
  logits(pooled: tf.Tensor2D): tf.Tensor2D;
  /** Task loss of the logits for the batch's targets. */
  loss(logits: tf.Tensor2D): tf.Scalar;
  namedVariables(): Map<string, tf.Variable>;
}

export interface FusionTrainingSetup {
  method: MethodSpec;
  images: FeatureTable;
  texts: FeatureTable;
  fusion: FusionTransformer;
  sceneGraphSizes?: SceneGraphVocabularySizes;
  targetImageKeys: string[];
  random: SeededRandom;
}

export class FusionTraining {
  readonly grid: TokenGrid;
  /** The modules of the SPEC's term-adding objectives, in SPEC order. */
  private readonly objectives: ObjectiveModule[];
  private readonly needsTarget: boolean;

  constructor(private readonly setup: FusionTrainingSetup) {
    const side = Math.round(Math.sqrt(setup.images.tokenCount - 1));
    this.grid = { rows: side, cols: side, offset: 1 };
    this.objectives = setup.method.objectives.flatMap((objective) =>
      objective.definition.create
        ? [objective.definition.create(objective.settings as never, { kind: 'fusion', featureDim: setup.fusion.hidden, sceneGraphSizes: setup.sceneGraphSizes, random: setup.random })]
        : [],
    );
    this.needsTarget = methodNeeds(setup.method).targetDomain;
    if (this.needsTarget && setup.targetImageKeys.length === 0) throw new Error(`${setup.method.spec} needs target-domain images and none were found`);
  }

  /** The fusion's and the objectives' variables (the task head adds its own). */
  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.setup.fusion.namedVariables(), ...this.objectives.flatMap((module) => [...module.namedVariables()])]);
  }

  /** Tensors of the rows: image tokens [R, Ti, Dv], text tokens [R, Tt, Dt], text mask [R, Tt], region tokens when boxes are given. */
  rowTensors(imageKeys: readonly string[], textKeys: readonly string[], boxes?: readonly NormalisedBox[][]): { image: tf.Tensor3D; text: tf.Tensor3D; mask: tf.Tensor2D; regions?: RegionTokens } {
    const { images, texts } = this.setup;
    const image = tf.tensor3d(images.gatherTokens(imageKeys), [imageKeys.length, images.tokenCount, images.tokenDim]);
    let regions: RegionTokens | undefined;
    if (boxes && boxes.some((b) => b.length > 0)) {
      const pooled = poolRegions(image, this.grid, boxes);
      regions = { tokens: pooled.regions, mask: pooled.mask, geometry: boxGeometry(boxes, pooled.maxRegions) };
    }
    const length = texts.longestText(textKeys);
    return {
      image,
      text: tf.tensor3d(texts.gatherTokens(textKeys, length), [textKeys.length, length, texts.tokenDim]),
      mask: tf.tensor2d(texts.gatherMasks(textKeys, length), [textKeys.length, length]),
      regions,
    };
  }

  private disposeRows(t: { image: tf.Tensor; text: tf.Tensor; mask: tf.Tensor; regions?: RegionTokens }): void {
    tf.dispose([t.image, t.text, t.mask]);
    if (t.regions) tf.dispose([t.regions.tokens, t.regions.mask, t.regions.geometry]);
  }

  /** Logits of rows for prediction (no perturbation, no auxiliary losses), in chunks. */
  predictLogits(rows: FusionRows, head: FusionTaskHead, rowsPerExample: number, chunkRows = 64): Float32Array[] {
    const out: Float32Array[] = [];
    const chunk = Math.max(rowsPerExample, Math.floor(chunkRows / rowsPerExample) * rowsPerExample);
    for (let start = 0; start < rows.imageKeys.length; start += chunk) {
      const logits = tf.tidy(() => {
        const t = this.rowTensors(rows.imageKeys.slice(start, start + chunk), rows.textKeys.slice(start, start + chunk), rows.boxes?.slice(start, start + chunk));
        return head.logits(this.setup.fusion.apply({ imageTokens: t.image, textTokens: t.text, textMask: t.mask, regions: t.regions }).pooled);
      });
      const values = logits.dataSync() as Float32Array;
      const classes = logits.shape[1];
      for (let r = 0; r < logits.shape[0]; r++) out.push(values.slice(r * classes, (r + 1) * classes));
      logits.dispose();
    }
    return out;
  }

  /** Loss and gradients of one batch, with every objective of the SPEC. */
  step(rows: FusionRows, head: FusionTaskHead, variables: Map<string, tf.Variable>, context: StepContext): StepResult {
    const { method, fusion } = this.setup;
    const adv = objectiveSettings(method, 'adv');
    const nameOf = new Map([...variables].map(([name, variable]) => [variable.name, name]));
    const gradients = new Map<string, tf.Tensor>();
    const accumulate = (grads: tf.NamedTensorMap) => {
      for (const [tfName, g] of Object.entries(grads)) {
        const name = nameOf.get(tfName);
        if (!name) {
          g.dispose();
          continue;
        }
        const previous = gradients.get(name);
        gradients.set(name, previous ? tf.tidy(() => previous.add(g)) : g);
        if (previous) {
          previous.dispose();
          g.dispose();
        }
      }
    };
    const parts: Record<string, number> = {};
    const t = this.rowTensors(rows.imageKeys, rows.textKeys, rows.boxes);
    const targetKeys = this.needsTarget ? rows.imageKeys.map(() => context.random.pick(this.setup.targetImageKeys)) : [];
    const target = targetKeys.length ? this.rowTensors(targetKeys, context.random.shuffled(rows.textKeys)) : undefined;
    let loss = 0;
    try {
      const variableList = [...variables.values()];
      if (adv) {
        const result = adversarialGradients(
          (deltas: PerturbationDeltas) => {
            const fused = fusion.apply({ imageTokens: t.image.add(deltas.image) as tf.Tensor3D, textTokens: t.text.add(deltas.text) as tf.Tensor3D, textMask: t.mask, regions: t.regions });
            const logits = head.logits(fused.pooled);
            return { loss: head.loss(logits), logits };
          },
          { textShape: t.text.shape, imageShape: t.image.shape, variables: variableList, settings: adv },
        );
        accumulate(result.grads);
        loss += result.loss;
        parts.task = result.taskLosses[0];
        parts.adv_kl = result.klLosses.at(-1) ?? 0;
      }
      if (!adv || this.objectives.length > 0) {
        const recorded: Record<string, tf.Scalar> = {};
        const { value, grads } = tf.variableGrads(() => {
          const fused = fusion.apply({ imageTokens: t.image, textTokens: t.text, textMask: t.mask, regions: t.regions });
          let total: tf.Scalar = tf.scalar(0);
          if (!adv) {
            const task = head.loss(head.logits(fused.pooled));
            recorded.task = tf.keep(task.clone());
            total = total.add(task);
          }
          const batch: ObjectiveBatch = {
            features: fused.pooled,
            imageTokens: rows.graphs ? (fused.sequence.slice([0, 0, 0], [-1, this.setup.images.tokenCount, -1]) as tf.Tensor3D) : undefined,
            grid: this.grid,
            graphs: rows.graphs,
            targetFeatures: target ? fusion.apply({ imageTokens: target.image, textTokens: target.text, textMask: target.mask }).pooled : undefined,
            step: context.step,
            totalSteps: context.totalSteps,
          };
          for (const module of this.objectives) {
            for (const term of module.lossTerms(batch)) {
              recorded[term.name] = tf.keep((term.recorded ?? term.contribution).clone());
              total = total.add(term.contribution);
            }
          }
          return total as tf.Scalar;
        }, variableList);
        loss += value.dataSync()[0];
        value.dispose();
        accumulate(grads);
        for (const [name, tensor] of Object.entries(recorded)) {
          parts[name] = tensor.dataSync()[0];
          tensor.dispose();
        }
      }
    } finally {
      this.disposeRows(t);
      if (target) this.disposeRows(target);
    }
    return { loss, gradients, parts };
  }

  dispose(): void {
    for (const module of this.objectives) module.dispose();
  }
}
