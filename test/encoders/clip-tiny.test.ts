import test from 'ava';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { fingerprintModelFolder, type AlignedEncoder, type HostTensor } from '../../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import { parseClipConfig } from '../../models/encoders/clip-config.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import type { TfjsClipEncoder } from '../../models/encoders/clip-encoder.ts';

/**
 * The committed fixture test/fixtures/clip-tiny was made by scripts/make-onnx-fixture.py:
 * random weights in plain PyTorch, the ONNX exports, and torch's outputs in reference.json.
 */
const fixture = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
const reference = JSON.parse(readFileSync(join(fixture, 'reference.json'), 'utf8')) as {
  pixel_shape: [number, 3, number, number];
  pixel_sum: number;
  texts: string[];
  input_ids: number[][];
  attention_mask: number[][];
  image_embeds: number[][];
  text_embeds: number[][];
  image_tokens: number[][][];
  text_tokens: number[][][];
  logit_scale: number;
};

/** reference.json's pixel_formula. */
function referencePixels(): Float32Array {
  const [n, c, h, w] = reference.pixel_shape;
  const pixels = new Float32Array(n * c * h * w);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.fround(1.7 * Math.sin(0.37 * i + 1.3));
  return pixels;
}

function maxDifference(actual: HostTensor, expected: unknown[]): number {
  const flat = (expected as number[]).flat(3) as number[];
  if (flat.length !== actual.data.length) return Infinity;
  let max = 0;
  actual.data.forEach((v, i) => (max = Math.max(max, Math.abs(v - flat[i]))));
  return max;
}

let tfjs: TfjsClipEncoder;
let onnx: AlignedEncoder;

test.before(async () => {
  await selectBackend('wasm');
  tfjs = (await loadEncoder(fixture, { backend: 'wasm' })) as TfjsClipEncoder;
  onnx = await loadEncoder(fixture, { engine: 'onnx' });
});

test.after.always(async () => {
  await tfjs?.dispose();
  await onnx?.dispose();
});

test('the pixel formula reproduces the reference inputs', (t) => {
  const sum = referencePixels().reduce((a, b) => a + b, 0);
  t.true(Math.abs(sum - reference.pixel_sum) < 1e-3);
});

test('the folder picks tfjs when it has model.safetensors, and describes itself', (t) => {
  t.is(tfjs.engine, 'tfjs');
  t.true(tfjs.trainable);
  t.is(tfjs.backend, 'wasm');
  t.is(tfjs.embeddingDim, 16);
  t.is(tfjs.imageTokenDim, 32);
  t.deepEqual([tfjs.preprocessing.cropHeight, tfjs.preprocessing.cropWidth], [32, 32]);
  t.regex(tfjs.fingerprint, /^[0-9a-f]{64}$/);
  t.is(onnx.engine, 'onnx');
  t.false(onnx.trainable);
  t.is(onnx.backend, 'onnxruntime');
  t.not(onnx.fingerprint, tfjs.fingerprint);
});

test('the tokenizer from the folder gives the reference ids: truncation keeps EOS, padding with EOS', async (t) => {
  const batch = tfjs.tokenizer.encode(reference.texts, 'max_length');
  t.deepEqual(Array.from(batch.inputIds), reference.input_ids.flat());
  t.deepEqual(Array.from(batch.attentionMask), reference.attention_mask.flat());
  // The long third text was truncated to 16 tokens, EOS last.
  t.is(reference.input_ids[2][15], 32);
  const longest = tfjs.tokenizer.encode(['a photo', 'red circle on the left'], 'longest');
  t.is(longest.length, 7);
  t.deepEqual(Array.from(longest.inputIds.subarray(0, 7)), [31, 0, 3, 32, 32, 32, 32]);
  t.deepEqual(Array.from(longest.attentionMask.subarray(0, 7)), [1, 1, 1, 1, 0, 0, 0]);
});

test('tfjs matches PyTorch to 1e-4 (embeddings and token outputs)', async (t) => {
  const images = await tfjs.encodeImages(referencePixels(), reference.pixel_shape);
  t.deepEqual(images.embeds.shape, [2, 16]);
  t.deepEqual(images.tokens.shape, [2, 17, 32]);
  t.true(maxDifference(images.embeds, reference.image_embeds) < 1e-4);
  t.true(maxDifference(images.tokens, reference.image_tokens) < 1e-4);
  const texts = await tfjs.encodeTexts(reference.texts);
  t.deepEqual(texts.tokens.shape, [3, 16, 32]);
  t.true(maxDifference(texts.embeds, reference.text_embeds) < 1e-4);
  t.true(maxDifference(texts.tokens, reference.text_tokens) < 1e-4);
  // Padding to the longest text gives the same embeddings.
  t.true(maxDifference(await tfjs.embedTexts(reference.texts), reference.text_embeds) < 1e-4);
  t.true(Math.abs((await tfjs.model.logitScale.data())[0] - reference.logit_scale) < 1e-6);
});

test('ONNX matches PyTorch to 1e-5 and tfjs to 1e-4', async (t) => {
  const pixels = referencePixels();
  const images = await onnx.encodeImages(pixels, reference.pixel_shape);
  t.true(maxDifference(images.embeds, reference.image_embeds) < 1e-5);
  t.true(maxDifference(images.tokens, reference.image_tokens) < 1e-4);
  const texts = await onnx.encodeTexts(reference.texts);
  t.true(maxDifference(texts.embeds, reference.text_embeds) < 1e-5);
  t.true(maxDifference(await onnx.embedTexts(reference.texts), reference.text_embeds) < 1e-5);
  const tfjsImages = await tfjs.embedImages(pixels, reference.pixel_shape);
  const tfjsTexts = await tfjs.embedTexts(reference.texts);
  const nested = (h: HostTensor) => Array.from({ length: h.shape[0] }, (_, r) => Array.from(h.data.subarray(r * h.shape[1], (r + 1) * h.shape[1])));
  t.true(maxDifference(images.embeds, nested(tfjsImages)) < 1e-4);
  t.true(maxDifference(texts.embeds, nested(tfjsTexts)) < 1e-4);
});

test('a pixel batch of the wrong size is refused', async (t) => {
  await t.throwsAsync(tfjs.embedImages(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]), { instanceOf: InputError, message: /needs \[N, 3, 32, 32\]/ });
  await t.throwsAsync(onnx.embedImages(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]), { instanceOf: InputError, message: /needs \[N, 3, 32, 32\]/ });
});

test('save writes a folder that reloads to the same outputs and the same safetensors bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-clip-save-'));
  await tfjs.model.save(dir);
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json']) copyFileSync(join(fixture, file), join(dir, file));
  const reloaded = (await loadEncoder(dir, { backend: 'wasm' })) as TfjsClipEncoder;
  try {
    t.true(maxDifference(await reloaded.embedImages(referencePixels(), reference.pixel_shape), reference.image_embeds) < 1e-4);
    t.true(maxDifference(await reloaded.embedTexts(reference.texts), reference.text_embeds) < 1e-4);
    const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    t.is(saved.model_type, 'clip');
    t.is(saved.text_config.hidden_act, 'gelu');
    t.is(saved.text_config.eos_token_id, 32);
    // Saving is deterministic, so an unchanged model keeps its fingerprint.
    const first = await fingerprintModelFolder(dir, 'tfjs');
    await reloaded.model.save(dir);
    t.is(await fingerprintModelFolder(dir, 'tfjs'), first);
  } finally {
    await reloaded.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('legacy eos_token_id 2 pools at the largest id, as HF does for the original openai configs', async (t) => {
  const config = parseClipConfig({ ...JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')), text_config: { ...JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')).text_config, eos_token_id: 2 } }, 'config.json');
  const tensors = new Map((await tfjs.model.exportTensors()).map(([name, value]) => [name, value] as const));
  const legacy = ClipModel.fromTensors(config, tensors, 'memory');
  try {
    const batch = { inputIds: Int32Array.from([31, 5, 2, 32, 1, 0, 0, 0]), attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1]), batch: 2, length: 4 };
    // Row 0: argmax is 32 at position 3 (an id 2 at position 2 does not matter); row 1: 1 at position 0.
    t.deepEqual(Array.from(legacy.eosPositions(batch)), [3, 0]);
    t.deepEqual(Array.from(tfjs.model.eosPositions({ ...batch, inputIds: Int32Array.from([31, 5, 32, 32, 31, 32, 0, 0]) })), [2, 1]);
    const out = legacy.textForward(batch);
    const picked = tf.tidy(() => tf.matMul(out.tokens.slice([0, 3, 0], [1, 1, 32]).reshape([1, 32]), legacy.parameter('text_projection.weight') as tf.Tensor2D, false, true));
    const expected = await picked.data();
    const actual = (await out.embeds.data()).subarray(0, 16);
    expected.forEach((v, i) => t.true(Math.abs(v - actual[i]) < 1e-6));
    tf.dispose([out.tokens, out.pooled, out.embeds, picked]);
  } finally {
    legacy.dispose();
  }
});

test('a text without the EOS token is refused rather than pooled at position 0', (t) => {
  const batch = { inputIds: Int32Array.from([31, 5, 6]), attentionMask: Int32Array.from([1, 1, 1]), batch: 1, length: 3 };
  t.throws(() => tfjs.model.eosPositions(batch), { instanceOf: InputError, message: /holds no eos_token_id 32/ });
});

test('folders with pickled checkpoints only are refused with "convert to safetensors"', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-pickle-'));
  copyFileSync(join(fixture, 'config.json'), join(dir, 'config.json'));
  writeFileSync(join(dir, 'pytorch_model.bin'), 'not read');
  await t.throwsAsync(loadEncoder(dir), { instanceOf: InputError, message: /never unpickles.*convert to safetensors/ });
  await t.throwsAsync(loadEncoder(dir, { engine: 'tfjs', backend: 'wasm' }), { instanceOf: InputError, message: /convert to safetensors/ });
  rmSync(dir, { recursive: true, force: true });
});

test('an ONNX-only folder loads with the ONNX engine by default', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vlbench-onnx-only-'));
  cpSync(fixture, dir, { recursive: true });
  rmSync(join(dir, 'model.safetensors'));
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  const encoder = await loadEncoder(dir);
  try {
    t.is(encoder.engine, 'onnx');
    t.true(maxDifference(await encoder.embedImages(referencePixels(), reference.pixel_shape), reference.image_embeds) < 1e-5);
  } finally {
    await encoder.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tokenizer loads from an absolute folder path only, never from a hub', async (t) => {
  const tokenizer = await ClipTokenizer.load(fixture, 16);
  t.deepEqual(tokenizer.encodeOne('A photo of a RED circle'), [31, 0, 3, 5, 0, 6, 12, 32]);
  await t.throwsAsync(ClipTokenizer.load(join(tmpdir(), 'no-such-model-folder'), 16), { instanceOf: InputError, message: /tokenizer\.json is missing/ });
});
