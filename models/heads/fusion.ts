import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import type { SeededRandom } from '../../core/random.ts';
import { selectionMatrix, type NormalisedBox } from '../ops/regions.ts';
import { LayerNorm, Linear, ParameterModule, ParameterStore, quickGelu, type TrainableModule } from './layers.ts';

/**
 * A small cross-modal fusion transformer, single-stream (UNITER/VisualBERT style): image
 * tokens, optional region tokens and text tokens are projected to one width, tagged with a
 * learned type embedding (0 image, 1 text, 2 region), concatenated, and passed through L
 * pre-norm layers, each self-attention over the whole sequence then an MLP, both residual.
 * Padding (text beyond its length, absent regions) is masked out of attention as keys.
 *
 * No position embeddings: the encoder's tokens already carry their positions.
 * Region tokens add a projection of UNITER's 7-d box geometry (x1, y1, x2, y2, w, h, w·h), so
 * the fusion knows where each region is.
 *
 * Grounding (R2C, Zellers et al. 2019), when `detectionSlots` > 0 and the inputs give
 * `tagRegions`: every text token that names a detection (all tokens of a tag's word) gets that
 * detection added to its own embedding: its region feature through a learned projection, its
 * box geometry and a per-detection slot embedding, the same slot the detection's region token
 * carries, so "the [1] on the left" and region 1 meet in attention without guessing which of
 * two same-class objects the text means.
 *
 * Pooled output: the masked mean of the final (layer-normed) tokens over all valid positions;
 * with `focus`, the max over the focused text tokens instead (R2C max-pools over the answer's
 * tokens: a mean over image, regions and question would drown the few words that separate
 * four choices). `sequence` is returned too, for heads that want the first token instead.
 */
export interface FusionConfig {
  imageDim: number;
  textDim: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  mlpRatio?: number;
  /**
   * Slot embeddings for tag grounding (detection r takes slot r mod detectionSlots); 0 or absent
   * builds no grounding parameters (VQA, GQA), so those tasks' models are unchanged.
   */
  detectionSlots?: number;
  /**
   * A layer norm on each input (image tokens, region tokens, text tokens) before its
   * projection: CLIP's vision tokens come out unnormalised (mean norm ~51 on the source,
   * ~134 on the target), so without it the fusion's residual stream changes scale with the
   * domain. Absent or false builds no such parameters, so older models are unchanged.
   */
  inputNorm?: boolean;
  /**
   * With detectionSlots: every text token also carries the detections its sentence mentions just
   * before and just after it (`tagContext`), each through its own projection, so the word after a
   * tag ("[0] is red") holds the region it describes without first learning to attend to it. The
   * frozen text encoder is causal, so only words BEFORE a tag reach the tag token's own
   * embedding; issue 13 measured what that costs: grounded fusion learned to check "the red [0]"
   * (relation rationales, QA→R 79%) but stayed near chance on "[0] is red" (colour answers, 41%)
   * and "[0] is ... in the left part" (colour rationales, 25%). Absent or false builds no such
   * parameters.
   */
  tagContext?: boolean;
  /**
   * With detectionSlots: besides adding a detection to the tokens that name or surround it, add
   * its product with a projection of each such token (low-rank bilinear pooling, MLB, Kim et al.
   * 2017), so "does this word fit this region" (red against a red region, left against two
   * boxes' x) is one linear read-out instead of a conjunction the MLPs must first learn. Absent or
   * false builds no such parameters.
   */
  tagProduct?: boolean;
  /**
   * With detectionSlots: every place a box's geometry enters (its region token, its tag tokens,
   * the words around its tags) also gets a projection of sine features of the box's centre and
   * size (sin, cos of π·k·v for k = 1..4, as DETR encodes positions). UNITER's 7 raw coordinates
   * lie in [0, 1] and enter at a fifth of a token's scale, so "left of", "bigger than" and "in
   * the top part" (a third of the picture on each axis) were left at chance while colours were
   * read at 95-100% (issue 13). Absent or false builds no such parameters.
   */
  boxSine?: boolean;
  /**
   * Rows given in choice groups (FusionInputs.choiceGroups) share a prefix that does not attend
   * to the choices: the image, the regions and the question (plus the given answer of a rationale
   * row) pass through the layers once per group, and only each choice's own tokens pass once per
   * row, attending to the prefix and to themselves (a prefix language model's mask). With full
   * attention a VCR item carried its image and question through the fusion four times over
   * (issue 34). Absent or false: every row attends over all its tokens, groups or not; it builds
   * no parameters either way.
   */
  sharedPrefix?: boolean;
}

/** Frequencies of the sine box features (FusionConfig.boxSine): 4 per value of (centre x, centre y, w, h), sin and cos each. */
const BOX_SINE_FREQUENCIES = 4;
const BOX_SINE_DIM = 4 * 2 * BOX_SINE_FREQUENCIES;

/** [B, R, 7] UNITER geometry → [B, R, 32] sine features of (centre x, centre y, w, h). */
export function boxSineFeatures(geometry: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [batch, regions] = geometry.shape;
    const at = (i: number) => geometry.slice([0, 0, i], [-1, -1, 1]);
    const values = tf.concat([at(0).add(at(2)).div(2), at(1).add(at(3)).div(2), at(4), at(5)], 2).expandDims(3);
    const angles = values.mul(tf.tensor1d(Array.from({ length: BOX_SINE_FREQUENCIES }, (_, k) => Math.PI * (k + 1))).reshape([1, 1, 1, BOX_SINE_FREQUENCIES]));
    return tf.concat([tf.sin(angles), tf.cos(angles)], 3).reshape([batch, regions, BOX_SINE_DIM]) as tf.Tensor3D;
  });
}

/**
 * Sized for a CPU: 64 wide, one layer, and the patch grid pooled 2×2 before the fusion
 * (`imagePool`, applied by the run when the grid divides): sequence length dominates the
 * cost of a fusion step, so pooling made head training 4× faster at equal settings.
 */
export const FUSION_DEFAULTS = { hidden: 64, layers: 1, heads: 2, mlpRatio: 4, imagePool: 2 } as const;

export interface RegionTokens {
  /** [B, R, imageDim], e.g. from poolRegions. */
  tokens: tf.Tensor3D;
  /** [B, R], 1 for a real region. */
  mask: tf.Tensor2D;
  /** [B, R, 7], from boxGeometry. */
  geometry: tf.Tensor3D;
}

export interface FusionInputs {
  /** [B, Ti, imageDim] */
  imageTokens: tf.Tensor3D;
  /** [B, Ti]; all valid when absent. */
  imageMask?: tf.Tensor2D;
  /** [B, Tt, textDim] */
  textTokens: tf.Tensor3D;
  /** [B, Tt], 1 for real tokens, 0 for padding. */
  textMask: tf.Tensor2D;
  regions?: RegionTokens;
  /** [B, Tt, R] with `regions`: 1 where text token t names detection r (see the class comment). */
  tagRegions?: tf.Tensor3D;
  /**
   * [B, Tt, R] each, with `tagRegions`: 1 where detection r is the last one tagged before text
   * token t in its sentence (`previous`), or the first one tagged after it (`next`).
   */
  tagContext?: { previous: tf.Tensor3D; next: tf.Tensor3D };
  /** [B, Tt]: 1 for the text tokens `pooled` max-pools over (the choice); absent: mean over all valid tokens. */
  focus?: tf.Tensor2D;
  /** [B, Tt] int32: each text token's index in the fusion's own word table (0: a word outside it), for fusions that train word embeddings. */
  textWords?: tf.Tensor2D;
  /** Present while training: dropout's rate and seed for this pass. */
  dropout?: DropoutPass;
  /** Rows that come in groups sharing their image, regions and first text tokens (a VCR item's choices); fusions built with `sharedPrefix` run those once per group. */
  choiceGroups?: ChoiceGroups;
}

/**
 * Consecutive rows in groups of `rows` (a VCR item's four choice texts) whose image tokens,
 * region tokens, grounding and first `prefixLengths[g]` text tokens are the same (the question,
 * and the given answer of a rationale row): the caller vouches for that. The frozen text encoder
 * is causal, so a text's first tokens do not depend on what follows them. The shared part is read
 * from each group's first row, so a per-row perturbation of it (adv's δ) acts through that row.
 */
export interface ChoiceGroups {
  rows: number;
  /** Per group, how many leading text tokens (the start token included) its rows share. */
  prefixLengths: readonly number[];
}

/**
 * What the fusion-problem tasks train and predict through: the single-stream transformer
 * below, or the relational fusion (relational-fusion.ts) VQA and GQA use by default.
 */
export interface Fusion extends TrainableModule {
  readonly hidden: number;
  readonly imageDim: number;
  readonly textDim: number;
  apply(inputs: FusionInputs): FusionOutput;
}

export interface FusionOutput {
  /** [B, hidden] */
  pooled: tf.Tensor2D;
  /** [B, Ti + R + Tt, hidden], image tokens first, then regions, then text. */
  sequence: tf.Tensor3D;
  /** [B, Ti + R + Tt] */
  mask: tf.Tensor2D;
  /**
   * [B, K, N]: which object each of the read-out's K selections picked (a softmax over the N
   * objects; the relational fusion only). Diagnostics read it (bench/vqa-gates.ts: does the first
   * selection land on the object a comparison names first?); the answer never does.
   */
  selections?: tf.Tensor3D;
}

/** UNITER's box features: [x1, y1, x2, y2, w, h, w·h] per box, zero rows for padding, [B, R, 7]. */
export function boxGeometry(boxesPerImage: readonly (readonly NormalisedBox[])[], maxRegions: number): tf.Tensor3D {
  const values = new Float32Array(boxesPerImage.length * maxRegions * 7);
  boxesPerImage.forEach((boxes, image) =>
    boxes.forEach(([x1, y1, x2, y2], region) => {
      const w = x2 - x1;
      const h = y2 - y1;
      values.set([x1, y1, x2, y2, w, h, w * h], (image * maxRegions + region) * 7);
    }),
  );
  return tf.tensor3d(values, [boxesPerImage.length, maxRegions, 7]);
}

/**
 * The max of x [B, T, H] over its tokens, with tfjs's own gradient (dy to every position equal to
 * the max) computed at equal shapes: the wasm backend compares broadcast operands element by
 * element in JavaScript, 15× slower than at equal shapes (22 ms against 1.4 ms for one VCR batch),
 * while a broadcast add is fast.
 */
export const maxOverTokens = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const value = x.max(1);
  save([x, value]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, [input, max]: tf.Tensor[]) => {
      const hit = tf.equal(input, max.expandDims(1).add(tf.zerosLike(input))).toFloat();
      return hit.mul(dy.expandDims(1));
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor3D) => tf.Tensor2D;

/** Dropout while training: a rate and the seed of this pass's masks (the step's generator draws it, so a resumed run drops the same units). */
export interface DropoutPass {
  rate: number;
  seed: number;
}

/** Inverted dropout with a seeded mask; identity when `pass` is absent (prediction) or its rate is 0. */
export function dropout(x: tf.Tensor, pass: DropoutPass | undefined, salt: number): tf.Tensor {
  if (!pass || pass.rate <= 0) return x;
  return tf.tidy(() => {
    const keep = 1 - pass.rate;
    // randomUniform with an explicit seed, not tf.dropout: the same seed gives the same mask on every backend.
    const mask = tf.randomUniform(x.shape, 0, 1, 'float32', pass.seed + salt * 7919).less(keep).toFloat();
    return x.mul(mask).div(keep);
  });
}

export class FusionLayer {
  private readonly attentionNorm: LayerNorm;
  private readonly query: Linear;
  private readonly key: Linear;
  private readonly value: Linear;
  private readonly output: Linear;
  private readonly mlpNorm: LayerNorm;
  private readonly mlpIn: Linear;
  private readonly mlpOut: Linear;

  constructor(
    params: ParameterStore,
    name: string,
    private readonly hidden: number,
    private readonly heads: number,
    mlpRatio: number,
  ) {
    this.attentionNorm = new LayerNorm(params, `${name}/attention_norm`, hidden);
    this.query = new Linear(params, `${name}/attention/query`, hidden, hidden);
    this.key = new Linear(params, `${name}/attention/key`, hidden, hidden);
    this.value = new Linear(params, `${name}/attention/value`, hidden, hidden);
    this.output = new Linear(params, `${name}/attention/output`, hidden, hidden);
    this.mlpNorm = new LayerNorm(params, `${name}/mlp_norm`, hidden);
    this.mlpIn = new Linear(params, `${name}/mlp/in`, hidden, hidden * mlpRatio);
    this.mlpOut = new Linear(params, `${name}/mlp/out`, hidden * mlpRatio, hidden);
  }

  /** x [B, T, hidden]; keyBias [B, 1, 1, T] with 0 for valid keys and a large negative for padding; `drop` applies dropout to both residual branches. */
  apply(x: tf.Tensor3D, keyBias: tf.Tensor4D, drop?: DropoutPass, salt = 0): tf.Tensor3D {
    return tf.tidy(() => {
      const [batch, length] = x.shape;
      const { q, k, v } = this.projectHeads(x);
      const scores = matMul(q, k, false, true).mul(1 / Math.sqrt(this.hidden / this.heads)).reshape([batch, this.heads, length, length]).add(keyBias);
      const weights = tf.softmax(scores).reshape([batch * this.heads, length, length]) as tf.Tensor3D;
      return this.finish(x, matMul(weights, v), drop, salt);
    });
  }

  /**
   * One layer over choice groups (FusionInputs.choiceGroups): `prefix` [G, P, hidden] holds each
   * group's shared tokens, which attend to each other alone; `choices` [G·K, S, hidden] holds each
   * row's own tokens, which attend to their group's prefix and to their own row. `groupOfRow`
   * [G·K, G] is one-hot; `bias` [G·K, 1, S, P + S] is 0 where a choice token may attend and a
   * large negative for padding (the prefix's keys first, then the row's own). Same weights as
   * `apply`: with one layer a choice token's output is exactly what `apply` gives it over its
   * whole row (test/heads/shared-prefix.test.ts); from the second layer on the prefix's inputs
   * have not read the choices.
   */
  applyChoiceGroups(prefix: tf.Tensor3D, prefixBias: tf.Tensor4D, choices: tf.Tensor3D, groupOfRow: tf.Tensor2D, bias: tf.Tensor4D, drop?: DropoutPass, salt = 0): { prefix: tf.Tensor3D; choices: tf.Tensor3D } {
    return tf.tidy(() => {
      const [groups, prefixLength] = prefix.shape;
      const [rows, choiceLength] = choices.shape;
      const headDim = this.hidden / this.heads;
      const scale = 1 / Math.sqrt(headDim);
      const p = this.projectHeads(prefix);
      const prefixScores = matMul(p.q, p.k, false, true).mul(scale).reshape([groups, this.heads, prefixLength, prefixLength]).add(prefixBias);
      const prefixWeights = tf.softmax(prefixScores).reshape([groups * this.heads, prefixLength, prefixLength]) as tf.Tensor3D;
      const prefixOut = this.finish(prefix, matMul(prefixWeights, p.v), drop, salt);
      // Each row reads its group's prefix keys and values (a KV cache shared by the K rows), its own after them.
      const c = this.projectHeads(choices);
      const toRows = (t: tf.Tensor3D) => matMul(groupOfRow, t.reshape([groups, this.heads * prefixLength * headDim])).reshape([rows * this.heads, prefixLength, headDim]);
      const keys = tf.concat([toRows(p.k), c.k], 1) as tf.Tensor3D;
      const values = tf.concat([toRows(p.v), c.v], 1) as tf.Tensor3D;
      const scores = matMul(c.q, keys, false, true).mul(scale).reshape([rows, this.heads, choiceLength, prefixLength + choiceLength]).add(bias);
      const weights = tf.softmax(scores).reshape([rows * this.heads, choiceLength, prefixLength + choiceLength]) as tf.Tensor3D;
      const choicesOut = this.finish(choices, matMul(weights, values), drop, salt + 1000);
      return { prefix: prefixOut, choices: choicesOut };
    });
  }

  /** Queries, keys and values of x [B, T, hidden], each [B·H, T, headDim]: rank-3 batched matmuls are what every backend supports. */
  private projectHeads(x: tf.Tensor3D): { q: tf.Tensor3D; k: tf.Tensor3D; v: tf.Tensor3D } {
    const [batch, length] = x.shape;
    const headDim = this.hidden / this.heads;
    const normed = this.attentionNorm.apply(x);
    const split = (t: tf.Tensor) => t.reshape([batch, length, this.heads, headDim]).transpose([0, 2, 1, 3]).reshape([batch * this.heads, length, headDim]) as tf.Tensor3D;
    return { q: split(this.query.apply(normed)), k: split(this.key.apply(normed)), v: split(this.value.apply(normed)) };
  }

  /** x [B, T, hidden] plus its attention output [B·H, T, headDim] through the output projection, then the MLP, both residual. */
  private finish(x: tf.Tensor3D, attendedHeads: tf.Tensor, drop: DropoutPass | undefined, salt: number): tf.Tensor3D {
    const [batch, length] = x.shape;
    const attended = attendedHeads.reshape([batch, this.heads, length, this.hidden / this.heads]).transpose([0, 2, 1, 3]).reshape([batch, length, this.hidden]);
    const afterAttention = x.add(dropout(this.output.apply(attended), drop, salt * 2 + 1));
    const mlp = this.mlpOut.apply(quickGelu(this.mlpIn.apply(this.mlpNorm.apply(afterAttention))));
    return afterAttention.add(dropout(mlp, drop, salt * 2 + 2)) as tf.Tensor3D;
  }
}

export class FusionTransformer extends ParameterModule implements Fusion {
  readonly hidden: number;
  readonly imageDim: number;
  readonly textDim: number;
  private readonly imageProjection: Linear;
  private readonly textProjection: Linear;
  private readonly geometryProjection: Linear;
  private readonly typeEmbeddings: tf.Variable;
  private readonly layers: FusionLayer[];
  private readonly finalNorm: LayerNorm;
  /** Tag grounding (absent without detectionSlots). */
  private readonly grounding?: { tagProjection: Linear; tagGeometry: tf.Variable; slots: tf.Variable; count: number };
  /** Input layer norms (absent without inputNorm); region tokens share the image tokens' norm. */
  private readonly inputNorms?: { image: LayerNorm; text: LayerNorm };
  /** The neighbouring detections' projections (absent without tagContext). */
  private readonly context?: { previous: Linear; previousGeometry: tf.Variable; next: Linear; nextGeometry: tf.Variable };
  /** Projections of a text token that multiply the detection it names, follows and precedes (absent without tagProduct). */
  private readonly products?: { tag: Linear; previous: Linear; next: Linear };
  /** Projections of the sine box features for region tokens, tag tokens and the words before and after a tag (absent without boxSine). */
  private readonly boxSine?: { region: tf.Variable; tag: tf.Variable; previous: tf.Variable; next: tf.Variable };
  /** FusionConfig.sharedPrefix. */
  private readonly sharedPrefix: boolean;

  constructor(config: FusionConfig, rng: SeededRandom, scope = 'fusion') {
    super(scope, rng);
    const hidden = config.hidden ?? FUSION_DEFAULTS.hidden;
    const heads = config.heads ?? FUSION_DEFAULTS.heads;
    const layers = config.layers ?? FUSION_DEFAULTS.layers;
    const mlpRatio = config.mlpRatio ?? FUSION_DEFAULTS.mlpRatio;
    for (const [name, value] of Object.entries({ imageDim: config.imageDim, textDim: config.textDim, hidden, heads, mlpRatio })) {
      if (!Number.isInteger(value) || value < 1) throw new Error(`FusionTransformer: ${name} must be a positive integer, got ${value}`);
    }
    if (!Number.isInteger(layers) || layers < 0) throw new Error(`FusionTransformer: layers must be an integer ≥ 0, got ${layers}`);
    if (hidden % heads !== 0) throw new Error(`FusionTransformer: hidden ${hidden} is not divisible by ${heads} heads`);
    this.hidden = hidden;
    this.imageDim = config.imageDim;
    this.textDim = config.textDim;
    this.sharedPrefix = config.sharedPrefix ?? false;
    this.imageProjection = new Linear(this.params, 'image_projection', config.imageDim, hidden);
    this.textProjection = new Linear(this.params, 'text_projection', config.textDim, hidden);
    this.geometryProjection = new Linear(this.params, 'region_geometry', 7, hidden);
    this.typeEmbeddings = this.params.normal('type_embeddings', [3, hidden]);
    this.layers = Array.from({ length: layers }, (_, i) => new FusionLayer(this.params, `layer${i}`, hidden, heads, mlpRatio));
    this.finalNorm = new LayerNorm(this.params, 'final_norm', hidden);
    // Created last, so every parameter above draws the same initial values with or without grounding.
    const slots = config.detectionSlots ?? 0;
    if (!Number.isInteger(slots) || slots < 0) throw new Error(`FusionTransformer: detectionSlots must be an integer ≥ 0, got ${slots}`);
    if (slots > 0) {
      // Geometry and slots start at the scale of a projected token (std 0.2, not 0.02): at 0.02 the
      // box coordinates (all ≤ 1) entered a tag token at a hundredth of its size, and the
      // comparisons VCR asks for (left of, bigger than) waited for them to grow.
      this.grounding = {
        tagProjection: new Linear(this.params, 'tag_region_projection', config.imageDim, hidden),
        tagGeometry: this.params.normal('tag_geometry', [7, hidden], 0.2),
        slots: this.params.normal('detection_slots', [slots, hidden], 0.2),
        count: slots,
      };
    }
    // After everything else for the same reason as the grounding parameters.
    if (config.inputNorm) this.inputNorms = { image: new LayerNorm(this.params, 'image_input_norm', config.imageDim), text: new LayerNorm(this.params, 'text_input_norm', config.textDim) };
    if (config.tagContext && this.grounding) {
      this.context = {
        previous: new Linear(this.params, 'previous_tag_projection', config.imageDim, hidden),
        previousGeometry: this.params.normal('previous_tag_geometry', [7, hidden], 0.2),
        next: new Linear(this.params, 'next_tag_projection', config.imageDim, hidden),
        nextGeometry: this.params.normal('next_tag_geometry', [7, hidden], 0.2),
      };
    }
    if (config.tagProduct && this.grounding) {
      this.products = { tag: new Linear(this.params, 'tag_product', hidden, hidden), previous: new Linear(this.params, 'previous_tag_product', hidden, hidden), next: new Linear(this.params, 'next_tag_product', hidden, hidden) };
    }
    if (config.boxSine && this.grounding) {
      // At the scale of the other geometry weights (std 0.2): features of size 1 then enter as large as a projected token.
      const weights = (name: string) => this.params.normal(name, [BOX_SINE_DIM, hidden], 0.2);
      this.boxSine = { region: weights('region_box_sine'), tag: weights('tag_box_sine'), previous: weights('previous_tag_box_sine'), next: weights('next_tag_box_sine') };
    }
  }

  /** Slot embeddings of detections 0..count-1, [count, hidden]. */
  private slotRows(count: number): tf.Tensor2D {
    const { slots, count: available } = this.grounding!;
    if (count <= available) return slots.slice([0, 0], [count, this.hidden]) as tf.Tensor2D;
    return matMul(selectionMatrix(Array.from({ length: count }, (_, r) => r % available), available), slots) as tf.Tensor2D;
  }

  apply(given: FusionInputs): FusionOutput {
    if (!this.inputNorms) return this.applyNormalised(given);
    // FusionOutput is an interface, which tf.tidy's TensorContainer type does not admit.
    return tf.tidy(() => this.applyNormalised(this.normaliseInputs(given)) as unknown as tf.TensorContainer) as unknown as FusionOutput;
  }

  private normaliseInputs(given: FusionInputs): FusionInputs {
    const { image, text } = this.inputNorms!;
    const regions = given.regions && { ...given.regions, tokens: image.apply(given.regions.tokens) as tf.Tensor3D };
    return { ...given, imageTokens: image.apply(given.imageTokens) as tf.Tensor3D, textTokens: text.apply(given.textTokens) as tf.Tensor3D, regions };
  }

  private applyNormalised(inputs: FusionInputs): FusionOutput {
    const { imageTokens, textTokens, textMask, regions } = inputs;
    const batch = imageTokens.shape[0];
    if (imageTokens.rank !== 3 || imageTokens.shape[2] !== this.imageDim) throw new Error(`fusion: image tokens ${JSON.stringify(imageTokens.shape)}, expected [B, T, ${this.imageDim}]`);
    if (textTokens.rank !== 3 || textTokens.shape[2] !== this.textDim || textTokens.shape[0] !== batch) {
      throw new Error(`fusion: text tokens ${JSON.stringify(textTokens.shape)}, expected [${batch}, T, ${this.textDim}]`);
    }
    if (!tf.util.arraysEqual(textMask.shape, textTokens.shape.slice(0, 2))) throw new Error(`fusion: text mask ${JSON.stringify(textMask.shape)} does not match text tokens`);
    return tf.tidy(() => {
      const typeRow = (index: number) => this.typeEmbeddings.slice([index, 0], [1, this.hidden]).reshape([1, 1, this.hidden]);
      const parts: tf.Tensor[] = [this.imageProjection.apply(imageTokens).add(typeRow(0))];
      const masks: tf.Tensor[] = [inputs.imageMask ?? tf.ones([batch, imageTokens.shape[1]])];
      let text = this.textProjection.apply(textTokens).add(typeRow(1));
      if (regions) {
        const [, regionCount] = regions.geometry.shape;
        const sine = this.boxSine && boxSineFeatures(regions.geometry).reshape([batch * regionCount, BOX_SINE_DIM]);
        // No sine features: exactly 0, so the sums below are those of a fusion without them.
        const sineTerm = (weights: tf.Variable | undefined) => (sine && weights ? matMul(sine as tf.Tensor2D, weights).reshape([batch, regionCount, this.hidden]) : tf.scalar(0));
        const geometry = this.geometryProjection.apply(regions.geometry).add(sineTerm(this.boxSine?.region));
        const slots = this.grounding ? this.slotRows(regions.tokens.shape[1]).expandDims(0) : undefined;
        const regionPart = this.imageProjection.apply(regions.tokens).add(geometry).add(typeRow(2));
        parts.push(slots ? regionPart.add(slots) : regionPart);
        masks.push(regions.mask);
        if (inputs.tagRegions) {
          if (!this.grounding) throw new Error('fusion: tagRegions given, but this fusion was built without detectionSlots');
          if (!tf.util.arraysEqual(inputs.tagRegions.shape, [batch, textTokens.shape[1], regions.tokens.shape[1]])) {
            throw new Error(`fusion: tagRegions ${JSON.stringify(inputs.tagRegions.shape)}, expected [${batch}, ${textTokens.shape[1]}, ${regions.tokens.shape[1]}]`);
          }
          // Projected per detection first, then spread to its tokens: untagged tokens get exactly 0.
          const tagGeometry = matMul(regions.geometry.reshape([batch * regionCount, 7]), this.grounding.tagGeometry).reshape([batch, regionCount, this.hidden]).add(sineTerm(this.boxSine?.tag));
          const detection = this.grounding.tagProjection.apply(regions.tokens).add(tagGeometry).add(slots!) as tf.Tensor3D;
          // Products read the words as they came from the encoder, before any detection is added to them.
          const words = text;
          const ground = (links: tf.Tensor3D, detections: tf.Tensor3D, product?: Linear) => {
            const spread = matMul(links, detections) as tf.Tensor3D;
            text = text.add(spread);
            if (product) text = text.add(product.apply(words).mul(spread));
          };
          ground(inputs.tagRegions, detection, this.products?.tag);
          if (inputs.tagContext && this.context) {
            // The same detection seen from the words around its tag: its own projections, so "the region I am" and "the region I describe" stay apart.
            const neighbour = (projection: Linear, geometryWeights: tf.Variable, sineWeights: tf.Variable | undefined) =>
              projection.apply(regions.tokens).add(matMul(regions.geometry.reshape([batch * regionCount, 7]), geometryWeights).reshape([batch, regionCount, this.hidden])).add(sineTerm(sineWeights)).add(slots!) as tf.Tensor3D;
            ground(inputs.tagContext.previous, neighbour(this.context.previous, this.context.previousGeometry, this.boxSine?.previous), this.products?.previous);
            ground(inputs.tagContext.next, neighbour(this.context.next, this.context.nextGeometry, this.boxSine?.next), this.products?.next);
          }
        }
      } else if (inputs.tagRegions) {
        throw new Error('fusion: tagRegions needs the region tokens they point into');
      }
      const groups = this.sharedPrefix ? inputs.choiceGroups : undefined;
      let sequence: tf.Tensor3D;
      let mask: tf.Tensor2D;
      if (groups) {
        const imageAndRegions = tf.concat(parts, 1) as tf.Tensor3D;
        const imageAndRegionMask = tf.concat(masks, 1).toFloat() as tf.Tensor2D;
        mask = tf.concat([imageAndRegionMask, textMask.toFloat()], 1) as tf.Tensor2D;
        const grouped = this.encodeChoiceGroups(imageAndRegions, imageAndRegionMask, text as tf.Tensor3D, textMask, groups, inputs.focus);
        sequence = grouped.sequence;
        if (grouped.pooled) return { pooled: grouped.pooled, sequence, mask };
      } else {
        parts.push(text);
        masks.push(textMask);
        mask = tf.concat(masks, 1).toFloat() as tf.Tensor2D;
        const keyBias = tf.sub(1, mask).mul(-1e9).reshape([batch, 1, 1, mask.shape[1]]) as tf.Tensor4D;
        let x = tf.concat(parts, 1) as tf.Tensor3D;
        for (const layer of this.layers) x = layer.apply(x, keyBias);
        sequence = this.finalNorm.apply(x) as tf.Tensor3D;
      }
      if (inputs.focus) {
        const textLength = textTokens.shape[1];
        if (!tf.util.arraysEqual(inputs.focus.shape, [batch, textLength])) throw new Error(`fusion: focus ${JSON.stringify(inputs.focus.shape)} does not match the text tokens`);
        const textPart = sequence.slice([0, sequence.shape[1] - textLength, 0], [-1, textLength, -1]);
        const pooled = maxOverTokens(textPart.add(tf.sub(1, inputs.focus).mul(-1e9).expandDims(2)) as tf.Tensor3D);
        return { pooled, sequence, mask };
      }
      const weights = mask.expandDims(2);
      const pooled = sequence.mul(weights).sum(1).div(weights.sum(1)) as tf.Tensor2D;
      return { pooled, sequence, mask };
    });
  }

  /**
   * The layers and the final norm over rows in choice groups (FusionInputs.choiceGroups), as one
   * [rows, Ti + R + Tt, hidden] sequence like the ungrouped pass gives: each group's image and
   * region tokens and its first prefixLengths[g] text tokens (all read from the group's first row)
   * run through the layers once, attending to each other alone; each row's remaining real text
   * tokens run per row and attend to their group's prefix and to themselves. Padding after a
   * row's text comes back as zero vectors (masked, as before). With a `focus` inside every row's
   * own tokens (a choice span), `pooled` is its max, read from the rows' own tokens directly.
   *
   * Rows are picked and put back by one-hot products, not gather or tile: gather's gradient is
   * missing on wasm (see selectionMatrix), and tile, like a concat along the last axis, was among
   * the slowest kernels of a VCR step there (bench/vcr-step.ts).
   */
  private encodeChoiceGroups(imageAndRegions: tf.Tensor3D, imageAndRegionMask: tf.Tensor2D, text: tf.Tensor3D, textMask: tf.Tensor2D, groups: ChoiceGroups, focus?: tf.Tensor2D): { sequence: tf.Tensor3D; pooled?: tf.Tensor2D } {
    const [rows, textLength, hidden] = text.shape;
    const perGroup = groups.rows;
    if (!Number.isInteger(perGroup) || perGroup < 1 || rows % perGroup !== 0) throw new Error(`fusion: ${rows} rows are not whole groups of ${perGroup}`);
    const groupCount = rows / perGroup;
    if (groups.prefixLengths.length !== groupCount) throw new Error(`fusion: ${groups.prefixLengths.length} prefix lengths for ${groupCount} choice groups`);
    for (const length of groups.prefixLengths) if (!Number.isInteger(length) || length < 0 || length > textLength) throw new Error(`fusion: prefix length ${length} outside the ${textLength} text tokens`);
    if (focus && !tf.util.arraysEqual(focus.shape, [rows, textLength])) throw new Error(`fusion: focus ${JSON.stringify(focus.shape)} does not match the text tokens`);
    // Masks and focus are inputs, not trained values: reading them shapes the products below.
    const textMaskValues = textMask.dataSync();
    const leadMaskValues = imageAndRegionMask.dataSync();
    const leadLength = imageAndRegions.shape[1];
    const prefixOf = (row: number) => groups.prefixLengths[Math.floor(row / perGroup)];
    const prefixText = Math.max(...groups.prefixLengths);
    const prefixLength = leadLength + prefixText;
    let choiceLength = 1;
    for (let row = 0; row < rows; row++) {
      for (let t = prefixOf(row); t < textLength; t++) if (textMaskValues[row * textLength + t] > 0) choiceLength = Math.max(choiceLength, t - prefixOf(row) + 1);
    }
    // [rows, S, Tt]: row n's own token s is its text token prefix + s.
    const choiceSelection = new Float32Array(rows * choiceLength * textLength);
    const choiceMask = new Float32Array(rows * choiceLength);
    for (let row = 0; row < rows; row++) {
      for (let s = 0; s < choiceLength; s++) {
        const t = prefixOf(row) + s;
        if (t < textLength && textMaskValues[row * textLength + t] > 0) {
          choiceSelection[(row * choiceLength + s) * textLength + t] = 1;
          choiceMask[row * choiceLength + s] = 1;
        }
      }
    }
    // Keys a prefix token sees: its group's image and region tokens and prefix text; a choice token sees those, then its own row's.
    const prefixKeys = new Float32Array(groupCount * prefixLength);
    for (let g = 0; g < groupCount; g++) {
      const leader = g * perGroup;
      for (let i = 0; i < leadLength; i++) prefixKeys[g * prefixLength + i] = leadMaskValues[leader * leadLength + i];
      for (let t = 0; t < groups.prefixLengths[g]; t++) prefixKeys[g * prefixLength + leadLength + t] = textMaskValues[leader * textLength + t];
    }
    const keyWidth = prefixLength + choiceLength;
    const choiceBias = new Float32Array(rows * choiceLength * keyWidth);
    for (let row = 0; row < rows; row++) {
      const g = Math.floor(row / perGroup);
      for (let s = 0; s < choiceLength; s++) {
        const at = (row * choiceLength + s) * keyWidth;
        for (let key = 0; key < prefixLength; key++) choiceBias[at + key] = prefixKeys[g * prefixLength + key] > 0 ? 0 : -1e9;
        for (let key = 0; key < choiceLength; key++) choiceBias[at + prefixLength + key] = choiceMask[row * choiceLength + key] > 0 ? 0 : -1e9;
      }
    }
    const prefixBias = tf.tensor4d(prefixKeys.map((valid) => (valid > 0 ? 0 : -1e9)), [groupCount, 1, 1, prefixLength]);
    const bias = tf.tensor4d(choiceBias, [rows, 1, choiceLength, keyWidth]);
    const groupOfRow = selectionMatrix(Array.from({ length: rows }, (_, row) => Math.floor(row / perGroup)), groupCount);
    const leaders = selectionMatrix(Array.from({ length: groupCount }, (_, g) => g * perGroup), rows);
    const firstOfGroup = (t: tf.Tensor) => matMul(leaders, t.reshape([rows, -1])).reshape([groupCount, ...t.shape.slice(1)]);
    const leaderText = prefixText > 0 ? [firstOfGroup(text.slice([0, 0, 0], [-1, prefixText, -1]))] : [];
    let prefix = tf.concat([firstOfGroup(imageAndRegions), ...leaderText], 1) as tf.Tensor3D;
    const choiceSelectionTensor = tf.tensor3d(choiceSelection, [rows, choiceLength, textLength]);
    let choices = matMul(choiceSelectionTensor, text) as tf.Tensor3D;
    for (const layer of this.layers) ({ prefix, choices } = layer.applyChoiceGroups(prefix, prefixBias, choices, groupOfRow, bias));
    const prefixOut = this.finalNorm.apply(prefix) as tf.Tensor3D;
    const choicesOut = this.finalNorm.apply(choices) as tf.Tensor3D;
    // Back to rows: every row gets its group's prefix states, and its own tokens at their places.
    const prefixRows = matMul(groupOfRow, prefixOut.reshape([groupCount, prefixLength * hidden])).reshape([rows, prefixLength, hidden]);
    let textOut = matMul(choiceSelectionTensor, choicesOut, true, false);
    if (prefixText > 0) {
      const placePrefix = new Float32Array(rows * textLength * prefixText);
      for (let row = 0; row < rows; row++) for (let t = 0; t < prefixOf(row); t++) placePrefix[(row * textLength + t) * prefixText + t] = 1;
      textOut = textOut.add(matMul(tf.tensor3d(placePrefix, [rows, textLength, prefixText]), prefixRows.slice([0, leadLength, 0], [-1, prefixText, -1])));
    }
    const sequence = tf.concat([prefixRows.slice([0, 0, 0], [-1, leadLength, -1]), textOut], 1) as tf.Tensor3D;
    if (!focus) return { sequence };
    const focusValues = focus.dataSync();
    const ownFocus = new Float32Array(rows * choiceLength);
    for (let row = 0; row < rows; row++) {
      for (let t = 0; t < textLength; t++) {
        if (focusValues[row * textLength + t] <= 0) continue;
        // A focus that reaches into the prefix (a choice cut off by truncation pools every token): pooled from the whole sequence.
        if (t < prefixOf(row)) return { sequence };
        ownFocus[row * choiceLength + t - prefixOf(row)] = focusValues[row * textLength + t];
      }
    }
    const pooled = maxOverTokens(choicesOut.add(tf.tensor2d(ownFocus.map((f) => (f > 0 ? 0 : -1e9)), [rows, choiceLength]).expandDims(2)) as tf.Tensor3D);
    return { sequence, pooled };
  }
}
