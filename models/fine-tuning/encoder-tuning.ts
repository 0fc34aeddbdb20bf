import * as tf from '@tensorflow/tfjs';
import { clipParameterRole, embeddingLookup, type ClipModel, type ClipTowers } from '../encoders/clip.ts';
import type { ClipTokenizer } from '../encoders/clip-tokenizer.ts';
import type { AlignedEncoder } from '../encoders/aligned-encoder.ts';
import { extractImageStage, extractTextStage, FeatureTable } from '../features.ts';
import { matMul } from '../ops/matmul.ts';
import type { VariableOptions } from '../train.ts';
import { InputError } from '../../core/errors.ts';

/**
 * Fine-tuning the encoder itself: the last `trainBlocks` transformer blocks of each trained
 * tower (all of them, with the embeddings, for `all`) take gradients from every objective.
 *
 * Only what is frozen is cached. The input of a tower's first trainable block is computed
 * once per image and text (images through the on-disk FeatureCache, keyed by the model's
 * fingerprint and the boundary), and every step runs the trainable blocks on it inside the
 * gradient tape. With every block training, the cache holds what no weight touches: the
 * preprocessed pixels and the token ids. Rows that share an image (VCR: four per question)
 * run the image blocks once per unique image.
 */
export interface EncoderTuningSettings {
  /** Last N blocks of each trained tower, or 'all' (blocks and embeddings); 0 = frozen. */
  trainBlocks: number | 'all';
  towers: ClipTowers;
  /** Learning-rate multiplier of the encoder's variables next to the heads' (VILLA's lr_mul). */
  lrScale: number;
}

/**
 * train_blocks stays 0 (the frozen encoder) by default although source validation favours 2:
 * on SynthScenes VQA with the bundled CLIP (README, "Fine-tuning the encoder: what we
 * measured") 2 blocks beat 0 and 1 on source validation, but at 5-6× the training time, over
 * fewer seeds than the 3 the comparison asks for, and unmeasured on GQA, VCR and retrieval;
 * a default that slows every run waits for those. lr_scale 0.1 puts the
 * encoder at 1e-4 next to the heads' 1e-3, the usual order of magnitude between a pretrained
 * backbone and fresh heads (not tuned).
 */
export const ENCODER_TUNING_DEFAULTS: EncoderTuningSettings = { trainBlocks: 0, towers: 'both', lrScale: 0.1 };

/** Where a tower's trainable computation starts: the stage the cache holds. */
export type TowerStart = { stage: 'input' } | { stage: 'block'; index: number };

export function tuningEnabled(settings: EncoderTuningSettings): boolean {
  return settings.trainBlocks === 'all' || settings.trainBlocks > 0;
}

/** Per-row tensors the fusion problem reads from a training encoder. */
export interface EncodedImages {
  /** Tokens on the fusion's (pooled) grid [rows, 1 + P', Dv], as the frozen table would hold them. */
  fusionTokens: tf.Tensor3D;
  /** The tower's output patch grid at full resolution [rows, 1 + P, Dv] (token 0 the class token). */
  gridTokens: tf.Tensor3D;
  /** The projected pooled image features [rows, projection_dim]. */
  embeds: tf.Tensor2D;
}

/** Additive perturbations of a batch at the start of the trainable part (input embeddings or first trainable block's input), one per row. */
export interface EncoderPerturbation {
  image?: tf.Tensor;
  text?: tf.Tensor;
}

/** What FusionTraining needs from an encoder whose blocks train (absent: the frozen tables serve). */
export interface TrainableTokens {
  readonly trainsImages: boolean;
  readonly trainsTexts: boolean;
  /** The full-resolution patch grid of the vision tower (for scene-graph regions). */
  readonly fullGrid: { rows: number; cols: number; offset: number };
  /** Width of the grid tokens and of the pooled image features. */
  readonly gridDim: number;
  readonly embedDim: number;
  images(keys: readonly string[], delta?: tf.Tensor): EncodedImages;
  texts(keys: readonly string[], length: number, delta?: tf.Tensor): tf.Tensor3D;
  textEmbeds(keys: readonly string[], length: number): tf.Tensor2D;
  /** Shapes of δ at the trainable start for these rows (the trained towers only). */
  perturbationShapes(imageKeys: readonly string[], textKeys: readonly string[], length: number): { image: number[]; text: number[] };
  /** Per-row L2 norms of the clean values at the trainable start, which a relative perturbation step scales by. */
  referenceNorms(imageKeys: readonly string[], textKeys: readonly string[], length: number): { image: number[]; text: number[] };
}

export class EncoderTuning implements TrainableTokens {
  readonly trainsImages: boolean;
  readonly trainsTexts: boolean;
  readonly fullGrid: { rows: number; cols: number; offset: number };
  readonly gridDim: number;
  readonly embedDim: number;
  private readonly poolMatrix?: tf.Tensor2D;

  private constructor(
    readonly model: ClipModel,
    readonly settings: EncoderTuningSettings,
    private readonly starts: { vision: TowerStart | null; text: TowerStart | null },
    private readonly imageStage: FeatureTable | null,
    private readonly textStage: { table: FeatureTable; eosPositions: Int32Array; keys: string[] } | null,
    readonly imagePool: number,
    private readonly tokenIdsOf: (text: string) => number[],
  ) {
    this.trainsImages = starts.vision !== null;
    this.trainsTexts = starts.text !== null;
    const side = model.config.vision.image_size / model.config.vision.patch_size;
    this.fullGrid = { rows: side, cols: side, offset: 1 };
    this.gridDim = model.config.vision.hidden_size;
    this.embedDim = model.config.projectionDim;
    if (imagePool > 1) this.poolMatrix = gridPoolingMatrix(side, imagePool);
  }

  /**
   * Opens the encoder's blocks by the settings, computes the frozen stage of every image and
   * text, and returns the tuning.
   */
  static async prepare(
    encoder: AlignedEncoder & { model: ClipModel; tokenizer: ClipTokenizer },
    settings: EncoderTuningSettings,
    data: { imageKeys: readonly string[]; texts: readonly string[]; imagePool: number; cacheRoot?: string },
  ): Promise<EncoderTuning> {
    const { model } = encoder;
    const { vision, text } = model.config;
    const all = settings.trainBlocks === 'all';
    for (const [name, layers] of [['vision', vision.num_hidden_layers], ['text', text.num_hidden_layers]] as const) {
      if (!all && (settings.trainBlocks as number) > layers && (settings.towers === 'both' || settings.towers === name)) {
        throw new InputError(`--set encoder.train_blocks=${settings.trainBlocks} exceeds the ${name} tower's ${layers} blocks; use ${layers} or all`, { field: 'encoder.train_blocks' });
      }
    }
    const blocks = all ? Math.max(vision.num_hidden_layers, text.num_hidden_layers) : (settings.trainBlocks as number);
    model.setFreezePolicy({ lastBlocks: blocks, towers: settings.towers, embeddings: all });
    const startOf = (layers: number, trained: boolean): TowerStart | null => (!trained ? null : all ? { stage: 'input' } : { stage: 'block', index: layers - blocks });
    const starts = {
      vision: startOf(vision.num_hidden_layers, settings.towers !== 'text'),
      text: startOf(text.num_hidden_layers, settings.towers !== 'vision'),
    };
    let imageStage: FeatureTable | null = null;
    if (starts.vision) {
      const start = starts.vision;
      // The blocks' tokens: CLIP's class token and patches; SigLIP has no class token.
      const tokens = (model.isSiglip ? 0 : 1) + (vision.image_size / vision.patch_size) ** 2;
      const stage =
        start.stage === 'input'
          ? { kind: 'pixels', tokenCount: 3, tokenDim: vision.image_size * vision.image_size, encode: async (pixels: Float32Array) => pixels }
          : {
              kind: `vision-block-input-${start.index}`,
              tokenCount: tokens,
              tokenDim: vision.hidden_size,
              encode: async (pixels: Float32Array, shape: readonly [number, 3, number, number]) => {
                const out = tf.tidy(() => model.imageBlocks(model.imageBlockInput(model.imagePatchEmbeddings(tf.tensor4d(pixels, [...shape]))), 0, start.index));
                try {
                  return (await out.data()) as Float32Array;
                } finally {
                  out.dispose();
                }
              },
            };
      imageStage = (await extractImageStage(encoder, data.imageKeys, stage, { cacheRoot: data.cacheRoot })).table;
    }
    let textStage: { table: FeatureTable; eosPositions: Int32Array; keys: string[] } | null = null;
    if (starts.text) {
      const start = starts.text;
      textStage = await extractTextStage(data.texts, {
        kind: start.stage === 'input' ? 'token-ids' : `text-block-input-${start.index}`,
        tokenDim: start.stage === 'input' ? 1 : text.hidden_size,
        encode: async (texts) => {
          const batch = encoder.tokenizer.encode(texts, 'longest');
          const eosPositions = model.eosPositions(batch);
          if (start.stage === 'input') return { values: Float32Array.from(batch.inputIds), length: batch.length, attentionMask: batch.attentionMask, eosPositions };
          const out = tf.tidy(() => model.textBlocks(model.textBlockInput(model.textWordEmbeddings(batch)), batch.attentionMask, 0, start.index));
          try {
            return { values: (await out.data()) as Float32Array, length: batch.length, attentionMask: batch.attentionMask, eosPositions };
          } finally {
            out.dispose();
          }
        },
      });
    }
    return new EncoderTuning(model, settings, starts, imageStage, textStage, data.imagePool, (text) => encoder.textTokenIds(text));
  }

  /** Shape tables for the fusion (token counts, dims, masks) where the trained towers give no cached values. */
  fusionTables(frozen: { images?: FeatureTable; texts?: FeatureTable }, imageKeys: readonly string[]): { images: FeatureTable; texts: FeatureTable } {
    const { vision, text, projectionDim } = this.model.config;
    const side = this.fullGrid.rows / this.imagePool;
    const images = this.trainsImages ? FeatureTable.shapeOnly(1 + side * side, vision.hidden_size, projectionDim, imageKeys) : frozen.images!;
    const stage = this.textStage?.table;
    // The shape table keeps the tokenizer, as extractTextFeatures' tables do (VCR grounds tags token by token).
    const texts = stage ? Object.assign(FeatureTable.shapeOnly(stage.tokenCount, text.hidden_size, projectionDim, this.textStage!.keys, stage.masks), { textTokenIds: this.tokenIdsOf }) : frozen.texts!;
    return { images, texts };
  }

  /** The encoder's variables by checkpoint name (`encoder/<HF name>`). */
  namedVariables(): Map<string, tf.Variable> {
    return new Map([...this.model.trainableParameters()].map(([name, variable]) => [`encoder/${name}`, variable]));
  }

  /** lr_scale on every encoder variable; weight decay only on weights (open_clip's rule, by role). */
  variableOptions(): Map<string, VariableOptions> {
    return new Map([...this.model.trainableParameters().keys()].map((name) => [`encoder/${name}`, { learningRateScale: this.settings.lrScale, weightDecay: clipParameterRole(name) === 'weight' }]));
  }

  /** Runs the trainable image blocks once per unique image and hands each row its image's outputs. */
  images(keys: readonly string[], delta?: tf.Tensor): EncodedImages {
    const start = this.starts.vision;
    if (!start || !this.imageStage) throw new Error('EncoderTuning: the vision tower does not train');
    return tf.tidy(() => {
      // A per-row perturbation makes every row its own input: no sharing then.
      const unique = delta ? [...keys] : [...new Set(keys)];
      const stage = this.imageStage!;
      const values = tf.tensor(stage.gatherTokens(unique), [unique.length, stage.tokenCount, stage.tokenDim]);
      const x = this.imageBlockInputs(values, start, delta);
      const out = this.model.imageOutputs(this.model.imageBlocks(x, start.stage === 'block' ? start.index : 0));
      const rowsOf = (t: tf.Tensor): tf.Tensor => (delta || unique.length === keys.length ? t : gatherRows(t, unique, keys));
      const grid = rowsOf(out.tokens) as tf.Tensor3D;
      return { gridTokens: grid, fusionTokens: this.poolGrid(grid), embeds: rowsOf(out.embeds) as tf.Tensor2D };
    });
  }

  private imageBlockInputs(values: tf.Tensor, start: TowerStart, delta?: tf.Tensor): tf.Tensor3D {
    const { vision } = this.model.config;
    if (start.stage === 'block') return (delta ? values.add(delta) : values) as tf.Tensor3D;
    const pixels = values.reshape([values.shape[0], 3, vision.image_size, vision.image_size]) as tf.Tensor4D;
    const patches = this.model.imagePatchEmbeddings(pixels);
    return this.model.imageBlockInput(delta ? (patches.add(delta) as tf.Tensor3D) : patches);
  }

  texts(keys: readonly string[], length: number, delta?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => this.textTower(keys, length, delta).tokens);
  }

  /** The projected pooled (EOS) text features [rows, projection_dim], as get_text_features gives them. */
  textEmbeds(keys: readonly string[], length: number): tf.Tensor2D {
    return tf.tidy(() => this.textTower(keys, length).embeds);
  }

  private textTower(keys: readonly string[], wanted: number, wantedDelta?: tf.Tensor): { tokens: tf.Tensor3D; embeds: tf.Tensor2D } {
    const start = this.starts.text;
    if (!start || !this.textStage) throw new Error('EncoderTuning: the text tower does not train');
    const { table, eosPositions } = this.textStage;
    // SigLIP attends over padding and pools the last position: it always runs at max_length (the
    // cached rows hold it, pad ids included); the tokens handed on are cut back to `wanted`.
    const length = this.model.isSiglip ? Math.max(wanted, Math.min(this.model.config.text.max_position_embeddings, table.tokenCount)) : wanted;
    const delta = wantedDelta && length > wanted ? wantedDelta.pad([[0, 0], [0, length - wanted], [0, 0]]) : wantedDelta;
    const mask = Int32Array.from(table.gatherMasks(keys, length));
    const eos = Int32Array.from(keys.map((key) => Math.min(eosPositions[table.row(key)], length - 1)));
    return tf.tidy(() => {
      let x: tf.Tensor3D;
      if (start.stage === 'block') {
        x = tf.tensor3d(table.gatherTokens(keys, length), [keys.length, length, table.tokenDim]);
        if (delta) x = x.add(delta) as tf.Tensor3D;
      } else {
        const ids = Int32Array.from(table.gatherTokens(keys, length));
        // Padding positions hold id 0 in the table; they are masked out of attention and pooling.
        let words = this.model.textWordEmbeddings({ inputIds: ids, attentionMask: mask, batch: keys.length, length });
        if (delta) words = words.add(delta) as tf.Tensor3D;
        x = this.model.textBlockInput(words);
      }
      const out = this.model.textOutputs(this.model.textBlocks(x, mask, start.stage === 'block' ? start.index : 0), eos);
      const tokens = length > wanted ? (out.tokens.slice([0, 0, 0], [keys.length, wanted, out.tokens.shape[2]]) as tf.Tensor3D) : out.tokens;
      return { tokens, embeds: out.embeds };
    });
  }

  perturbationShapes(imageKeys: readonly string[], textKeys: readonly string[], length: number): { image: number[]; text: number[] } {
    const { vision, text } = this.model.config;
    const patches = (vision.image_size / vision.patch_size) ** 2;
    const imageTokens = this.starts.vision?.stage === 'input' || this.model.isSiglip ? patches : 1 + patches;
    return { image: [imageKeys.length, imageTokens, vision.hidden_size], text: [textKeys.length, length, text.hidden_size] };
  }

  referenceNorms(imageKeys: readonly string[], textKeys: readonly string[], length: number): { image: number[]; text: number[] } {
    const norms = (x: tf.Tensor): number[] => {
      const n = tf.tidy(() => x.reshape([x.shape[0], -1]).square().sum(1).sqrt());
      const values = Array.from(n.dataSync());
      tf.dispose([n, x]);
      return values;
    };
    const image = this.starts.vision
      ? norms(
          tf.tidy(() => {
            const stage = this.imageStage!;
            const values = tf.tensor(stage.gatherTokens(imageKeys), [imageKeys.length, stage.tokenCount, stage.tokenDim]);
            if (this.starts.vision!.stage === 'block') return values;
            return this.model.imagePatchEmbeddings(values.reshape([imageKeys.length, 3, this.model.config.vision.image_size, this.model.config.vision.image_size]) as tf.Tensor4D);
          }),
        )
      : [];
    const text = this.starts.text
      ? norms(
          tf.tidy(() => {
            const { table } = this.textStage!;
            if (this.starts.text!.stage === 'block') return tf.tensor3d(table.gatherTokens(textKeys, length), [textKeys.length, length, table.tokenDim]);
            const mask = Int32Array.from(table.gatherMasks(textKeys, length));
            const words = this.model.textWordEmbeddings({ inputIds: Int32Array.from(table.gatherTokens(textKeys, length)), attentionMask: mask, batch: textKeys.length, length });
            return words.mul(tf.tensor3d(Float32Array.from(mask), [textKeys.length, length, 1]));
          }),
        )
      : [];
    return { image, text };
  }

  /** Average-pools the patch grid by imagePool × imagePool, class token kept (as poolImageTokenGrid does on cached rows), differentiably. */
  private poolGrid(tokens: tf.Tensor3D): tf.Tensor3D {
    if (!this.poolMatrix) return tokens;
    const [n, count, dim] = tokens.shape;
    const pooled = this.poolMatrix.shape[0];
    const flat = tokens.transpose([0, 2, 1]).reshape([n * dim, count]);
    return matMul(flat, this.poolMatrix, false, true).reshape([n, dim, pooled]).transpose([0, 2, 1]) as tf.Tensor3D;
  }

  dispose(): void {
    this.poolMatrix?.dispose();
  }
}

/** [1 + (side/f)², 1 + side²]: row 0 keeps the class token, each pooled cell averages its f×f patches. */
function gridPoolingMatrix(side: number, factor: number): tf.Tensor2D {
  if (side % factor !== 0) throw new InputError(`--set fusion.image_pool=${factor} does not divide the encoder's ${side}×${side} patch grid`);
  const pooledSide = side / factor;
  const rows = 1 + pooledSide * pooledSide;
  const cols = 1 + side * side;
  const values = new Float32Array(rows * cols);
  values[0] = 1;
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const cell = 1 + Math.floor(r / factor) * pooledSide + Math.floor(c / factor);
      values[cell * cols + 1 + r * side + c] = 1 / (factor * factor);
    }
  }
  return tf.tensor2d(values, [rows, cols]);
}

/** Rows of `t` (one per unique key) laid out per row key, with a gradient that sums over repeats (embeddingLookup's scatter). */
function gatherRows(t: tf.Tensor, unique: readonly string[], keys: readonly string[]): tf.Tensor {
  const index = new Map(unique.map((key, i) => [key, i]));
  const flat = t.reshape([t.shape[0], -1]) as tf.Tensor2D;
  const picked = embeddingLookup(flat, tf.tensor1d(keys.map((key) => index.get(key)!), 'int32'));
  return picked.reshape([keys.length, ...t.shape.slice(1)]);
}
