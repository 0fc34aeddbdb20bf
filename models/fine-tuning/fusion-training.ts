import * as tf from '@tensorflow/tfjs';
import { DomainDiscriminator } from '../heads/domain-discriminator.ts';
import { boxGeometry, FusionTransformer, type RegionTokens } from '../heads/fusion.ts';
import { SceneGraphHead } from '../heads/scene-graph-head.ts';
import { adversarialGradients, type PerturbationDeltas } from '../objectives/adversarial.ts';
import { dannObjective } from '../objectives/dann.ts';
import { objectiveSettings, type MethodSpec } from '../objectives/index.ts';
import { mmdLoss } from '../objectives/mmd.ts';
import { poolRegions, sceneGraphObjective, type NormalisedBox, type SceneGraph, type SceneGraphVocabularySizes, type TokenGrid } from '../objectives/scene-graph.ts';
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
 *    entering the fusion, gradients accumulated, VILLA style);
 *  - `sg`: regions pooled from the fusion's output image tokens inside each object's box
 *    predict object class, attributes and relations (so the loss shapes what the task uses);
 *  - `mmd` / `dann`: the same rows' texts fused with unlabelled target-domain images give
 *    target features; the pooled fusion outputs of both domains are aligned. The texts are the
 *    same on both sides, so the only shift left to align is the images'.
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
  readonly sceneGraphHead?: SceneGraphHead;
  readonly discriminator?: DomainDiscriminator;
  readonly grid: TokenGrid;

  constructor(private readonly setup: FusionTrainingSetup) {
    const side = Math.round(Math.sqrt(setup.images.tokenCount - 1));
    this.grid = { rows: side, cols: side, offset: 1 };
    const sg = objectiveSettings(setup.method, 'sg');
    if (sg && setup.sceneGraphSizes) {
      this.sceneGraphHead = new SceneGraphHead({ inputDim: setup.fusion.hidden, ...setup.sceneGraphSizes }, setup.random.fork('scene-graph-head'));
    }
    const dann = objectiveSettings(setup.method, 'dann');
    if (dann) this.discriminator = new DomainDiscriminator({ inputDim: setup.fusion.hidden, hiddenDim: dann.discriminatorHidden }, setup.random.fork('domain-discriminator'));
    if ((dann || objectiveSettings(setup.method, 'mmd')) && setup.targetImageKeys.length === 0) {
      throw new Error('mmd/dann need target-domain images and none were found');
    }
  }

  /** The fusion's and auxiliary heads' variables (the task head adds its own). */
  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.setup.fusion.namedVariables(), ...(this.sceneGraphHead?.namedVariables() ?? []), ...(this.discriminator?.namedVariables() ?? [])]);
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
    const sg = objectiveSettings(method, 'sg');
    const mmd = objectiveSettings(method, 'mmd');
    const dann = objectiveSettings(method, 'dann');
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
    const targetKeys = mmd || dann ? rows.imageKeys.map(() => context.random.pick(this.setup.targetImageKeys)) : [];
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
      const auxiliary = sg || mmd || dann;
      if (!adv || auxiliary) {
        const recorded: Record<string, tf.Scalar> = {};
        const { value, grads } = tf.variableGrads(() => {
          const fused = fusion.apply({ imageTokens: t.image, textTokens: t.text, textMask: t.mask, regions: t.regions });
          let total: tf.Scalar = tf.scalar(0);
          if (!adv) {
            const task = head.loss(head.logits(fused.pooled));
            recorded.task = tf.keep(task.clone());
            total = total.add(task);
          }
          if (sg && this.sceneGraphHead && rows.graphs) {
            const imagePart = fused.sequence.slice([0, 0, 0], [-1, this.setup.images.tokenCount, -1]) as tf.Tensor3D;
            const losses = sceneGraphObjective(imagePart, this.grid, rows.graphs, this.sceneGraphHead, this.setup.sceneGraphSizes!, sg);
            recorded.sg = tf.keep(losses.total.clone());
            total = total.add(losses.total);
          }
          if (target && (mmd || dann)) {
            const targetPooled = fusion.apply({ imageTokens: target.image, textTokens: target.text, textMask: target.mask }).pooled;
            if (mmd) {
              const term = mmdLoss(fused.pooled, targetPooled, mmd);
              recorded.mmd = tf.keep(term.clone());
              total = total.add(term);
            }
            if (dann && this.discriminator) {
              const out = dannObjective(fused.pooled, targetPooled, this.discriminator, context.step, context.totalSteps, dann);
              recorded.dann = tf.keep(out.domainLoss.clone());
              total = total.add(out.loss);
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
    this.sceneGraphHead?.dispose();
    this.discriminator?.dispose();
  }
}
