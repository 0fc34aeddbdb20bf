import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { InputError } from '../../core/errors.ts';

/**
 * Hugging Face's CLIPConfig, the fields the model's shape and arithmetic depend on, with the
 * defaults of transformers' CLIPTextConfig / CLIPVisionConfig (which equal
 * openai/clip-vit-base-patch32). Unknown fields (HF configs carry dozens of generation
 * settings) are ignored, and kept when the config is written back.
 */

const positiveInt = z.number().int().positive();
const activation = z.enum(['quick_gelu', 'gelu', 'gelu_pytorch_tanh']);

const textConfigSchema = z.looseObject({
  vocab_size: positiveInt.default(49408),
  hidden_size: positiveInt.default(512),
  intermediate_size: positiveInt.default(2048),
  projection_dim: positiveInt.default(512),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(8),
  max_position_embeddings: positiveInt.default(77),
  hidden_act: activation.default('quick_gelu'),
  layer_norm_eps: z.number().positive().default(1e-5),
  pad_token_id: z.number().int().nullable().default(1),
  bos_token_id: z.number().int().nullable().default(49406),
  eos_token_id: z.number().int().default(49407),
  /** SigLIP only: the text head's output size (transformers' SiglipTextConfig; hidden_size when absent). */
  projection_size: positiveInt.optional(),
});

const visionConfigSchema = z.looseObject({
  hidden_size: positiveInt.default(768),
  intermediate_size: positiveInt.default(3072),
  projection_dim: positiveInt.default(512),
  num_hidden_layers: positiveInt.default(12),
  num_attention_heads: positiveInt.default(12),
  num_channels: z.literal(3).default(3),
  image_size: positiveInt.default(224),
  patch_size: positiveInt.default(32),
  hidden_act: activation.default('quick_gelu'),
  layer_norm_eps: z.number().positive().default(1e-5),
});

const clipConfigSchema = z.looseObject({
  model_type: z.enum(['clip', 'siglip']).optional(),
  projection_dim: positiveInt.default(512),
  logit_scale_init_value: z.number().default(2.6592),
  text_config: z.unknown().optional(),
  vision_config: z.unknown().optional(),
});

export type ClipTextConfig = z.infer<typeof textConfigSchema>;
export type ClipVisionConfig = z.infer<typeof visionConfigSchema>;

export interface ClipConfig {
  projectionDim: number;
  logitScaleInit: number;
  text: ClipTextConfig;
  vision: ClipVisionConfig;
  /** The config as read, so unknown fields survive a save. */
  raw: Record<string, unknown>;
  /**
   * 'siglip' for a SiglipConfig (model_type "siglip"): no projections (the embedding is the
   * vision tower's attention-pooling head and the text tower's head), no class token, a
   * bidirectional text tower pooled at its last position, logit_scale and logit_bias of shape
   * [1]. Absent for CLIP, so configs built in code stay CLIP.
   */
  family?: 'siglip';
  /** SigLIP: the initial logit_bias (the paper's −10). */
  logitBiasInit?: number;
}

/**
 * transformers' SiglipTextConfig / SiglipVisionConfig defaults (google/siglip-base-patch16-224),
 * under the fields a SigLIP config.json leaves out.
 */
const SIGLIP_TEXT_DEFAULTS = {
  vocab_size: 32000, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12,
  max_position_embeddings: 64, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6, pad_token_id: 1, bos_token_id: 49406, eos_token_id: 49407,
};
const SIGLIP_VISION_DEFAULTS = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: 16, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6,
};
/** The paper's initialisation (Zhai et al. 2023): t' = log 10, b = −10. */
export const SIGLIP_LOGIT_SCALE_INIT = Math.log(10);
export const SIGLIP_LOGIT_BIAS_INIT = -10;

/** Parses a CLIPConfig object; `file` names the source in errors. */
export function parseClipConfig(json: unknown, file: string): ClipConfig {
  const top = clipConfigSchema.safeParse(json);
  if (!top.success) throw zodError(top.error, file, '');
  const siglip = top.data.model_type === 'siglip';
  const towerObject = (value: unknown) => (typeof value === 'object' && value !== null ? value : {});
  const text = textConfigSchema.safeParse(siglip ? { ...SIGLIP_TEXT_DEFAULTS, ...towerObject(top.data.text_config) } : (top.data.text_config ?? {}));
  if (!text.success) throw zodError(text.error, file, 'text_config.');
  const vision = visionConfigSchema.safeParse(siglip ? { ...SIGLIP_VISION_DEFAULTS, ...towerObject(top.data.vision_config) } : (top.data.vision_config ?? {}));
  if (!vision.success) throw zodError(vision.error, file, 'vision_config.');
  const config: ClipConfig = siglip
    ? {
        // SigLIP's shared space is the vision tower's width (its head keeps hidden_size).
        projectionDim: vision.data.hidden_size,
        logitScaleInit: numberField(json, 'logit_scale_init_value') ?? SIGLIP_LOGIT_SCALE_INIT,
        logitBiasInit: numberField(json, 'logit_bias_init_value') ?? SIGLIP_LOGIT_BIAS_INIT,
        text: text.data,
        vision: vision.data,
        raw: json as Record<string, unknown>,
        family: 'siglip',
      }
    : {
        projectionDim: top.data.projection_dim,
        logitScaleInit: top.data.logit_scale_init_value,
        text: text.data,
        vision: vision.data,
        raw: json as Record<string, unknown>,
      };
  checkShapes(config, file);
  return config;
}

export async function readClipConfig(file: string): Promise<ClipConfig> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InputError(`cannot read CLIP config: ${(error as Error).message}`, { file });
  }
  return parseClipConfig(json, file);
}

/** The config as a Hugging Face config.json object (CLIPModel). */
export function clipConfigToJson(config: ClipConfig): Record<string, unknown> {
  if (config.family === 'siglip') {
    return {
      ...config.raw,
      architectures: ['SiglipModel'],
      model_type: 'siglip',
      logit_scale_init_value: config.logitScaleInit,
      logit_bias_init_value: config.logitBiasInit,
      text_config: { ...config.text, model_type: 'siglip_text_model', projection_size: siglipTextProjectionSize(config) },
      vision_config: { ...config.vision, model_type: 'siglip_vision_model' },
    };
  }
  return {
    ...config.raw,
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: config.projectionDim,
    logit_scale_init_value: config.logitScaleInit,
    text_config: { ...config.text, model_type: 'clip_text_model', projection_dim: config.projectionDim },
    vision_config: { ...config.vision, model_type: 'clip_vision_model', projection_dim: config.projectionDim },
  };
}

/** SigLIP: the text head's output size (projection_size, else hidden_size as in older transformers). */
export function siglipTextProjectionSize(config: ClipConfig): number {
  return config.text.projection_size ?? config.text.hidden_size;
}

function checkShapes(config: ClipConfig, file: string): void {
  if (config.family === 'siglip' && (config.vision as Record<string, unknown>).vision_use_head === false) {
    throw new InputError('vision_use_head false: this SigLIP vision tower has no attention-pooling head, so it gives no image embedding to compare with texts', { file, field: 'vision_config.vision_use_head' });
  }
  if (config.family === 'siglip' && siglipTextProjectionSize(config) !== config.vision.hidden_size) {
    throw new InputError(`the text head's projection_size ${siglipTextProjectionSize(config)} must equal the vision hidden_size ${config.vision.hidden_size} (SigLIP compares them directly)`, { file, field: 'text_config.projection_size' });
  }
  for (const [prefix, tower] of [['text_config', config.text], ['vision_config', config.vision]] as const) {
    if (tower.hidden_size % tower.num_attention_heads !== 0) {
      throw new InputError(`hidden_size ${tower.hidden_size} is not divisible by num_attention_heads ${tower.num_attention_heads}`, { file, field: `${prefix}.hidden_size` });
    }
  }
  if (config.vision.image_size % config.vision.patch_size !== 0) {
    throw new InputError(`image_size ${config.vision.image_size} is not a multiple of patch_size ${config.vision.patch_size}`, { file, field: 'vision_config.image_size' });
  }
  // SigLIP pools the last position, not EOS: its configs keep CLIP's eos default (49407) beside a 32000 vocabulary.
  if (config.family !== 'siglip' && config.text.eos_token_id >= config.text.vocab_size) {
    throw new InputError(`eos_token_id ${config.text.eos_token_id} is outside the vocabulary of ${config.text.vocab_size}`, { file, field: 'text_config.eos_token_id' });
  }
}

function numberField(json: unknown, key: string): number | undefined {
  const value = (json as Record<string, unknown>)[key];
  return typeof value === 'number' ? value : undefined;
}

function zodError(error: z.ZodError, file: string, prefix: string): InputError {
  const issue = error.issues[0];
  return new InputError(`expected a Hugging Face CLIPConfig or SiglipConfig: ${issue.message}`, { file, field: prefix + issue.path.join('.') });
}
