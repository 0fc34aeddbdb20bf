import { mkdir, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError, listSome } from '../../core/errors.ts';
import type { SeededRandom } from '../../core/random.ts';
import { clipConfigToJson, readClipConfig, siglipTextProjectionSize, type ClipConfig, type ClipTextConfig } from './clip-config.ts';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.ts';
import { fusedLayerNorm, fusedQuickGelu, fusedRowKernelsActive, transposedProductsAreFree } from '../backends/wasm-blas.ts';
import { writeFileAtomically } from '../../core/atomic-write.ts';

/**
 * CLIP (Radford et al. 2021) in tfjs, parameter for parameter the Hugging Face
 * `CLIPModel`, and SigLIP (Zhai et al. 2023) as HF's `SiglipModel` when the config says
 * model_type "siglip" (see `ClipConfig.family`): the same names, the same shapes (torch Linear weights stay [out, in], the
 * patch embedding stays a [hidden, 3, p, p] conv kernel), the same arithmetic. So a real
 * `openai/clip-vit-base-patch32` model.safetensors loads unchanged and a trained model
 * saves back to a folder Hugging Face (and our ONNX export script) reads.
 *
 * Every weight is a tf.Variable and the forward passes read them directly, so a training
 * loop can call `imageForward` / `textForward` inside `tf.grad` or `optimizer.minimize`,
 * passing `trainableVariables()` as the variable list.
 */

/**
 * Which weights a fine-tuning run may change: nothing, everything, or the last `lastBlocks`
 * blocks of each tower named by `towers` (default both), with what follows them, and with
 * `embeddings` also what precedes the blocks (embeddings, the vision pre-layernorm).
 */
export type FreezePolicy = 'frozen' | 'all' | { lastBlocks: number; towers?: ClipTowers; embeddings?: boolean };

export type ClipTowers = 'both' | 'vision' | 'text';

/** What a CLIP parameter is, by its Hugging Face name: decides weight decay (open_clip exempts all but weights). */
export type ClipParameterRole = 'weight' | 'bias' | 'norm' | 'embedding' | 'logit_scale' | 'logit_bias';

/**
 * The role of a parameter by name, not by rank: CLIP's position embeddings are 2-D like a
 * weight, its class embedding 1-D like a bias. The patch embedding's conv kernel is the
 * linear map of flattened patches to the hidden size, so it is a weight and decays.
 */
export function clipParameterRole(name: string): ClipParameterRole {
  if (name === 'logit_scale') return 'logit_scale';
  if (name === 'logit_bias') return 'logit_bias';
  if (/layer_?norm|layrnorm/.test(name)) return 'norm';
  if (name.endsWith('.bias')) return 'bias';
  if (/embeddings\.(token_embedding|position_embedding)\.weight$|embeddings\.class_embedding$|head\.probe$/.test(name)) return 'embedding';
  return 'weight';
}

/** Token ids and attention mask for a batch of texts, row-major [batch, length]. */
export interface TokenBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batch: number;
  length: number;
}

// A type, not an interface, so it is a tf.TensorContainer that tf.tidy may return.
export type TowerOutput = {
  /** HF's last_hidden_state: vision, encoder output before post_layernorm [N, 1+P, Dv];
   *  text, after final_layer_norm [N, T, Dt]. */
  tokens: tf.Tensor3D;
  /** HF's pooler_output: vision, post_layernorm of the class token; text, the EOS token.
   *  SigLIP: vision, the attention-pooling head's output; text, the last position through text_model.head. */
  pooled: tf.Tensor2D;
  /** The projection of `pooled`, before L2 normalisation (HF's get_*_features). */
  embeds: tf.Tensor2D;
}

/** Buffers HF checkpoints may carry that are not parameters (int64 arange position ids). */
const IGNORED_BUFFERS = ['text_model.embeddings.position_ids', 'vision_model.embeddings.position_ids'];

/** Name → shape of every parameter of a CLIPModel with this config, in HF's order. */
export function clipParameterShapes(config: ClipConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const { text, vision, projectionDim } = config;
  const siglip = config.family === 'siglip';
  const addTower = (prefix: string, hidden: number, intermediate: number, layers: number) => {
    for (let i = 0; i < layers; i++) {
      const layer = `${prefix}.encoder.layers.${i}`;
      for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) {
        shapes.set(`${layer}.self_attn.${proj}.weight`, [hidden, hidden]);
        shapes.set(`${layer}.self_attn.${proj}.bias`, [hidden]);
      }
      shapes.set(`${layer}.layer_norm1.weight`, [hidden]);
      shapes.set(`${layer}.layer_norm1.bias`, [hidden]);
      shapes.set(`${layer}.mlp.fc1.weight`, [intermediate, hidden]);
      shapes.set(`${layer}.mlp.fc1.bias`, [intermediate]);
      shapes.set(`${layer}.mlp.fc2.weight`, [hidden, intermediate]);
      shapes.set(`${layer}.mlp.fc2.bias`, [hidden]);
      shapes.set(`${layer}.layer_norm2.weight`, [hidden]);
      shapes.set(`${layer}.layer_norm2.bias`, [hidden]);
    }
  };
  shapes.set('text_model.embeddings.token_embedding.weight', [text.vocab_size, text.hidden_size]);
  shapes.set('text_model.embeddings.position_embedding.weight', [text.max_position_embeddings, text.hidden_size]);
  addTower('text_model', text.hidden_size, text.intermediate_size, text.num_hidden_layers);
  shapes.set('text_model.final_layer_norm.weight', [text.hidden_size]);
  shapes.set('text_model.final_layer_norm.bias', [text.hidden_size]);
  const patches = (vision.image_size / vision.patch_size) ** 2;
  if (siglip) {
    const proj = siglipTextProjectionSize(config);
    const hidden = vision.hidden_size;
    shapes.set('text_model.head.weight', [proj, text.hidden_size]);
    shapes.set('text_model.head.bias', [proj]);
    shapes.set('vision_model.embeddings.patch_embedding.weight', [hidden, vision.num_channels, vision.patch_size, vision.patch_size]);
    shapes.set('vision_model.embeddings.patch_embedding.bias', [hidden]);
    shapes.set('vision_model.embeddings.position_embedding.weight', [patches, hidden]);
    addTower('vision_model', hidden, vision.intermediate_size, vision.num_hidden_layers);
    shapes.set('vision_model.post_layernorm.weight', [hidden]);
    shapes.set('vision_model.post_layernorm.bias', [hidden]);
    // big_vision's MAP head: one learned probe, torch nn.MultiheadAttention (q, k, v packed in in_proj), then a residual MLP.
    shapes.set('vision_model.head.probe', [1, 1, hidden]);
    shapes.set('vision_model.head.attention.in_proj_weight', [3 * hidden, hidden]);
    shapes.set('vision_model.head.attention.in_proj_bias', [3 * hidden]);
    shapes.set('vision_model.head.attention.out_proj.weight', [hidden, hidden]);
    shapes.set('vision_model.head.attention.out_proj.bias', [hidden]);
    shapes.set('vision_model.head.layernorm.weight', [hidden]);
    shapes.set('vision_model.head.layernorm.bias', [hidden]);
    shapes.set('vision_model.head.mlp.fc1.weight', [vision.intermediate_size, hidden]);
    shapes.set('vision_model.head.mlp.fc1.bias', [vision.intermediate_size]);
    shapes.set('vision_model.head.mlp.fc2.weight', [hidden, vision.intermediate_size]);
    shapes.set('vision_model.head.mlp.fc2.bias', [hidden]);
    shapes.set('logit_scale', [1]);
    shapes.set('logit_bias', [1]);
    return shapes;
  }
  shapes.set('vision_model.embeddings.class_embedding', [vision.hidden_size]);
  shapes.set('vision_model.embeddings.patch_embedding.weight', [vision.hidden_size, vision.num_channels, vision.patch_size, vision.patch_size]);
  shapes.set('vision_model.embeddings.position_embedding.weight', [patches + 1, vision.hidden_size]);
  shapes.set('vision_model.pre_layrnorm.weight', [vision.hidden_size]);
  shapes.set('vision_model.pre_layrnorm.bias', [vision.hidden_size]);
  addTower('vision_model', vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers);
  shapes.set('vision_model.post_layernorm.weight', [vision.hidden_size]);
  shapes.set('vision_model.post_layernorm.bias', [vision.hidden_size]);
  shapes.set('visual_projection.weight', [projectionDim, vision.hidden_size]);
  shapes.set('text_projection.weight', [projectionDim, text.hidden_size]);
  shapes.set('logit_scale', []);
  return shapes;
}

/**
 * Fresh weights with Hugging Face's CLIPPreTrainedModel._init_weights (initializer_factor 1):
 * normal embeddings (σ 0.02; class token σ D^-½), attention in-projections σ D^-½·(2L)^-½,
 * out-projection σ D^-½, fc1 σ (2D)^-½, fc2 like the in-projections, projections σ D^-½,
 * layer norms 1/0, biases 0, logit_scale = logit_scale_init_value.
 */
export function initialClipWeights(config: ClipConfig, random: SeededRandom): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  const normal = (count: number, std: number) => {
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = random.normal() * std;
    return data;
  };
  for (const [name, shape] of clipParameterShapes(config)) {
    const count = shape.reduce((a, b) => a * b, 1);
    const tower = name.startsWith('text_model') || name === 'text_projection.weight' ? config.text : config.vision;
    const hidden = tower.hidden_size;
    const inProjStd = hidden ** -0.5 * (2 * tower.num_hidden_layers) ** -0.5;
    let data: Float32Array;
    if (name === 'logit_scale') data = Float32Array.of(config.logitScaleInit);
    else if (name === 'logit_bias') data = Float32Array.of(config.logitBiasInit ?? 0);
    else if (/layer_?norm|layrnorm/.test(name)) data = new Float32Array(count).fill(name.endsWith('.weight') ? 1 : 0);
    else if (name.endsWith('.bias')) data = new Float32Array(count);
    else if (name.endsWith('embeddings.class_embedding')) data = normal(count, hidden ** -0.5);
    else if (name.includes('embeddings.')) data = normal(count, 0.02);
    else if (/[qkv]_proj\.weight$/.test(name) || name.endsWith('fc2.weight')) data = normal(count, inProjStd);
    else if (name.endsWith('out_proj.weight')) data = normal(count, hidden ** -0.5);
    else if (name.endsWith('fc1.weight')) data = normal(count, (2 * hidden) ** -0.5);
    else if (name.endsWith('_projection.weight') || name === 'text_model.head.weight' || name.endsWith('head.probe') || name.endsWith('in_proj_weight')) data = normal(count, hidden ** -0.5);
    else if (name.endsWith('in_proj_bias')) data = new Float32Array(count);
    else throw new Error(`no initialiser for ${name}`);
    out.set(name, { shape, data });
  }
  return out;
}

/**
 * Refuses a missing, unknown or mis-shaped tensor by name (`source` names the file), before
 * any value is read: a checkpoint's header alone can be checked against a config.
 */
export function checkClipTensors(config: ClipConfig, shapes: Map<string, readonly number[]>, source: string): void {
  const expected = clipParameterShapes(config);
  const missing = [...expected.keys()].filter((name) => !shapes.has(name));
  if (missing.length) throw new InputError(`checkpoint lacks ${listSome(missing)} tensor(s) that this config.json needs`, { file: source, record: missing[0] });
  const unknown = [...shapes.keys()].filter((name) => !expected.has(name) && !IGNORED_BUFFERS.includes(name));
  if (unknown.length) throw new InputError(`checkpoint has ${listSome(unknown)} tensor(s) a CLIPModel with this config.json does not have`, { file: source, record: unknown[0] });
  for (const [name, shape] of expected) {
    const got = shapes.get(name)!;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new InputError(`shape [${got.join(', ')}] does not match [${shape.join(', ')}] required by config.json`, { file: source, record: name, field: 'shape' });
    }
  }
}

/** Looks up a table row per id, with a gradient the wasm backend can compute (it lacks UnsortedSegmentSum, which tf.gather's gradient needs). */
export const embeddingLookup = tf.customGrad((...args: unknown[]) => {
  const [table, ids, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  // Saved, not captured: tf.tidy around the forward pass would dispose a captured tensor before backprop.
  save([ids]);
  const value = tf.gather(table, ids);
  const rows = table.shape;
  // ScatterNd sums rows for repeated ids, which is the gradient of a gather.
  return {
    value,
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [tf.scatterND(tf.expandDims(saved[0], 1), dy as tf.Tensor, rows), tf.zerosLike(saved[0])],
  };
}) as (table: tf.Tensor2D, ids: tf.Tensor1D) => tf.Tensor2D;

let modelsCreated = 0;

export class ClipModel {
  private readonly parameters: Map<string, tf.Variable>;
  private policy: FreezePolicy = 'frozen';

  private constructor(
    readonly config: ClipConfig,
    parameters: Map<string, tf.Variable>,
  ) {
    this.parameters = parameters;
    this.setFreezePolicy('frozen');
  }

  /**
   * Builds the model from named float32 tensors, refusing a missing, unknown or mis-shaped
   * tensor by name (`source` names the file in errors).
   */
  static fromTensors(config: ClipConfig, tensors: Map<string, TensorToWrite>, source: string): ClipModel {
    checkClipTensors(config, new Map([...tensors].map(([name, t]) => [name, t.shape])), source);
    const expected = clipParameterShapes(config);
    const parameters = new Map<string, tf.Variable>();
    // tfjs variable names are global: several models (a frozen teacher, a copy) may coexist.
    const scope = `clip${++modelsCreated}`;
    for (const [name, shape] of expected) {
      const initial = tf.tensor(tensors.get(name)!.data, shape, 'float32');
      parameters.set(name, tf.variable(initial, false, `${scope}/${name}`));
      initial.dispose();
    }
    return new ClipModel(config, parameters);
  }

  /** Reads `config.json` and `model.safetensors` from a Hugging Face model folder. */
  static async load(dir: string): Promise<ClipModel> {
    const configFile = join(dir, 'config.json');
    if (!existsSync(configFile)) throw new InputError('not a model folder: config.json is missing', { file: dir });
    const config = await readClipConfig(configFile);
    const weightsFile = join(dir, 'model.safetensors');
    if (!existsSync(weightsFile)) {
      const files = await readdir(dir);
      const pickled = files.filter((f) => /\.(bin|pt|pth|ckpt|pkl)$/.test(f));
      if (pickled.length) {
        throw new InputError(`only ${pickled.join(', ')} found: vlbench never unpickles checkpoints (that can execute code); convert to safetensors (model.safetensors) first`, { file: dir });
      }
      if (files.some((f) => f.endsWith('.safetensors.index.json'))) throw new InputError('sharded safetensors checkpoints are not supported yet; merge the shards into model.safetensors', { file: dir });
      throw new InputError('model.safetensors is missing', { file: dir });
    }
    const weights = await readSafetensors(weightsFile);
    checkClipTensors(config, new Map(weights.names.map((name) => [name, weights.entry(name)!.shape])), weightsFile);
    const tensors = new Map<string, TensorToWrite>();
    const expected = clipParameterShapes(config);
    for (const name of weights.names) {
      const entry = weights.entry(name)!;
      // Decode only what is used; ignored buffers (int64 position ids) are checked by name only.
      tensors.set(name, { shape: entry.shape, data: expected.has(name) ? weights.float32(name) : new Float32Array(0) });
    }
    return ClipModel.fromTensors(config, tensors, weightsFile);
  }

  static initialise(config: ClipConfig, random: SeededRandom): ClipModel {
    return ClipModel.fromTensors(config, initialClipWeights(config, random), '(initial weights)');
  }

  /** The parameter by its Hugging Face name. */
  parameter(name: string): tf.Variable {
    const variable = this.parameters.get(name);
    if (!variable) throw new Error(`CLIP has no parameter "${name}"`);
    return variable;
  }

  get parameterNames(): string[] {
    return [...this.parameters.keys()];
  }

  get logitScale(): tf.Variable {
    return this.parameter('logit_scale');
  }

  /** SigLIP's learnable logit bias b ([1]); CLIP has none. */
  get logitBias(): tf.Variable | undefined {
    return this.parameters.get('logit_bias');
  }

  get isSiglip(): boolean {
    return this.config.family === 'siglip';
  }

  get freezePolicy(): FreezePolicy {
    return this.policy;
  }

  /**
   * Marks which variables train. `{lastBlocks: k}` opens the last k encoder blocks of each
   * tower plus what follows them (final norms); projections and logit_scale train whenever
   * anything does, since the embedding space must follow the blocks that move.
   */
  setFreezePolicy(policy: FreezePolicy): void {
    if (typeof policy === 'object') {
      if (!Number.isInteger(policy.lastBlocks) || policy.lastBlocks < 0) throw new InputError(`lastBlocks must be a non-negative integer, got ${policy.lastBlocks}`, { field: 'freeze' });
      if (policy.lastBlocks === 0) policy = 'frozen';
    }
    this.policy = policy;
    for (const [name, variable] of this.parameters) variable.trainable = this.isTrainable(name);
  }

  private isTrainable(name: string): boolean {
    if (this.policy === 'frozen') return false;
    if (this.policy === 'all') return true;
    const k = this.policy.lastBlocks;
    const towers = this.policy.towers ?? 'both';
    const tower = /^(text_model|text_projection)/.test(name) ? 'text' : /^(vision_model|visual_projection)/.test(name) ? 'vision' : 'shared';
    if (tower !== 'shared' && towers !== 'both' && tower !== towers) return false;
    if (/^(visual_projection|text_projection)\.|^logit_scale$|^logit_bias$|final_layer_norm|post_layernorm|^(text_model|vision_model)\.head\./.test(name)) return true;
    const block = /^(text_model|vision_model)\.encoder\.layers\.(\d+)\./.exec(name);
    const layers = tower === 'text' ? this.config.text.num_hidden_layers : this.config.vision.num_hidden_layers;
    if (!block) return this.policy.embeddings === true && tower !== 'shared';
    return Number(block[2]) >= layers - k;
  }

  /** The variables a training loop passes to its optimizer (its varList). */
  trainableVariables(): tf.Variable[] {
    return [...this.parameters.values()].filter((v) => v.trainable);
  }

  /** Trainable variables by HF name (for weight-decay rules that skip norms and biases). */
  trainableParameters(): Map<string, tf.Variable> {
    return new Map([...this.parameters].filter(([, v]) => v.trainable));
  }

  /** pixels: [N, 3, H, W] preprocessed (CHW, as HF's pixel_values). */
  imageForward(pixels: tf.Tensor4D): TowerOutput {
    return tf.tidy(() => this.imageOutputs(this.imageBlocks(this.imageBlockInput(this.imagePatchEmbeddings(pixels)), 0)));
  }

  /*
   * The vision forward pass in four parts, so fine-tuning can cache the frozen prefix (the
   * input of the first trainable block), perturb the patch embeddings (VILLA) or run blocks
   * from a boundary: imageForward is their composition, op for op.
   */

  /** The patch embeddings [N, P, Dv], before the class token, positions and the pre-layernorm. */
  imagePatchEmbeddings(pixels: tf.Tensor4D): tf.Tensor3D {
    const { vision } = this.config;
    const [n, channels, height, width] = pixels.shape;
    if (channels !== 3 || height !== vision.image_size || width !== vision.image_size) {
      throw new InputError(`pixel batch has shape [${pixels.shape.join(', ')}], this model needs [N, 3, ${vision.image_size}, ${vision.image_size}]`, { field: 'pixel_values' });
    }
    return tf.tidy(() => {
      const p = vision.patch_size;
      const grid = vision.image_size / p;
      const hidden = vision.hidden_size;
      // A stride-p conv without bias is a matmul over flattened p×p×3 patches, in the
      // kernel's (channel, row, column) order.
      const patches = pixels
        .reshape([n * 3, grid, p, grid, p])
        .transpose([0, 1, 3, 2, 4])
        .reshape([n, 3, grid * grid, p * p])
        .transpose([0, 2, 1, 3])
        .reshape([n * grid * grid, 3 * p * p]);
      const kernel = this.parameter('vision_model.embeddings.patch_embedding.weight').reshape([hidden, 3 * p * p]) as tf.Tensor2D;
      let embeds = timesWeight(patches, kernel);
      // SigLIP's patch conv has a bias, CLIP's none.
      if (this.isSiglip) embeds = embeds.add(this.parameter('vision_model.embeddings.patch_embedding.bias'));
      return embeds.reshape([n, grid * grid, hidden]) as tf.Tensor3D;
    });
  }

  /** The input of vision block 0 [N, 1+P, Dv]: class token and patches, positions added, pre-layernorm (SigLIP: [N, P, Dv], patches plus positions only). */
  imageBlockInput(patchEmbeds: tf.Tensor3D): tf.Tensor3D {
    const { vision } = this.config;
    const [n, , hidden] = patchEmbeds.shape;
    if (this.isSiglip) return tf.tidy(() => patchEmbeds.add(this.parameter('vision_model.embeddings.position_embedding.weight')) as tf.Tensor3D);
    return tf.tidy(() => {
      const classToken = this.parameter('vision_model.embeddings.class_embedding').reshape([1, 1, hidden]).tile([n, 1, 1]);
      const x = tf.concat([classToken, patchEmbeds], 1).add(this.parameter('vision_model.embeddings.position_embedding.weight')) as tf.Tensor3D;
      return this.layerNorm(x, 'vision_model.pre_layrnorm', vision.layer_norm_eps);
    });
  }

  /** Vision blocks [from, to) (to: the last block by default). */
  imageBlocks(x: tf.Tensor3D, from: number, to = this.config.vision.num_hidden_layers): tf.Tensor3D {
    const { vision } = this.config;
    return tf.tidy(() => {
      let h = x;
      for (let i = from; i < to; i++) h = this.encoderLayer(h, `vision_model.encoder.layers.${i}`, vision.num_attention_heads, vision.hidden_act, vision.layer_norm_eps, null);
      return h;
    });
  }

  /** The tower's outputs from the last block's output: tokens as they are, pooled (post-layernorm class token), embeds. */
  imageOutputs(x: tf.Tensor3D): TowerOutput {
    const { vision } = this.config;
    const [n, , hidden] = x.shape;
    if (this.isSiglip) {
      return tf.tidy(() => {
        // HF's last_hidden_state is after post_layernorm; the MAP head pools it. The tokens put
        // the pooled vector first, where CLIP has its class token, so heads find a global token at 0.
        const normed = this.layerNorm(x, 'vision_model.post_layernorm', vision.layer_norm_eps);
        const pooled = this.attentionPool(normed);
        const tokens = tf.concat([pooled.reshape([n, 1, hidden]), normed], 1) as tf.Tensor3D;
        return { tokens, pooled, embeds: tf.clone(pooled) };
      });
    }
    return tf.tidy(() => {
      const classOut = x.slice([0, 0, 0], [n, 1, hidden]).reshape([n, hidden]) as tf.Tensor2D;
      const pooled = this.layerNorm(classOut, 'vision_model.post_layernorm', vision.layer_norm_eps);
      const embeds = timesWeight(pooled, this.parameter('visual_projection.weight')) as tf.Tensor2D;
      return { tokens: tf.clone(x), pooled, embeds };
    });
  }

  /**
   * SigLIP's multi-head attention pooling head (big_vision's MAP): the learned probe attends
   * over the tokens [N, L, D] with the packed in-projection, then y + MLP(LN(y)). Returns [N, D].
   */
  private attentionPool(x: tf.Tensor3D): tf.Tensor2D {
    const { vision } = this.config;
    const [n, length, hidden] = x.shape;
    const heads = vision.num_attention_heads;
    const headDim = hidden / heads;
    const prefix = 'vision_model.head';
    const inWeight = this.parameter(`${prefix}.attention.in_proj_weight`);
    const inBias = this.parameter(`${prefix}.attention.in_proj_bias`);
    const part = (i: number) => [inWeight.slice([i * hidden, 0], [hidden, hidden]), inBias.slice([i * hidden], [hidden])] as const;
    const [wq, bq] = part(0);
    const [wk, bk] = part(1);
    const [wv, bv] = part(2);
    const flat = x.reshape([n * length, hidden]);
    const probe = this.parameter(`${prefix}.probe`).reshape([1, hidden]);
    // The probe's query is the same for every row: [heads, 1, headDim], repeated over the batch.
    const q = timesWeight(probe, wq).add(bq).mul(headDim ** -0.5).reshape([1, heads, 1, headDim]).tile([n, 1, 1, 1]).reshape([n * heads, 1, headDim]) as tf.Tensor3D;
    const split = (t: tf.Tensor) => t.reshape([n, length, heads, headDim]).transpose([0, 2, 1, 3]).reshape([n * heads, length, headDim]) as tf.Tensor3D;
    const k = split(timesWeight(flat, wk).add(bk));
    const v = split(timesWeight(flat, wv).add(bv));
    const scores = transposedProductsAreFree() ? tf.matMul(q, k, false, true) : tf.matMul(q, k.transpose([0, 2, 1]));
    const context = tf.matMul(tf.softmax(scores), v).reshape([n, hidden]);
    const attended = this.linear(context, `${prefix}.attention.out_proj`);
    const normed = this.layerNorm(attended, `${prefix}.layernorm`, vision.layer_norm_eps);
    const inner = activation(this.linear(normed, `${prefix}.mlp.fc1`), vision.hidden_act);
    return attended.add(this.linear(inner, `${prefix}.mlp.fc2`)) as tf.Tensor2D;
  }

  textForward(batch: TokenBatch): TowerOutput {
    return tf.tidy(() => {
      const words = this.textWordEmbeddings(batch);
      return this.textOutputs(this.textBlocks(this.textBlockInput(words), batch.attentionMask, 0), this.eosPositions(batch));
    });
  }

  /** The word embeddings [N, T, Dt] of a token batch, before positions are added (checked against the vocabulary and context). */
  textWordEmbeddings(batch: TokenBatch): tf.Tensor3D {
    const { text } = this.config;
    const { batch: n, length } = batch;
    if (length > text.max_position_embeddings) {
      throw new InputError(`token sequences of length ${length} exceed max_position_embeddings ${text.max_position_embeddings}`, { field: 'input_ids' });
    }
    if (batch.inputIds.length !== n * length || batch.attentionMask.length !== n * length) throw new Error(`token batch arrays do not hold ${n}×${length} values`);
    for (const id of batch.inputIds) {
      if (id < 0 || id >= text.vocab_size) throw new InputError(`token id ${id} is outside the vocabulary of ${text.vocab_size}`, { field: 'input_ids' });
    }
    return tf.tidy(() => {
      const ids = tf.tensor1d(batch.inputIds, 'int32');
      return embeddingLookup(this.parameter('text_model.embeddings.token_embedding.weight') as tf.Tensor2D, ids).reshape([n, length, text.hidden_size]) as tf.Tensor3D;
    });
  }

  /** The input of text block 0: word embeddings plus positions. */
  textBlockInput(words: tf.Tensor3D): tf.Tensor3D {
    const [, length, hidden] = words.shape;
    return tf.tidy(() => words.add(this.parameter('text_model.embeddings.position_embedding.weight').slice([0, 0], [length, hidden])) as tf.Tensor3D);
  }

  /**
   * Text blocks [from, to) under the causal and padding mask of `attentionMask` ([N, T], 1 for
   * real tokens). SigLIP's text tower is bidirectional and, as its checkpoints are run (the
   * processor gives no attention mask; texts are padded to max_length), attends over padding too.
   */
  textBlocks(x: tf.Tensor3D, attentionMask: Int32Array, from: number, to = this.config.text.num_hidden_layers): tf.Tensor3D {
    const { text } = this.config;
    const [n, length] = x.shape;
    return tf.tidy(() => {
      const mask = this.isSiglip ? null : textAttentionBias({ attentionMask, batch: n, length, inputIds: new Int32Array(0) });
      let h = x;
      for (let i = from; i < to; i++) h = this.encoderLayer(h, `text_model.encoder.layers.${i}`, text.num_attention_heads, text.hidden_act, text.layer_norm_eps, mask);
      return h;
    });
  }

  /** The tower's outputs from the last block's output: final-layernormed tokens, the EOS token pooled (`eosPositions` per row), embeds. */
  textOutputs(x: tf.Tensor3D, eosPositions: Int32Array): TowerOutput {
    const { text } = this.config;
    const [n, length] = x.shape;
    return tf.tidy(() => {
      const tokens = this.layerNorm(x, 'text_model.final_layer_norm', text.layer_norm_eps);
      // Pick each row's EOS token with a one-hot weighted sum: differentiable on every backend.
      const picker = tf.oneHot(tf.tensor1d(eosPositions, 'int32'), length).toFloat().reshape([n, length, 1]);
      const pooled = tokens.mul(picker).sum(1) as tf.Tensor2D;
      if (this.isSiglip) {
        // SigLIP: HF's pooler_output is the head's output (a Linear with bias); it is the embedding.
        const embeds = this.linear(pooled, 'text_model.head') as tf.Tensor2D;
        return { tokens, pooled: tf.clone(embeds), embeds };
      }
      const embeds = timesWeight(pooled, this.parameter('text_projection.weight')) as tf.Tensor2D;
      return { tokens, pooled, embeds };
    });
  }

  /**
   * Hugging Face's CLIPTextTransformer pooling: with the legacy eos_token_id 2 (the original
   * openai configs), the position of the largest id (EOS has the largest id in CLIP's
   * vocabulary); otherwise the first position holding eos_token_id.
   */
  eosPositions(batch: TokenBatch): Int32Array {
    const eos = this.config.text.eos_token_id;
    const out = new Int32Array(batch.batch);
    // SigLIP pools the last position (its texts are padded to max_length).
    if (this.isSiglip) return out.fill(batch.length - 1);
    for (let row = 0; row < batch.batch; row++) {
      const ids = batch.inputIds.subarray(row * batch.length, (row + 1) * batch.length);
      let position = 0;
      if (eos === 2) {
        for (let t = 1; t < ids.length; t++) if (ids[t] > ids[position]) position = t;
      } else {
        position = ids.indexOf(eos);
        if (position < 0) {
          // HF's argmax over an all-false row returns 0; doing the same keeps parity, but
          // a text without EOS means the tokenizer and config disagree: say so.
          throw new InputError(`token row ${row} holds no eos_token_id ${eos}; the tokenizer does not end texts with the config's EOS token`, { field: 'input_ids' });
        }
      }
      out[row] = position;
    }
    return out;
  }

  private layerNorm<T extends tf.Tensor>(x: T, prefix: string, eps: number): T {
    if (fusedRowKernelsActive()) return fusedLayerNorm(x, this.parameter(`${prefix}.weight`), this.parameter(`${prefix}.bias`), eps);
    const { mean, variance } = tf.moments(x, -1, true);
    return x.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(this.parameter(`${prefix}.weight`)).add(this.parameter(`${prefix}.bias`)) as T;
  }

  private linear(x: tf.Tensor, prefix: string): tf.Tensor {
    const weight = this.parameter(`${prefix}.weight`);
    const shape = x.shape;
    const flat = x.reshape([-1, shape[shape.length - 1]]) as tf.Tensor2D;
    const bias = this.parameter(`${prefix}.bias`);
    // One kernel (BLAS adds the bias as it writes the product) where the transposed weight is free.
    const out = transposedProductsAreFree() ? tf.fused.matMul({ a: flat, b: weight as tf.Tensor2D, transposeB: true, bias }) : timesWeight(flat, weight).add(bias);
    return out.reshape([...shape.slice(0, -1), weight.shape[0]]);
  }

  private encoderLayer(x: tf.Tensor3D, prefix: string, heads: number, act: ClipTextConfig['hidden_act'], eps: number, bias: tf.Tensor | null): tf.Tensor3D {
    const attended = this.attention(this.layerNorm(x, `${prefix}.layer_norm1`, eps), `${prefix}.self_attn`, heads, bias);
    const h = x.add(attended) as tf.Tensor3D;
    const inner = activation(this.linear(this.layerNorm(h, `${prefix}.layer_norm2`, eps), `${prefix}.mlp.fc1`), act);
    return h.add(this.linear(inner, `${prefix}.mlp.fc2`)) as tf.Tensor3D;
  }

  private attention(x: tf.Tensor3D, prefix: string, heads: number, bias: tf.Tensor | null): tf.Tensor3D {
    const [n, length, hidden] = x.shape;
    const headDim = hidden / heads;
    const split = (t: tf.Tensor) => t.reshape([n, length, heads, headDim]).transpose([0, 2, 1, 3]).reshape([n * heads, length, headDim]) as tf.Tensor3D;
    const q = split(this.linear(x, `${prefix}.q_proj`).mul(headDim ** -0.5));
    const k = split(this.linear(x, `${prefix}.k_proj`));
    const v = split(this.linear(x, `${prefix}.v_proj`));
    let scores = transposedProductsAreFree() ? tf.matMul(q, k, false, true) : tf.matMul(q, k.transpose([0, 2, 1]));
    if (bias) scores = scores.reshape([n, heads, length, length]).add(bias).reshape([n * heads, length, length]);
    const context = tf.matMul(tf.softmax(scores), v).reshape([n, heads, length, headDim]).transpose([0, 2, 1, 3]).reshape([n, length, hidden]);
    return this.linear(context, `${prefix}.out_proj`) as tf.Tensor3D;
  }

  /** Current weights as host arrays, in HF order. */
  async exportTensors(): Promise<Array<[string, TensorToWrite]>> {
    const out: Array<[string, TensorToWrite]> = [];
    for (const [name, variable] of this.parameters) out.push([name, { shape: variable.shape, data: (await variable.data()) as Float32Array }]);
    return out;
  }

  /**
   * Writes config.json and model.safetensors (F32) into `dir`. Other files of a model folder
   * (tokenizer, preprocessor config) are the caller's.
   */
  async save(dir: string, metadata: Record<string, string> = {}): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeSafetensors(join(dir, 'model.safetensors'), await this.exportTensors(), { metadata: { format: 'pt', ...metadata } });
    await writeFileAtomically(join(dir, 'config.json'), JSON.stringify(clipConfigToJson(this.config), null, 2) + '\n');
  }

  dispose(): void {
    for (const variable of this.parameters.values()) variable.dispose();
    this.parameters.clear();
  }
}

/** Additive attention bias [N, 1, T, T]: causal (a token sees itself and earlier ones) and padding (no one sees a padded key). */
function textAttentionBias(batch: TokenBatch): tf.Tensor4D {
  const { batch: n, length } = batch;
  // Large and finite, like HF's finfo.min: exp() of it is 0, and a fully masked row stays finite.
  const blocked = -1e9;
  const bias = new Float32Array(n * length * length);
  for (let row = 0; row < n; row++) {
    for (let query = 0; query < length; query++) {
      for (let key = 0; key < length; key++) {
        if (key > query || batch.attentionMask[row * length + key] === 0) bias[(row * length + query) * length + key] = blocked;
      }
    }
  }
  return tf.tensor4d(bias, [n, 1, length, length]);
}

/**
 * A torch Linear weight [out, in] as [in, out]. tfjs-wasm's matMul with transposeB runs about
 * 8× slower than on a transposed copy (2.7 against 20 GFLOP/s measured on 400×768·768×3072),
 * and the copy costs one pass over the weight; the variable keeps HF's layout.
 */
function inputMajor(weight: tf.Tensor): tf.Tensor2D {
  return tf.transpose(weight as tf.Tensor2D);
}

/** x·weightᵀ for a torch Linear weight [out, in]: the transpose flag where it is free (BLAS), a transposed copy elsewhere. */
function timesWeight(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  return transposedProductsAreFree() ? tf.matMul(x as tf.Tensor2D, weight as tf.Tensor2D, false, true) : tf.matMul(x as tf.Tensor2D, inputMajor(weight));
}

function activation(x: tf.Tensor, kind: ClipTextConfig['hidden_act']): tf.Tensor {
  if (kind === 'quick_gelu') return fusedRowKernelsActive() ? fusedQuickGelu(x) : x.mul(tf.sigmoid(x.mul(1.702)));
  // gelu_pytorch_tanh (SigLIP): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
  if (kind === 'gelu_pytorch_tanh') return x.mul(0.5).mul(tf.tanh(x.add(x.mul(x).mul(x).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1));
  // Exact (erf) GELU, as torch's nn.GELU() and HF's "gelu".
  return x.mul(0.5).mul(tf.erf(x.mul(Math.SQRT1_2)).add(1));
}
