import * as tf from '@tensorflow/tfjs';
import { matMul } from '../ops/matmul.ts';
import type { SeededRandom } from '../../core/random.ts';
import { boxSineFeatures, dropout, FusionLayer, type Fusion, type FusionInputs, type FusionOutput } from './fusion.ts';
import { LayerNorm, Linear, ParameterModule, quickGelu } from './layers.ts';

/**
 * An object-centric fusion for answer classification (VQA, GQA): a transformer over image
 * tokens, object tokens, a question [CLS] and the question's words, then a read-out built for
 * the questions such a model is asked — not the mean of every token.
 *
 * Why each part (issue 28; the README's "perfect tokens" gate measured the single-stream
 * fusion at 62–65 on inputs that say everything):
 *  - **Object tokens**, one per box (bottom-up attention, Anderson et al. 2018), built as UNITER
 *    builds regions: LN(W·RoI feature) + LN(W·box geometry, raw and sine) + a type embedding.
 *    Without boxes the grid's cells are the objects, with learned 2-D positions.
 *  - **A question read-out**: the [CLS] state, not an average that drowns the words.
 *  - **Relevance with a sum**: K question-conditioned relevances σ(sₖᵢ) per object; their sums
 *    Σᵢ σ(sₖᵢ), read through soft bins at 0…8, are counts and existence. Softmax attention
 *    normalises counts away (Zhang et al. 2018), so it only selects (Σᵢ softmaxₖᵢ·oᵢ).
 *  - **A pair term** (Relation Networks, Santoro et al. 2017): g(oᵢ, oⱼ, their relative
 *    geometry, q) summed over pairs weighted by two relevances (the two objects a comparison
 *    names), and over every i against the anchor j (what is left of the anchor).
 *  - Trained **word embeddings** beside the encoder's text tokens: the encoder's embeddings of
 *    words it never saw in pretraining ("how", "many", plural shape names) are random vectors.
 *  - Input layer norms always (encoder tokens change scale across domains), dropout in training.
 */
export interface RelationalFusionConfig {
  imageDim: number;
  textDim: number;
  /** Dimension of region (object) features; imageDim when absent. */
  regionDim?: number;
  /** Image tokens per row (class token + grid): their learned positions. 0: no image tokens (objects only). */
  imageTokens: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  mlpRatio?: number;
  /** Size of the trained word table (index 0 is "any other word"); 0 trains none. */
  words?: number;
  /** Question-conditioned relevances per object (≥ 2: the pair term reads the first two). */
  relevances?: number;
  /** Question-conditioned relation channels between two objects (the relate step reads them). */
  relations?: number;
  /**
   * What each relevance reads the question from: `question`, the [CLS] state alone (one vector
   * for every relevance); `words`, its own attention over the question's word states, queried
   * from [CLS] (the find step of neural module networks), so "the circle" and "the red square"
   * of one comparison can be two different reads of the words; `slots`, one learned query token
   * per relevance in the transformer's sequence (as DETR's object queries), which attends to the
   * words, the objects and the other slots over every layer, so "the second-named object" can be
   * read as "the named object the first slot did not take".
   */
  relevanceFrom?: 'question' | 'words' | 'slots';
}

export const RELATIONAL_FUSION_DEFAULTS = { hidden: 64, layers: 2, heads: 4, mlpRatio: 4, relevances: 4, relations: 2, dropout: 0.1, relevanceFrom: 'question' } as const;

/**
 * Counts are read through Gaussian bins centred on 0…COUNT_BINS-1, half a count wide. Bins one
 * count wide with the raw counts beside them were measured worse on gate A (77.5 against 87.9,
 * existence 57.0 against 92.3; docs/results.md), though half-count bins pass little gradient to a
 * count that starts two away (exp(-2·2²) ≈ 3e-4).
 */
const COUNT_BINS = 9;
const COUNT_BIN_SHARPNESS = 2;
/** Relative geometry of a pair: dx, dy of the centres, |dx|, |dy|, log width and height ratios. */
const PAIR_GEOMETRY = 6;

/** Kernel std 1/√fan-in for the read-out's layers: at BERT's 0.02 a stack of them starts near zero, and the relevances, counts and pair terms waited for it to grow. */
const scaled = (inputDim: number) => 1 / Math.sqrt(inputDim);

export class RelationalFusion extends ParameterModule implements Fusion {
  readonly hidden: number;
  readonly imageDim: number;
  readonly textDim: number;
  readonly regionDim: number;
  private readonly imageTokenCount: number;
  private readonly relevanceCount: number;
  private readonly imageNorm: LayerNorm;
  private readonly regionNorm: LayerNorm;
  private readonly textNorm: LayerNorm;
  private readonly imageProjection: Linear;
  private readonly regionProjection: Linear;
  private readonly regionProjectionNorm: LayerNorm;
  private readonly geometryProjection: Linear;
  private readonly geometryNorm: LayerNorm;
  private readonly textProjection: Linear;
  private readonly imagePositions?: tf.Variable;
  private readonly typeEmbeddings: tf.Variable;
  private readonly questionToken: tf.Variable;
  private readonly wordTable?: tf.Variable;
  private readonly wordCount: number;
  private readonly layers: FusionLayer[];
  private readonly finalNorm: LayerNorm;
  private readonly relevanceObject: Linear;
  private readonly relevanceQuestion: Linear;
  private readonly relevanceOut: Linear;
  private readonly wordQuery?: Linear;
  private readonly wordKey?: Linear;
  private readonly slotTokens?: tf.Variable;
  private readonly relevanceObjectProduct: Linear;
  private readonly relevanceQuestionProduct: Linear;
  private readonly countProjection: Linear;
  private readonly pairFirst: Linear;
  private readonly pairSecond: Linear;
  private readonly pairGeometry: Linear;
  private readonly pairQuestion: Linear;
  private readonly pairOut: Linear;
  private readonly relationOut?: Linear;
  private readonly readoutIn: Linear;
  private readonly readoutOut: Linear;
  private readonly readoutNorm: LayerNorm;

  constructor(config: RelationalFusionConfig, rng: SeededRandom, scope = 'relational_fusion') {
    super(scope, rng);
    const hidden = config.hidden ?? RELATIONAL_FUSION_DEFAULTS.hidden;
    const heads = config.heads ?? RELATIONAL_FUSION_DEFAULTS.heads;
    const layers = config.layers ?? RELATIONAL_FUSION_DEFAULTS.layers;
    const mlpRatio = config.mlpRatio ?? RELATIONAL_FUSION_DEFAULTS.mlpRatio;
    const relevances = config.relevances ?? RELATIONAL_FUSION_DEFAULTS.relevances;
    const regionDim = config.regionDim ?? config.imageDim;
    for (const [name, value] of Object.entries({ imageDim: config.imageDim, textDim: config.textDim, regionDim, hidden, heads, mlpRatio })) {
      if (!Number.isInteger(value) || value < 1) throw new Error(`RelationalFusion: ${name} must be a positive integer, got ${value}`);
    }
    if (!Number.isInteger(layers) || layers < 0) throw new Error(`RelationalFusion: layers must be an integer ≥ 0, got ${layers}`);
    if (hidden % heads !== 0) throw new Error(`RelationalFusion: hidden ${hidden} is not divisible by ${heads} heads`);
    if (!Number.isInteger(relevances) || relevances < 2) throw new Error(`RelationalFusion: relevances must be an integer ≥ 2, got ${relevances}`);
    this.hidden = hidden;
    this.imageDim = config.imageDim;
    this.textDim = config.textDim;
    this.regionDim = regionDim;
    this.imageTokenCount = config.imageTokens;
    this.relevanceCount = relevances;
    this.wordCount = config.words ?? 0;
    this.imageNorm = new LayerNorm(this.params, 'image_input_norm', config.imageDim);
    this.regionNorm = new LayerNorm(this.params, 'region_input_norm', regionDim);
    this.textNorm = new LayerNorm(this.params, 'text_input_norm', config.textDim);
    this.imageProjection = new Linear(this.params, 'image_projection', config.imageDim, hidden);
    this.regionProjection = new Linear(this.params, 'region_projection', regionDim, hidden);
    this.regionProjectionNorm = new LayerNorm(this.params, 'region_projection_norm', hidden);
    this.geometryProjection = new Linear(this.params, 'region_geometry', 7 + 32, hidden);
    this.geometryNorm = new LayerNorm(this.params, 'region_geometry_norm', hidden);
    this.textProjection = new Linear(this.params, 'text_projection', config.textDim, hidden);
    if (config.imageTokens > 0) this.imagePositions = this.params.normal('image_positions', [config.imageTokens, hidden], 0.1);
    this.typeEmbeddings = this.params.normal('type_embeddings', [3, hidden]);
    this.questionToken = this.params.normal('question_token', [1, hidden], 0.1);
    if (this.wordCount > 0) this.wordTable = this.params.normal('word_embeddings', [this.wordCount, hidden], 0.1);
    this.layers = Array.from({ length: layers }, (_, i) => new FusionLayer(this.params, `layer${i}`, hidden, heads, mlpRatio));
    this.finalNorm = new LayerNorm(this.params, 'final_norm', hidden);
    this.relevanceObject = new Linear(this.params, 'relevance/object', hidden, hidden, scaled(hidden));
    this.relevanceQuestion = new Linear(this.params, 'relevance/question', hidden, hidden, scaled(hidden));
    this.relevanceOut = new Linear(this.params, 'relevance/out', hidden, relevances, scaled(hidden));
    const relevanceFrom = config.relevanceFrom ?? RELATIONAL_FUSION_DEFAULTS.relevanceFrom;
    if (relevanceFrom !== 'question' && relevanceFrom !== 'words' && relevanceFrom !== 'slots') throw new Error(`RelationalFusion: relevanceFrom must be question, words or slots, got ${relevanceFrom}`);
    if (relevanceFrom === 'slots') this.slotTokens = this.params.normal('relevance/slot_tokens', [relevances, hidden], 0.1);
    if (relevanceFrom === 'words') {
      this.wordQuery = new Linear(this.params, 'relevance/word_query', hidden, relevances * hidden, scaled(hidden));
      this.wordKey = new Linear(this.params, 'relevance/word_key', hidden, hidden, scaled(hidden));
    }
    this.relevanceObjectProduct = new Linear(this.params, 'relevance/object_product', hidden, hidden, scaled(hidden));
    this.relevanceQuestionProduct = new Linear(this.params, 'relevance/question_product', hidden, hidden, scaled(hidden));
    this.countProjection = new Linear(this.params, 'count_projection', relevances * COUNT_BINS, hidden, scaled(relevances * COUNT_BINS));
    this.pairFirst = new Linear(this.params, 'pair/first', hidden, hidden, scaled(hidden));
    this.pairSecond = new Linear(this.params, 'pair/second', hidden, hidden, scaled(hidden));
    this.pairGeometry = new Linear(this.params, 'pair/geometry', PAIR_GEOMETRY, hidden, scaled(PAIR_GEOMETRY));
    this.pairQuestion = new Linear(this.params, 'pair/question', hidden, hidden, scaled(hidden));
    this.pairOut = new Linear(this.params, 'pair/out', hidden, hidden, scaled(hidden));
    const relations = config.relations ?? RELATIONAL_FUSION_DEFAULTS.relations;
    if (!Number.isInteger(relations) || relations < 0) throw new Error(`RelationalFusion: relations must be an integer ≥ 0, got ${relations}`);
    if (relations > 0) this.relationOut = new Linear(this.params, 'relation/out', hidden, relations, scaled(hidden));
    const readoutWidth = hidden * (1 + relevances) + hidden + 2 * hidden + relations * (hidden + 1);
    this.readoutIn = new Linear(this.params, 'readout/in', readoutWidth, 2 * hidden, scaled(readoutWidth));
    this.readoutOut = new Linear(this.params, 'readout/out', 2 * hidden, hidden, scaled(2 * hidden));
    this.readoutNorm = new LayerNorm(this.params, 'readout/norm', hidden);
  }

  apply(inputs: FusionInputs): FusionOutput {
    const { imageTokens, textTokens, textMask, regions } = inputs;
    const batch = textTokens.shape[0];
    if (textTokens.rank !== 3 || textTokens.shape[2] !== this.textDim) throw new Error(`relational fusion: text tokens ${JSON.stringify(textTokens.shape)}, expected [B, T, ${this.textDim}]`);
    const imageCount = imageTokens.shape[1];
    if (imageCount > 0 && (imageTokens.shape[0] !== batch || imageTokens.shape[2] !== this.imageDim || imageCount !== this.imageTokenCount)) {
      throw new Error(`relational fusion: image tokens ${JSON.stringify(imageTokens.shape)}, expected [${batch}, ${this.imageTokenCount}, ${this.imageDim}]`);
    }
    if (!regions && imageCount < 2) throw new Error('relational fusion: neither region tokens nor an image grid to read objects from');
    if (regions && regions.tokens.shape[2] !== this.regionDim) throw new Error(`relational fusion: region tokens of dimension ${regions.tokens.shape[2]}, expected ${this.regionDim}`);
    if (inputs.focus || inputs.tagRegions) throw new Error('relational fusion: choice focus and tag grounding belong to the multiple-choice fusion');
    const drop = inputs.dropout;
    return tf.tidy(() => {
      const typeRow = (index: number) => this.typeEmbeddings.slice([index, 0], [1, this.hidden]).reshape([1, 1, this.hidden]);
      const parts: tf.Tensor[] = [];
      const masks: tf.Tensor[] = [];
      if (imageCount > 0) {
        parts.push(this.imageProjection.apply(this.imageNorm.apply(imageTokens)).add(this.imagePositions!.expandDims(0)).add(typeRow(0)));
        masks.push(inputs.imageMask ?? tf.ones([batch, imageCount]));
      }
      // The objects the read-out reasons over: one per box, else the grid's cells (class token left out).
      let objectGeometry: tf.Tensor3D;
      let objectMask: tf.Tensor2D;
      let objectStart: number;
      let objectCount: number;
      if (regions) {
        const geometry = tf.concat([regions.geometry, boxSineFeatures(regions.geometry)], 2);
        const token = this.regionProjectionNorm.apply(this.regionProjection.apply(this.regionNorm.apply(regions.tokens))).add(this.geometryNorm.apply(this.geometryProjection.apply(geometry))).add(typeRow(2));
        objectStart = imageCount;
        objectCount = regions.tokens.shape[1];
        parts.push(token);
        masks.push(regions.mask);
        objectGeometry = regions.geometry;
        objectMask = regions.mask;
      } else {
        objectStart = 1;
        objectCount = imageCount - 1;
        objectGeometry = gridGeometry(objectCount, batch);
        objectMask = (inputs.imageMask ? inputs.imageMask.slice([0, 1], [-1, objectCount]) : tf.ones([batch, objectCount])) as tf.Tensor2D;
      }
      const questionStart = parts.reduce((n, p) => n + p.shape[1]!, 0);
      parts.push(this.questionToken.expandDims(0).tile([batch, 1, 1]).add(typeRow(1)));
      masks.push(tf.ones([batch, 1]));
      const slotCount = this.slotTokens ? this.relevanceCount : 0;
      if (this.slotTokens) {
        parts.push(this.slotTokens.expandDims(0).tile([batch, 1, 1]).add(typeRow(1)));
        masks.push(tf.ones([batch, slotCount]));
      }
      let text = this.textProjection.apply(this.textNorm.apply(textTokens)).add(typeRow(1));
      if (this.wordTable && inputs.textWords) {
        const length = textTokens.shape[1];
        // One-hot times the table rather than gather: gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks.
        const oneHot = tf.oneHot(inputs.textWords.reshape([batch * length]).toInt(), this.wordCount).toFloat() as tf.Tensor2D;
        text = text.add(matMul(oneHot, this.wordTable).reshape([batch, length, this.hidden]));
      }
      parts.push(text);
      masks.push(textMask);
      const mask = tf.concat(masks, 1).toFloat() as tf.Tensor2D;
      const keyBias = tf.sub(1, mask).mul(-1e9).reshape([batch, 1, 1, mask.shape[1]]) as tf.Tensor4D;
      let x = dropout(tf.concat(parts, 1), drop, 0) as tf.Tensor3D;
      this.layers.forEach((layer, i) => (x = layer.apply(x, keyBias, drop, i + 1)));
      const sequence = this.finalNorm.apply(x) as tf.Tensor3D;
      const question = sequence.slice([0, questionStart, 0], [-1, 1, -1]).reshape([batch, this.hidden]) as tf.Tensor2D;
      const objects = sequence.slice([0, objectStart, 0], [-1, objectCount, -1]) as tf.Tensor3D;
      const words = sequence.slice([0, questionStart + 1 + slotCount, 0], [-1, textTokens.shape[1], -1]) as tf.Tensor3D;
      const queries = slotCount > 0 ? (sequence.slice([0, questionStart + 1, 0], [-1, slotCount, -1]).add(question.expandDims(1)) as tf.Tensor3D) : this.relevanceQueries(question, words, textMask);
      const { pooled, selections } = this.readout(question, queries, objects, objectGeometry, objectMask, drop);
      return { pooled, sequence, mask, selections } as unknown as tf.TensorContainer;
    }) as unknown as FusionOutput;
  }

  /**
   * What the relevances read: [CLS] itself [B, H], one vector for all of them, or per relevance
   * [CLS] plus its own attention over the word states, [B, K, H] (relevanceFrom: words).
   */
  private relevanceQueries(question: tf.Tensor2D, words: tf.Tensor3D, textMask: tf.Tensor2D): tf.Tensor2D | tf.Tensor3D {
    const [batch, length] = words.shape;
    const k = this.relevanceCount;
    if (!this.wordQuery || !this.wordKey) return question;
    const queries = this.wordQuery.apply(question).reshape([batch, k, this.hidden]);
    const logits = matMul(queries, this.wordKey.apply(words), false, true).div(Math.sqrt(this.hidden));
    const absent = tf.sub(1, textMask.toFloat()).mul(-1e9).reshape([batch, 1, length]);
    const attention = tf.softmax(logits.add(absent));
    return matMul(attention, words).add(question.expandDims(1)) as tf.Tensor3D;
  }

  private readout(question: tf.Tensor2D, queries: tf.Tensor2D | tf.Tensor3D, objects: tf.Tensor3D, geometry: tf.Tensor3D, objectMask: tf.Tensor2D, drop: FusionInputs['dropout']): { pooled: tf.Tensor2D; selections: tf.Tensor3D } {
    const [batch, count] = objects.shape;
    const k = this.relevanceCount;
    // Relevance of each object to the question, K ways: [B, N, K].
    // A sum (then GELU) and a product (MLB, Kim et al. 2017) of object and question: "is this the
    // object the question names" is a match of attributes, one linear read-out of the product.
    // One question vector: one [B, N, H] match, read K ways. One per relevance: relevance k reads
    // only its own vector (the diagonal of the K×K read-out), at K times the work.
    let scores: tf.Tensor3D;
    if (queries.rank === 2) {
      const product = this.relevanceObjectProduct.apply(objects).mul(this.relevanceQuestionProduct.apply(queries).expandDims(1));
      scores = this.relevanceOut.apply(quickGelu(this.relevanceObject.apply(objects).add(this.relevanceQuestion.apply(queries).expandDims(1))).add(product)) as tf.Tensor3D;
    } else {
      const objectSum = this.relevanceObject.apply(objects).expandDims(2); // [B, N, 1, H]
      const questionSum = this.relevanceQuestion.apply(queries).expandDims(1); // [B, 1, K, H]
      const product = this.relevanceObjectProduct.apply(objects).expandDims(2).mul(this.relevanceQuestionProduct.apply(queries).expandDims(1));
      const combined = quickGelu(objectSum.add(questionSum)).add(product); // [B, N, K, H]
      const readoutPerRelevance = this.relevanceOut.kernel.transpose().reshape([1, 1, k, this.hidden]);
      scores = combined.mul(readoutPerRelevance).sum(3).add(this.relevanceOut.bias) as tf.Tensor3D;
    }
    const present = objectMask.expandDims(2);
    const relevance = tf.sigmoid(scores).mul(present) as tf.Tensor3D;
    // Counts: Σ σ, read through bins so "2" and "3" are different directions, not one scaled one.
    const counts = relevance.sum(1) as tf.Tensor2D;
    const centres = tf.range(0, COUNT_BINS).reshape([1, 1, COUNT_BINS]);
    const bins = tf.exp(counts.expandDims(2).sub(centres).square().mul(-COUNT_BIN_SHARPNESS)).reshape([batch, k * COUNT_BINS]);
    const countFeature = this.countProjection.apply(bins);
    // Selection: softmax over present objects, per relevance.
    const weights = tf.softmax(scores.add(tf.sub(1, present).mul(-1e9)).transpose([0, 2, 1])) as tf.Tensor3D;
    const selected = matMul(weights, objects).reshape([batch, k * this.hidden]);
    // Pairs (i, j), i ≠ j: g(oᵢ, oⱼ, geometry(i, j), q) → [B, N, N, H].
    const pairGeometry = relativeGeometry(geometry);
    const pairs = quickGelu(
      this.pairFirst.apply(objects).expandDims(2)
        .add(this.pairSecond.apply(objects).expandDims(1))
        .add(this.pairGeometry.apply(pairGeometry))
        .add(this.pairQuestion.apply(question).reshape([batch, 1, 1, this.hidden])),
    );
    const notSelf = tf.sub(1, tf.eye(count)).reshape([1, count, count]);
    const both = objectMask.expandDims(2).mul(objectMask.expandDims(1)).mul(notSelf);
    const first = relevance.slice([0, 0, 0], [-1, -1, 1]);
    const second = relevance.slice([0, 0, 1], [-1, -1, 1]).reshape([batch, 1, count]);
    // The two named objects, and everything against the anchor (the second relevance).
    const namedPairs = first.mul(second).mul(both) as tf.Tensor3D;
    const anchorPairs = second.mul(both) as tf.Tensor3D;
    const pairSum = (w: tf.Tensor3D) => this.pairOut.apply(pairs.mul(w.expandDims(3)).sum([1, 2]));
    const features = [question, selected, countFeature, pairSum(namedPairs), pairSum(anchorPairs)];
    if (this.relationOut) features.push(...this.relate(this.relationOut, pairs as tf.Tensor4D, weights, objects, objectMask, notSelf));
    const hiddenState = dropout(quickGelu(this.readoutIn.apply(tf.concat(features, 1))), drop, 97);
    return { pooled: this.readoutNorm.apply(this.readoutOut.apply(hiddenState).add(question)) as tf.Tensor2D, selections: weights };
  }

  /**
   * The relate step of neural module networks (Andreas et al. 2016), as two soft steps: a
   * question-conditioned relation score rᵢⱼ per pair and channel, read from the pair term's
   * hidden state (which saw both objects, their relative geometry and the question).
   *  - "What is left of the red circle?": the anchor is the second selection's softmax aⱼ;
   *    the related object is softmaxᵢ(Σⱼ aⱼ·rᵢⱼ), read out as a selection of object tokens.
   *  - "Is the red circle left of / bigger than the blue square?": Σᵢⱼ w⁰ᵢ·w¹ⱼ·rᵢⱼ over the
   *    first two selections' softmaxes — one number per channel, a yes/no.
   * Softmaxes pick one object each; the relevances' sigmoids (for counts) would let every
   * partly matching object vote.
   */
  private relate(relationOut: Linear, pairs: tf.Tensor4D, weights: tf.Tensor3D, objects: tf.Tensor3D, objectMask: tf.Tensor2D, notSelf: tf.Tensor): tf.Tensor2D[] {
    const [batch, count] = objects.shape;
    const scores = relationOut.apply(pairs) as tf.Tensor4D; // [B, Nᵢ, Nⱼ, R]
    const r = scores.shape[3];
    const first = weights.slice([0, 0, 0], [-1, 1, -1]).reshape([batch, count, 1, 1]);
    const anchor = weights.slice([0, 1, 0], [-1, 1, -1]).reshape([batch, 1, count, 1]);
    const offDiagonal = notSelf.reshape([1, count, count, 1]);
    const towardsAnchor = scores.mul(anchor).mul(offDiagonal).sum(2) as tf.Tensor3D; // [B, Nᵢ, R]
    const absent = tf.sub(1, objectMask).mul(-1e9).expandDims(2);
    const relatedWeights = tf.softmax(towardsAnchor.add(absent).transpose([0, 2, 1])) as tf.Tensor3D; // [B, R, N]
    const related = matMul(relatedWeights, objects).reshape([batch, r * this.hidden]) as tf.Tensor2D;
    const named = scores.mul(first).mul(anchor).mul(offDiagonal).sum([1, 2]) as tf.Tensor2D; // [B, R]
    return [related, named];
  }
}

/** UNITER geometry (x1, y1, x2, y2, w, h, w·h) of a square grid's cells, row-major, [B, N, 7]. */
function gridGeometry(cells: number, batch: number): tf.Tensor3D {
  const side = Math.round(Math.sqrt(cells));
  if (side * side !== cells) throw new Error(`relational fusion: ${cells} grid tokens are not a square grid`);
  const values = new Float32Array(cells * 7);
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const w = 1 / side;
      values.set([c * w, r * w, (c + 1) * w, (r + 1) * w, w, w, w * w], (r * side + c) * 7);
    }
  }
  return tf.tensor3d(values, [1, cells, 7]).tile([batch, 1, 1]) as tf.Tensor3D;
}

/** [B, N, 7] UNITER geometry → [B, N, N, 6]: for pair (i, j) the centre offsets (×4), their sizes and the log size ratios. */
function relativeGeometry(geometry: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const at = (i: number) => geometry.slice([0, 0, i], [-1, -1, 1]);
    const cx = at(0).add(at(2)).div(2);
    const cy = at(1).add(at(3)).div(2);
    const logW = tf.log(at(4).add(1e-3));
    const logH = tf.log(at(5).add(1e-3));
    const diff = (v: tf.Tensor) => v.expandDims(2).sub(v.expandDims(1));
    const dx = diff(cx).mul(4);
    const dy = diff(cy).mul(4);
    return tf.concat([dx, dy, dx.abs(), dy.abs(), diff(logW), diff(logH)], 3) as tf.Tensor4D;
  });
}
