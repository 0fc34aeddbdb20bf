import test from 'ava';
import { copyFileSync, createWriteStream, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { SeededRandom } from '../../core/random.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { checkClipTensors, ClipModel, clipParameterShapes } from '../../models/encoders/clip.ts';
import { parseClipConfig } from '../../models/encoders/clip-config.ts';
import { float32ToFloat16, readSafetensorsHeader, type TensorToWrite } from '../../models/encoders/safetensors.ts';
import type { TfjsClipEncoder } from '../../models/encoders/clip-encoder.ts';

/**
 * openai/clip-vit-base-patch32's config.json: the fields that matter, with their real values,
 * plus a few of the generic generation fields the real file carries (they must be ignored).
 * The original file says eos_token_id 2 (bos 0, pad 1): HF's legacy pooling branch.
 */
const OPENAI_CLIP_VIT_B_32_CONFIG = {
  _name_or_path: 'openai/clip-vit-base-patch32',
  architectures: ['CLIPModel'],
  initializer_factor: 1.0,
  logit_scale_init_value: 2.6592,
  model_type: 'clip',
  projection_dim: 512,
  text_config: {
    attention_dropout: 0.0,
    bos_token_id: 0,
    dropout: 0.0,
    eos_token_id: 2,
    hidden_act: 'quick_gelu',
    hidden_size: 512,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: 2048,
    layer_norm_eps: 1e-5,
    max_length: 20,
    max_position_embeddings: 77,
    model_type: 'clip_text_model',
    num_attention_heads: 8,
    num_beams: 1,
    num_hidden_layers: 12,
    pad_token_id: 1,
    projection_dim: 512,
    vocab_size: 49408,
  },
  text_config_dict: null,
  torch_dtype: 'float32',
  transformers_version: null,
  vision_config: {
    attention_dropout: 0.0,
    dropout: 0.0,
    hidden_act: 'quick_gelu',
    hidden_size: 768,
    image_size: 224,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: 3072,
    layer_norm_eps: 1e-5,
    model_type: 'clip_vision_model',
    num_attention_heads: 12,
    num_hidden_layers: 12,
    patch_size: 32,
    projection_dim: 512,
  },
  vision_config_dict: null,
};

const config = parseClipConfig(OPENAI_CLIP_VIT_B_32_CONFIG, 'config.json');
const shapes = clipParameterShapes(config);

test('the real config parses with its real sizes', (t) => {
  t.is(config.projectionDim, 512);
  t.like(config.text, { vocab_size: 49408, hidden_size: 512, num_hidden_layers: 12, num_attention_heads: 8, max_position_embeddings: 77, intermediate_size: 2048, eos_token_id: 2, hidden_act: 'quick_gelu' });
  t.like(config.vision, { hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, patch_size: 32, image_size: 224, intermediate_size: 3072 });
});

test('the parameter map has HF names and shapes for all 398 tensors of ViT-B/32', (t) => {
  t.is(shapes.size, 398);
  const expected: Record<string, number[]> = {
    'text_model.embeddings.token_embedding.weight': [49408, 512],
    'text_model.embeddings.position_embedding.weight': [77, 512],
    'text_model.encoder.layers.0.self_attn.q_proj.weight': [512, 512],
    'text_model.encoder.layers.11.mlp.fc1.weight': [2048, 512],
    'text_model.encoder.layers.11.mlp.fc2.weight': [512, 2048],
    'text_model.final_layer_norm.bias': [512],
    'vision_model.embeddings.class_embedding': [768],
    'vision_model.embeddings.patch_embedding.weight': [768, 3, 32, 32],
    'vision_model.embeddings.position_embedding.weight': [50, 768],
    'vision_model.pre_layrnorm.weight': [768],
    'vision_model.encoder.layers.5.self_attn.out_proj.bias': [768],
    'vision_model.encoder.layers.11.mlp.fc1.weight': [3072, 768],
    'vision_model.post_layernorm.weight': [768],
    'visual_projection.weight': [512, 768],
    'text_projection.weight': [512, 512],
    logit_scale: [],
  };
  for (const [name, shape] of Object.entries(expected)) t.deepEqual(shapes.get(name), shape, name);
  const parameters = [...shapes.values()].reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
  // 151,277,313: the parameter count of openai/clip-vit-base-patch32.
  t.is(parameters, 151_277_313);
});

/** Name and shape only: the loader checks names and shapes before it reads any value. */
function shapeOnly(overrides: Record<string, number[] | null> = {}): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  for (const [name, shape] of shapes) out.set(name, { shape, data: new Float32Array(0) });
  for (const [name, shape] of Object.entries(overrides)) {
    if (shape === null) out.delete(name);
    else out.set(name, { shape, data: new Float32Array(0) });
  }
  return out;
}

test('a missing tensor is refused by name', (t) => {
  const error = t.throws(() => ClipModel.fromTensors(config, shapeOnly({ 'vision_model.encoder.layers.11.mlp.fc2.weight': null }), 'model.safetensors'), { instanceOf: InputError });
  t.regex(error!.message, /model\.safetensors, record "vision_model\.encoder\.layers\.11\.mlp\.fc2\.weight": checkpoint lacks 1/);
});

test('a mis-shaped tensor is refused by name, with both shapes', (t) => {
  const error = t.throws(() => ClipModel.fromTensors(config, shapeOnly({ 'text_projection.weight': [512, 768] }), 'model.safetensors'), { instanceOf: InputError });
  t.regex(error!.message, /record "text_projection\.weight", field "shape": shape \[512, 768\] does not match \[512, 512\]/);
});

test('an unknown tensor is refused by name (position_ids buffers are accepted: see the full-size test)', (t) => {
  const error = t.throws(() => ClipModel.fromTensors(config, shapeOnly({ 'text_model.encoder.layers.12.mlp.fc1.weight': [2048, 512] }), 'model.safetensors'), { instanceOf: InputError });
  t.regex(error!.message, /record "text_model\.encoder\.layers\.12\.mlp\.fc1\.weight": checkpoint has 1/);
});

/** HF's F16 layout for every real tensor, plus the int64 position_ids buffers the real file carries. */
function fullSizeHeader(): { header: Record<string, unknown>; dataLength: number } {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of shapes) {
    const count = shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + count * 2] };
    offset += count * 2;
  }
  for (const [name, length] of [['text_model.embeddings.position_ids', 77], ['vision_model.embeddings.position_ids', 50]] as const) {
    header[name] = { dtype: 'I64', shape: [1, length], data_offsets: [offset, offset + length * 8] };
    offset += length * 8;
  }
  return { header, dataLength: offset };
}

test('a full-size checkpoint header with the real names and shapes passes the loader\'s checks', async (t) => {
  // A sparse file: the real header, then ≈300 MB of zeros the file system does not store.
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-vitb32-header-'));
  try {
    const file = join(dir, 'model.safetensors');
    const { header, dataLength } = fullSizeHeader();
    const headerBytes = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(headerBytes.length));
    writeFileSync(file, Buffer.concat([prefix, headerBytes]));
    truncateSync(file, 8 + headerBytes.length + dataLength);
    const read = await readSafetensorsHeader(file);
    t.is(read.tensors.size, 400);
    t.notThrows(() => checkClipTensors(config, new Map([...read.tensors].map(([name, entry]) => [name, entry.shape])), file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Writes a full-size F16 model.safetensors (≈300 MB) with every tensor under its real name and
 * shape. Values come from a seeded block of normals, tiled, so writing stays fast; norms get weight 1.
 */
async function writeFullSizeCheckpoint(file: string): Promise<void> {
  const random = new SeededRandom(11);
  const block = new Float32Array(65_521);
  for (let i = 0; i < block.length; i++) block[i] = random.normal() * 0.02;
  const noise = float32ToFloat16(block);
  const one = float32ToFloat16(Float32Array.of(1))[0];
  const { header } = fullSizeHeader();
  const entries = [...shapes].map(([name, shape]) => ({ name, count: shape.reduce((a, b) => a * b, 1) }));
  const headerBytes = Buffer.from(JSON.stringify(header));
  const stream = createWriteStream(file);
  const write = async (chunk: Uint8Array) => {
    if (!stream.write(chunk)) await once(stream, 'drain');
  };
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));
  await write(prefix);
  await write(headerBytes);
  for (const { name, count } of entries) {
    const values = new Uint16Array(count);
    if (/layer_?norm|layrnorm/.test(name) && name.endsWith('.weight')) values.fill(one);
    else for (let i = 0; i < count; i += noise.length) values.set(noise.subarray(0, Math.min(noise.length, count - i)), i);
    await write(new Uint8Array(values.buffer));
  }
  await write(new Uint8Array(new BigInt64Array(Array.from({ length: 77 }, (_, i) => BigInt(i))).buffer));
  await write(new Uint8Array(new BigInt64Array(Array.from({ length: 50 }, (_, i) => BigInt(i))).buffer));
  stream.end();
  await once(stream, 'finish');
}

// Loading 151 M parameters and running them takes a minute on 2 shared cores: opt in with VLBENCH_SLOW_TESTS=1.
const slow = process.env.VLBENCH_SLOW_TESTS === '1' ? test : test.skip;

slow('a full-size F16 ViT-B/32 checkpoint with the real names loads unchanged and embeds as PyTorch does', async (t) => {
  await selectBackend('wasm');
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-vitb32-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(OPENAI_CLIP_VIT_B_32_CONFIG));
    await writeFullSizeCheckpoint(join(dir, 'model.safetensors'));
    // A tokenizer and preprocessor config are part of the layout; the tiny fixture's serve here.
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(fixture, file), join(dir, file));
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ crop_size: 224, size: 224, resample: 3 }));
    const encoder = (await loadEncoder(dir, { backend: 'wasm' })) as TfjsClipEncoder;
    try {
      t.is(encoder.embeddingDim, 512);
      t.deepEqual(encoder.model.parameter('vision_model.embeddings.patch_embedding.weight').shape, [768, 3, 32, 32]);
      // The F16 bytes load unchanged: values as PyTorch reads the same file (torch.float16 → float32).
      t.deepEqual(Array.from(encoder.model.parameter('text_projection.weight').dataSync().slice(0, 4)), [-0.017120361328125, 0.0228424072265625, 0.01396942138671875, 0.019866943359375]);
      t.is(encoder.model.parameter('text_projection.weight').dataSync()[100_000], 0.008270263671875);
      t.is(encoder.model.parameter('vision_model.embeddings.patch_embedding.weight').dataSync()[2_359_295], 0.036468505859375);
      const pixels = new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i * 0.01));
      const image = await encoder.embedImages(pixels, [1, 3, 224, 224]);
      t.deepEqual(image.shape, [1, 512]);
      // Legacy eos_token_id 2: pooled at the largest id (the tiny tokenizer's EOS, 32).
      const text = await encoder.encodeTexts(['a photo of a cat'], { padding: 'longest' });
      t.deepEqual(text.embeds.shape, [1, 512]);
      t.deepEqual(Array.from(text.inputIds), [31, 0, 3, 5, 0, 17, 32]);
      t.deepEqual(Array.from(encoder.model.eosPositions({ inputIds: text.inputIds, attentionMask: text.attentionMask, batch: 1, length: text.inputIds.length })), [6]);
      // The forward pass against PyTorch on the same checkpoint: `python3 scripts/clip-reference-outputs.py
      // --model <this folder> --ids 31,0,3,5,0,17,32` (transformers' CLIPModel arithmetic, fp32).
      const reference = {
        image: [4.914931774139404, 0.041956692934036255, -1.0565983057022095, -0.20075774192810059, 0.10217343270778656, -1.318042278289795, -1.0048396587371826, 0.07306329160928726],
        text: [1.8718607425689697, -0.4214916229248047, -0.46288055181503296, -0.06334888935089111, -0.4494665265083313, -0.17568477988243103, 0.2200048565864563, -0.903639018535614],
        imageSum: -7.012659348547459,
        textSum: 0.2613825164735317,
      };
      reference.image.forEach((value, i) => t.true(Math.abs(image.data[i] - value) < 1e-4, `image_embeds[${i}] ${image.data[i]} vs ${value}`));
      reference.text.forEach((value, i) => t.true(Math.abs(text.embeds.data[i] - value) < 1e-4, `text_embeds[${i}] ${text.embeds.data[i]} vs ${value}`));
      t.true(Math.abs(image.data.reduce((sum, v) => sum + v, 0) - reference.imageSum) < 1e-3);
      t.true(Math.abs(text.embeds.data.reduce((sum, v) => sum + v, 0) - reference.textSum) < 1e-3);
    } finally {
      await encoder.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
