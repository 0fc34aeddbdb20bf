import * as tf from '@tensorflow/tfjs';
import { boxGeometry, type ChoiceGroups, type DropoutPass, type Fusion, type FusionOutput, type RegionTokens } from '../heads/fusion.ts';
import type { QuestionWordTable } from '../heads/question-words.ts';
import type { SceneGraphVocabularySizes } from '../heads/scene-graph-head.ts';
import { methodNeeds, type MethodSpec, type ObjectiveBatch, type ObjectiveModule, type PerturbableForwardPass, type PerturbationSite, type PerturbedModality, type WrappedPassResult } from '../objectives/index.ts';
import type { SceneGraph } from '../objectives/scene-graph.ts';
import { poolRegions, type NormalisedBox, type NormalisedPolygon, type TokenGrid } from '../ops/regions.ts';
import type { StepContext, StepResult } from '../train.ts';
import type { FeatureTable } from '../features.ts';
import type { SeededRandom } from '../../core/random.ts';
import type { EncoderPerturbation, TrainableTokens } from './encoder-tuning.ts';

/**
 * What VQA, GQA and VCR fine-tuning share: a fusion transformer over frozen encoder tokens,
 * a task head, and the auxiliary objectives of the method SPEC composed around them.
 *
 * One training step:
 *  - the task loss (soft-score BCE or multiple-choice CE) over the batch's fusion rows, or,
 *    when an objective of the SPEC wraps the forward pass (objective.ts, `wrapForwardPass`),
 *    whatever that objective computes through the pass this class opens to perturbations
 *    (at a training tower's start or at the fusion's input);
 *  - every other objective's loss terms (models/objectives/objective.ts), summed in SPEC
 *    order. They see the pooled fusion rows, the fusion's output image tokens on the patch
 *    grid and the rows' scene graphs. Objectives that need a target domain (mmd, dann) also
 *    see target rows fused the same way, on the features the answer is read from (the pooled
 *    fusion output, a training encoder's included): target-domain questions on their own
 *    images (`targetRows`, unlabelled: no answer exists in them), drawn at random per batch.
 *    Source questions on random target images would also set matched question–image pairs
 *    against mismatched ones, a difference the alignment would then remove (issue 29). Where
 *    the task has no target questions (VCR) the rows' own texts are put on random target
 *    images. Target images come without detections, so when the rows carry region tokens
 *    both sides of the alignment are fused without them (no regions, no tag grounding): the
 *    alternative, pooling the target image over the source row's boxes, would compare source
 *    objects with whatever the target image has at those places.
 */
export interface FusionRows {
  imageKeys: string[];
  textKeys: string[];
  /** Scene graph of each row's image, for `sg` (boxes in crop coordinates). */
  graphs?: SceneGraph[];
  /** Object boxes of each row's image (crop coordinates): pooled into region tokens the fusion attends to. */
  boxes?: NormalisedBox[][];
  /** Per row, the keys of its boxes' rows in the setup's `regionTable` (same order as `boxes`): region tokens read from there instead of pooled from the grid. */
  regionKeys?: string[][];
  /** Per row and box, the box's segmentation polygons (crop coordinates) where it has one: its region pools inside them. */
  polygons?: (NormalisedPolygon[] | undefined)[][];
  /** R2C grounding, per row: the text tokens that name a detection, and which of the row's `boxes` it is. */
  tags?: TagTokens[][];
  /** With `tags`, per row: the tokens whose sentence tags a detection just before them (`previous`) or just after (`next`), and which box (see FusionConfig.tagContext). */
  tagContext?: { previous: TagTokens[][]; next: TagTokens[][] };
  /** Per row, the text tokens the pooled vector max-pools over (a multiple-choice row's choice); all valid tokens when absent. */
  focus?: TokenSpan[];
  /** Rows in groups that share their image, boxes and first text tokens (a multiple-choice item's choices): a fusion with a shared prefix runs those once per group. */
  choiceGroups?: ChoiceGroups;
}

/** Token positions [start, end) in a row's encoded text (position 0 is the start token). */
export interface TokenSpan {
  start: number;
  end: number;
}

/** The tokens of one tag word (all of them when the tokenizer splits it) and the index of its box in the row's `boxes`. */
export interface TagTokens extends TokenSpan {
  box: number;
}

interface RowTensors {
  image: tf.Tensor3D;
  /** Frozen rows whose fusion sees a pooled grid: the full grid's tokens, which region tokens pool from. */
  regionImage?: tf.Tensor3D;
  text: tf.Tensor3D;
  mask: tf.Tensor2D;
  boxes?: readonly NormalisedBox[][];
  polygons?: FusionRows['polygons'];
  geometry?: tf.Tensor3D;
  tagRegions?: tf.Tensor3D;
  tagContext?: { previous: tf.Tensor3D; next: tf.Tensor3D };
  focus?: tf.Tensor2D;
  /** With a word table: each text token's row in it [R, Tt] (int32). */
  words?: tf.Tensor2D;
  /** With a region table: the rows' object features [R, boxes, Dr] and which are real [R, boxes]. */
  regionFeatures?: { tokens: tf.Tensor3D; mask: tf.Tensor2D };
  /** With a training vision tower: its full-resolution output grid and pooled embeddings per row. */
  encoded?: { gridTokens: tf.Tensor3D; embeds: tf.Tensor2D };  choiceGroups?: ChoiceGroups;
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
  fusion: Fusion;
  /** The fusion's own word table (a relational fusion that trains word embeddings); absent: the encoder's text tokens alone. */
  words?: QuestionWordTable;
  /** Dropout rate inside the fusion while training (0: none). */
  dropout?: number;
  /** Object features by region key (extractRegionFeatures): what rows with `regionKeys` attend to. */
  regionTable?: FeatureTable;
  sceneGraphSizes?: SceneGraphVocabularySizes;
  targetImageKeys: string[];
  /** Unlabelled target-domain questions on their images (imageKeys, textKeys): what mmd/dann's target rows are drawn from; absent: the batch's texts on random `targetImageKeys`. */
  targetRows?: FusionRows;
  random: SeededRandom;
  /**
   * An encoder whose blocks train (encoder.train_blocks > 0): the trained towers' tokens are
   * computed from the cached boundary inside each gradient tape instead of read from
   * `images` / `texts` (which then give shapes and masks only); sg pools regions from its
   * output grid, mmd/dann align its pooled image features, a wrapping objective may perturb its start.
   */
  encoder?: TrainableTokens;
}

export class FusionTraining {
  readonly grid: TokenGrid;
  /** Where frozen rows' region tokens pool from: the full patch grid when the fusion's image tokens are a pooled one. */
  private readonly regionSource: { table: FeatureTable; grid: TokenGrid };
  /** The modules of the SPEC's term-adding objectives, in SPEC order. */
  private readonly objectives: ObjectiveModule[];
  private readonly needsTarget: boolean;
  /** The SPEC's objective that runs the task's forward pass itself, bound to its settings. */
  private readonly wrapper?: (pass: PerturbableForwardPass) => WrappedPassResult;

  constructor(private readonly setup: FusionTrainingSetup) {
    const side = Math.round(Math.sqrt(setup.images.tokenCount - 1));
    this.grid = { rows: side, cols: side, offset: 1 };
    const regionTable = setup.images.fullGrid ?? setup.images;
    const regionSide = Math.round(Math.sqrt(regionTable.tokenCount - 1));
    // A training vision tower hands each row its full-resolution output grid: region tokens pool from that.
    this.regionSource = { table: regionTable, grid: setup.encoder?.trainsImages ? setup.encoder.fullGrid : { rows: regionSide, cols: regionSide, offset: 1 } };
    this.objectives = setup.method.objectives.flatMap((objective) =>
      objective.definition.create
        ? [objective.definition.create(objective.settings as never, { kind: 'fusion', featureDim: this.featureDimOf(objective.definition), sceneGraphSizes: setup.sceneGraphSizes, random: setup.random })]
        : [],
    );
    const wrappers = setup.method.objectives.filter((objective) => objective.definition.wrapForwardPass);
    if (wrappers.length > 1) throw new Error(`${setup.method.spec}: ${wrappers.map((o) => o.name).join(' and ')} each wrap the forward pass; at most one objective may`);
    if (wrappers.length === 1) {
      const [{ definition, settings }] = wrappers;
      const wrap = definition.wrapForwardPass as (settings: unknown, pass: PerturbableForwardPass) => WrappedPassResult;
      this.wrapper = (pass) => wrap(settings, pass);
    }
    this.needsTarget = methodNeeds(setup.method).targetDomain;
    if (this.needsTarget && setup.targetImageKeys.length === 0 && !setup.targetRows?.imageKeys.length) throw new Error(`${setup.method.spec} needs target-domain images and none were found`);
  }

  /** What an objective's features are: the training encoder's grid tokens (sg), else the fusion's pooled rows (mmd, dann: what the answer is read from). */
  private featureDimOf(definition: { needsSceneGraphs?: boolean }): number {
    const encoder = this.setup.encoder;
    if (encoder?.trainsImages && definition.needsSceneGraphs) return encoder.gridDim;
    return this.setup.fusion.hidden;
  }

  /** The fusion's and the objectives' variables (the task head adds its own). */
  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.setup.fusion.namedVariables(), ...this.objectives.flatMap((module) => [...module.namedVariables()])]);
  }

  /**
   * Tensors of the rows: image tokens [R, Ti, Dv], text tokens [R, Tt, Dt], text mask [R, Tt];
   * with boxes, their geometry and the tag→detection matrix [R, Tt, boxes]; with a focus, its
   * mask [R, Tt]. Region tokens are pooled in `fuse`, from the image tokens the pass uses (a
   * perturbed image perturbs its regions and tags too), or from the full patch grid when the
   * fusion sees a pooled one (a small object stays a patch of its own; the perturbation then
   * stays on the pooled grid).
   */
  rowTensors(rows: FusionRows, perturbation?: EncoderPerturbation): RowTensors {
    const { images, texts, encoder } = this.setup;
    const { imageKeys, textKeys } = rows;
    const encoded = encoder?.trainsImages ? encoder.images(imageKeys, perturbation?.image) : undefined;
    const image = encoded ? encoded.fusionTokens : tf.tensor3d(images.gatherTokens(imageKeys), [imageKeys.length, images.tokenCount, images.tokenDim]);
    const length = texts.longestText(textKeys);
    const t: RowTensors = {
      image,
      text: encoder?.trainsTexts ? encoder.texts(textKeys, length, perturbation?.text) : tf.tensor3d(texts.gatherTokens(textKeys, length), [textKeys.length, length, texts.tokenDim]),
      mask: tf.tensor2d(texts.gatherMasks(textKeys, length), [textKeys.length, length]),
      encoded: encoded && { gridTokens: encoded.gridTokens, embeds: encoded.embeds },
      words: this.setup.words && tf.tensor2d(this.setup.words.indices(textKeys, length), [textKeys.length, length], 'int32'),
      choiceGroups: rows.choiceGroups,
    };
    const { boxes } = rows;
    if (boxes && boxes.some((b) => b.length > 0)) {
      const maxBoxes = Math.max(...boxes.map((b) => b.length));
      Object.assign(t, { boxes, polygons: rows.polygons, geometry: boxGeometry(boxes, maxBoxes) });
      const full = this.regionSource.table;
      const regionTable = this.setup.regionTable;
      if (rows.regionKeys && regionTable) {
        const tokens = new Float32Array(textKeys.length * maxBoxes * regionTable.tokenDim);
        const mask = new Float32Array(textKeys.length * maxBoxes);
        rows.regionKeys.forEach((keys, row) => {
          tokens.set(regionTable.gatherTokens(keys), row * maxBoxes * regionTable.tokenDim);
          mask.fill(1, row * maxBoxes, row * maxBoxes + keys.length);
        });
        t.regionFeatures = { tokens: tf.tensor3d(tokens, [textKeys.length, maxBoxes, regionTable.tokenDim]), mask: tf.tensor2d(mask, [textKeys.length, maxBoxes]) };
      } else if (encoded) t.regionImage = encoded.gridTokens;
      else if (full !== images) t.regionImage = tf.tensor3d(full.gatherTokens(imageKeys), [imageKeys.length, full.tokenCount, full.tokenDim]);
      const tokenToBox = (perRow: TagTokens[][]) => {
        const values = new Float32Array(textKeys.length * length * maxBoxes);
        perRow.forEach((tags, row) => {
          for (const tag of tags) for (let token = tag.start; token < Math.min(tag.end, length); token++) values[(row * length + token) * maxBoxes + tag.box] = 1;
        });
        return tf.tensor3d(values, [textKeys.length, length, maxBoxes]);
      };
      if (rows.tags) t.tagRegions = tokenToBox(rows.tags);
      if (rows.tags && rows.tagContext) t.tagContext = { previous: tokenToBox(rows.tagContext.previous), next: tokenToBox(rows.tagContext.next) };
    }
    if (rows.focus) {
      const values = new Float32Array(textKeys.length * length);
      const masks = texts.gatherMasks(textKeys, length);
      rows.focus.forEach((span, row) => {
        for (let token = span.start; token < Math.min(span.end, length); token++) values[row * length + token] = masks[row * length + token];
      });
      // A choice cut off by truncation leaves nothing to max over: that row pools all its tokens.
      rows.focus.forEach((_, row) => {
        if (!values.subarray(row * length, (row + 1) * length).some((v) => v > 0)) values.set(masks.subarray(row * length, (row + 1) * length), row * length);
      });
      t.focus = tf.tensor2d(values, [textKeys.length, length]);
    }
    return t;
  }

  /** One fusion pass over the rows; `grounded` false leaves out region tokens and tag grounding; `drop` is the training pass's dropout. */
  private fuse(t: RowTensors, image = t.image, text = t.text, grounded = true, drop?: DropoutPass): FusionOutput {
    let regions: RegionTokens | undefined;
    if (grounded && t.regionFeatures) {
      regions = { tokens: t.regionFeatures.tokens, mask: t.regionFeatures.mask, geometry: t.geometry! };
    } else if (grounded && t.boxes) {
      const pooled = t.regionImage ? poolRegions(t.regionImage, this.regionSource.grid, t.boxes, t.polygons) : poolRegions(image, this.grid, t.boxes, t.polygons);
      regions = { tokens: pooled.regions, mask: pooled.mask, geometry: t.geometry! };
    }
    return this.setup.fusion.apply({ imageTokens: image, textTokens: text, textMask: t.mask, regions, tagRegions: regions ? t.tagRegions : undefined, tagContext: regions ? t.tagContext : undefined, focus: t.focus, textWords: t.words, dropout: drop, choiceGroups: t.choiceGroups });
  }

  private disposeRows(t: RowTensors): void {
    tf.dispose([t.image, t.text, t.mask, ...([t.regionImage, t.geometry, t.tagRegions, t.tagContext?.previous, t.tagContext?.next, t.focus, t.words, t.regionFeatures?.tokens, t.regionFeatures?.mask, t.encoded?.gridTokens, t.encoded?.embeds].filter((x) => x !== undefined) as tf.Tensor[])]);
  }

  /** The rows from `start` to `end`, every per-row field cut alike. */
  private static sliceRows(rows: FusionRows, start: number, end: number): FusionRows {
    const groups = rows.choiceGroups;
    if (groups && start % groups.rows !== 0) throw new Error(`rows cut at ${start}, inside a group of ${groups.rows}`);
    return {
      imageKeys: rows.imageKeys.slice(start, end),
      textKeys: rows.textKeys.slice(start, end),
      graphs: rows.graphs?.slice(start, end),
      boxes: rows.boxes?.slice(start, end),
      regionKeys: rows.regionKeys?.slice(start, end),
      polygons: rows.polygons?.slice(start, end),
      tags: rows.tags?.slice(start, end),
      tagContext: rows.tagContext && { previous: rows.tagContext.previous.slice(start, end), next: rows.tagContext.next.slice(start, end) },
      focus: rows.focus?.slice(start, end),
      choiceGroups: groups && { rows: groups.rows, prefixLengths: groups.prefixLengths.slice(start / groups.rows, Math.ceil(end / groups.rows)) },
    };
  }

  /** Logits of rows for prediction (no perturbation, no auxiliary losses), in chunks. */
  predictLogits(rows: FusionRows, head: FusionTaskHead, rowsPerExample: number, chunkRows = 64): Float32Array[] {
    const out: Float32Array[] = [];
    const chunk = Math.max(rowsPerExample, Math.floor(chunkRows / rowsPerExample) * rowsPerExample);
    for (let start = 0; start < rows.imageKeys.length; start += chunk) {
      const logits = tf.tidy(() => {
        const t = this.rowTensors(FusionTraining.sliceRows(rows, start, start + chunk));
        return head.logits(this.fuse(t).pooled);
      });
      const values = logits.dataSync() as Float32Array;
      const classes = logits.shape[1];
      for (let r = 0; r < logits.shape[0]; r++) out.push(values.slice(r * classes, (r + 1) * classes));
      logits.dispose();
    }
    return out;
  }

  /**
   * The batch's task forward pass open to perturbations: δ of a modality enters a training
   * tower at its start (its input embeddings, or its first trainable block's input) or the
   * tokens entering the fusion. `frozen` holds rows built once outside the tape (frozen encoder).
   */
  private perturbablePass(rows: FusionRows, frozen: RowTensors | undefined, head: FusionTaskHead, variables: readonly tf.Variable[], drop: DropoutPass | undefined): PerturbableForwardPass {
    const { encoder, images, texts } = this.setup;
    const length = texts.longestText(rows.textKeys);
    let encoderNorms: { image: number[]; text: number[] } | undefined;
    let fusionNorms: { image: number[]; text: number[] } | undefined;
    const site = (modality: PerturbedModality, place: 'encoder' | 'fusion'): PerturbationSite => {
      const towerTrains = modality === 'image' ? encoder?.trainsImages : encoder?.trainsTexts;
      if (place === 'encoder' && encoder && towerTrains) {
        return { modality, place, shape: encoder.perturbationShapes(rows.imageKeys, rows.textKeys, length)[modality], referenceNorms: () => (encoderNorms ??= encoder.referenceNorms(rows.imageKeys, rows.textKeys, length))[modality] };
      }
      const shape = modality === 'image' ? [rows.imageKeys.length, images.tokenCount, images.tokenDim] : [rows.textKeys.length, length, texts.tokenDim];
      return { modality, place: 'fusion', shape, referenceNorms: () => (fusionNorms ??= this.fusionInputNorms(rows, frozen))[modality] };
    };
    return {
      variables,
      site,
      run: (deltas) => {
        const at = (place: 'encoder' | 'fusion', modality: PerturbedModality) => (deltas[modality]?.site.place === place ? deltas[modality]!.delta : undefined);
        const r = frozen ?? this.rowTensors(rows, { image: at('encoder', 'image'), text: at('encoder', 'text') });
        const plus = <T extends tf.Tensor>(x: T, delta: tf.Tensor | undefined): T => (delta ? (x.add(delta) as T) : x);
        const fused = this.fuse(r, plus(r.image, at('fusion', 'image')), plus(r.text, at('fusion', 'text')), true, drop);
        const logits = head.logits(fused.pooled);
        return { loss: head.loss(logits), logits };
      },
    };
  }

  /** Per-row L2 norms of the clean tokens entering the fusion (text: real tokens only). */
  private fusionInputNorms(rows: FusionRows, frozen: RowTensors | undefined): { image: number[]; text: number[] } {
    const r = frozen ?? this.rowTensors(rows);
    try {
      const norms = tf.tidy(() => [r.image.reshape([r.image.shape[0], -1]), r.text.mul(r.mask.expandDims(2)).reshape([r.text.shape[0], -1])].map((x) => x.square().sum(1).sqrt()));
      const [image, text] = norms.map((n) => Array.from(n.dataSync()));
      tf.dispose(norms);
      return { image, text };
    } finally {
      if (!frozen) this.disposeRows(r);
    }
  }

  /** One target row per batch row: a target question on its own image, or (no target questions) a batch text on a random target image. */
  private drawTargetRows(rows: FusionRows, context: StepContext): FusionRows {
    const pool = this.setup.targetRows;
    if (pool && pool.imageKeys.length > 0) {
      const picks = rows.imageKeys.map(() => context.random.int(0, pool.imageKeys.length - 1));
      return { imageKeys: picks.map((i) => pool.imageKeys[i]), textKeys: picks.map((i) => pool.textKeys[i]) };
    }
    const imageKeys = rows.imageKeys.map(() => context.random.pick(this.setup.targetImageKeys));
    // Texts shuffled with their focus, so a target row's choice span is its own text's; each on its
    // own image, so a group of one row that keeps its text's prefix (the same attention as the source's).
    const order = context.random.shuffled(rows.textKeys.map((_, i) => i));
    const groups = rows.choiceGroups;
    const choiceGroups = groups && { rows: 1, prefixLengths: order.map((i) => groups.prefixLengths[Math.floor(i / groups.rows)]) };
    return { imageKeys, textKeys: order.map((i) => rows.textKeys[i]), focus: rows.focus && order.map((i) => rows.focus![i]), choiceGroups };
  }

  /** Loss and gradients of one batch, with every objective of the SPEC. */
  step(rows: FusionRows, head: FusionTaskHead, variables: Map<string, tf.Variable>, context: StepContext): StepResult {
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
    // A training encoder computes its rows inside each gradient tape (so the gradient reaches
    // it); frozen rows are built once here.
    const { encoder } = this.setup;
    const t = encoder ? undefined : this.rowTensors(rows);
    const targetRows = this.needsTarget ? this.drawTargetRows(rows, context) : undefined;
    // Frozen target rows are built once here; a training encoder computes them in the tape.
    const target = targetRows && !encoder ? this.rowTensors(targetRows) : undefined;
    let loss = 0;
    // Drawn from the step's generator, so a resumed run drops the same units.
    const drop = this.setup.dropout ? { rate: this.setup.dropout, seed: context.random.int(0, 2 ** 30) } : undefined;
    try {
      const variableList = [...variables.values()];
      if (this.wrapper) {
        const result = this.wrapper(this.perturbablePass(rows, t, head, variableList, drop));
        accumulate(result.grads);
        loss += result.loss;
        parts.task = result.taskLoss;
        Object.assign(parts, result.parts);
      }
      if (!this.wrapper || this.objectives.length > 0) {
        const recorded: Record<string, tf.Scalar> = {};
        const { value, grads } = tf.variableGrads(() => {
          const r = t ?? this.rowTensors(rows);
          const fused = this.fuse(r, r.image, r.text, true, drop);
          const targetTensors = target ?? (targetRows ? this.rowTensors(targetRows) : undefined);
          let total: tf.Scalar = tf.scalar(0);
          if (!this.wrapper) {
            const task = head.loss(head.logits(fused.pooled));
            recorded.task = tf.keep(task.clone());
            total = total.add(task);
          }
          const batch: ObjectiveBatch = {
            // With region tokens, the aligned source features come from a pass built like the target's (no regions).
            features: targetTensors && r.boxes ? this.fuse(r, r.image, r.text, false).pooled : fused.pooled,
            // A training vision tower: regions come from its own output grid at full resolution, which never saw the question.
            imageTokens: rows.graphs ? (r.encoded ? r.encoded.gridTokens : (fused.sequence.slice([0, 0, 0], [-1, this.setup.images.tokenCount, -1]) as tf.Tensor3D)) : undefined,
            grid: r.encoded ? encoder!.fullGrid : this.grid,
            graphs: rows.graphs,
            targetFeatures: targetTensors ? this.fuse(targetTensors).pooled : undefined,
            step: context.step,
            totalSteps: context.totalSteps,
          };
          for (const module of this.objectives) {
            for (const term of module.lossTerms(batch)) {
              recorded[term.name] = tf.keep((term.recorded ?? term.contribution).clone());
              for (const [name, value] of Object.entries(term.diagnostics ?? {})) recorded[name] = tf.keep(value.clone());
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
      if (t) this.disposeRows(t);
      if (target) this.disposeRows(target);
    }
    return { loss, gradients, parts };
  }

  dispose(): void {
    for (const module of this.objectives) module.dispose();
  }
}
