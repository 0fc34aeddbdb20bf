import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import type { AlignedEncoder, HostTensor } from '../../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { clipConfigToJson, parseClipConfig } from '../../models/encoders/clip-config.ts';
import { InputError } from '../../core/errors.ts';
import type { TfjsClipEncoder } from '../../models/encoders/clip-encoder.ts';

/**
 * test/fixtures/siglip-tiny was made by scripts/make-siglip-fixture.py: a tiny random SigLIP
 * from our PyTorch reference (written from the paper and big_vision's description, in
 * transformers' SiglipModel layout), its ONNX exports, and torch's outputs in reference.json.
 * The project wrote none of its numbers.
 */
const fixture = join(import.meta.dirname, '..', 'fixtures', 'siglip-tiny');
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
  logit_bias: number;
  logits_per_image: number[][];
};

function referencePixels(): Float32Array {
  const [n, c, h, w] = reference.pixel_shape;
  const pixels = new Float32Array(n * c * h * w);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.fround(1.7 * Math.sin(0.37 * i + 1.3));
  return pixels;
}

function maxDifference(actual: ArrayLike<number>, expected: unknown[]): number {
  const flat = (expected as number[]).flat(3) as number[];
  if (flat.length !== actual.length) return Infinity;
  let max = 0;
  for (let i = 0; i < flat.length; i++) max = Math.max(max, Math.abs(actual[i] - flat[i]));
  return max;
}

/** Splits SigLIP's token rows [N, 1 + P, D] into the pooled vector (token 0) and HF's last_hidden_state (the rest). */
function splitTokens(tokens: HostTensor): { pooled: Float32Array; rest: Float32Array } {
  const [n, length, dim] = tokens.shape;
  const pooled = new Float32Array(n * dim);
  const rest = new Float32Array(n * (length - 1) * dim);
  for (let row = 0; row < n; row++) {
    pooled.set(tokens.data.subarray(row * length * dim, row * length * dim + dim), row * dim);
    rest.set(tokens.data.subarray(row * length * dim + dim, (row + 1) * length * dim), row * (length - 1) * dim);
  }
  return { pooled, rest };
}

let tfjs: TfjsClipEncoder;
let onnx: AlignedEncoder | undefined;
let onnxError: unknown;

test.before(async () => {
  await selectBackend('wasm');
  tfjs = (await loadEncoder(fixture, { backend: 'wasm' })) as TfjsClipEncoder;
  try {
    onnx = await loadEncoder(fixture, { engine: 'onnx' });
  } catch (error) {
    onnxError = error;
  }
});

test.after.always(async () => {
  await tfjs?.dispose();
  await onnx?.dispose();
});

test('a SiglipConfig parses with its own defaults and refuses a text head that does not meet the vision width', (t) => {
  t.is(tfjs.config.family, 'siglip');
  t.is(tfjs.embeddingDim, 32);
  t.is(tfjs.textTokenDim, 24);
  t.is(tfjs.config.text.hidden_act, 'gelu_pytorch_tanh');
  const defaults = parseClipConfig({ model_type: 'siglip', text_config: {}, vision_config: {} }, 'c.json');
  t.is(defaults.vision.patch_size, 16);
  t.is(defaults.text.max_position_embeddings, 64);
  t.is(defaults.text.layer_norm_eps, 1e-6);
  t.is(defaults.projectionDim, 768);
  t.is(defaults.logitBiasInit, -10);
  const json = clipConfigToJson(defaults);
  t.is(json.model_type, 'siglip');
  t.is(parseClipConfig(json, 'c.json').family, 'siglip');
  t.throws(() => parseClipConfig({ model_type: 'siglip', text_config: { projection_size: 512 } }, 'c.json'), { instanceOf: InputError, message: /projection_size 512 must equal the vision hidden_size 768/ });
  t.throws(() => parseClipConfig({ model_type: 'siglip', vision_config: { vision_use_head: false } }, 'c.json'), { instanceOf: InputError, message: /no attention-pooling head/ });
});

test('the tokenizer gives the reference ids: "</s>" last, always padded to max_length', (t) => {
  const batch = tfjs.tokenizer.encode(reference.texts, 'longest');
  t.is(batch.length, 16);
  t.deepEqual(Array.from(batch.inputIds), reference.input_ids.flat());
  t.deepEqual(Array.from(batch.attentionMask), reference.attention_mask.flat());
});

test('tfjs SigLIP matches the PyTorch reference to 1e-4 (embeddings, tokens, logits)', async (t) => {
  const images = await tfjs.encodeImages(referencePixels(), reference.pixel_shape);
  t.deepEqual(images.embeds.shape, [2, 32]);
  t.deepEqual(images.tokens.shape, [2, 17, 32]);
  t.true(maxDifference(images.embeds.data, reference.image_embeds) < 1e-4, `image embeds differ by ${maxDifference(images.embeds.data, reference.image_embeds)}`);
  const { pooled, rest } = splitTokens(images.tokens);
  t.true(maxDifference(pooled, reference.image_embeds) < 1e-4);
  t.true(maxDifference(rest, reference.image_tokens) < 1e-4);
  const texts = await tfjs.encodeTexts(reference.texts);
  t.deepEqual(texts.tokens.shape, [3, 16, 24]);
  t.true(maxDifference(texts.embeds.data, reference.text_embeds) < 1e-4, `text embeds differ by ${maxDifference(texts.embeds.data, reference.text_embeds)}`);
  t.true(maxDifference(texts.tokens.data, reference.text_tokens) < 1e-4);
  t.true(maxDifference((await tfjs.embedTexts(reference.texts)).data, reference.text_embeds) < 1e-4);
  t.true(Math.abs((await tfjs.model.logitScale.data())[0] - reference.logit_scale) < 1e-6);
  t.true(Math.abs((await tfjs.model.logitBias!.data())[0] - reference.logit_bias) < 1e-6);
  const logits = tf.tidy(() => {
    const x = tf.tensor2d(images.embeds.data, [2, 32]);
    const y = tf.tensor2d(texts.embeds.data, [3, 32]);
    const unit = (m: tf.Tensor2D) => m.div(m.norm('euclidean', 1, true));
    return tf.matMul(unit(x), unit(y), false, true).mul(tfjs.model.logitScale.exp()).add(tfjs.model.logitBias!);
  });
  t.true(maxDifference(await logits.data(), reference.logits_per_image) < 1e-4);
  logits.dispose();
});

test('the ONNX engine loads the exported SigLIP and matches PyTorch and tfjs to 1e-4', async (t) => {
  if (!onnx) return t.fail(`the ONNX engine did not load: ${String(onnxError)}`);
  t.is(onnx.config.family, 'siglip');
  const pixels = referencePixels();
  const images = await onnx.encodeImages(pixels, reference.pixel_shape);
  t.deepEqual(images.tokens.shape, [2, 17, 32]);
  t.true(maxDifference(images.embeds.data, reference.image_embeds) < 1e-4, `image embeds differ by ${maxDifference(images.embeds.data, reference.image_embeds)}`);
  t.true(maxDifference(splitTokens(images.tokens).rest, reference.image_tokens) < 1e-4);
  const texts = await onnx.encodeTexts(reference.texts);
  t.true(maxDifference(texts.embeds.data, reference.text_embeds) < 1e-4, `text embeds differ by ${maxDifference(texts.embeds.data, reference.text_embeds)}`);
  t.true(maxDifference(texts.tokens.data, reference.text_tokens) < 1e-4);
  t.true(maxDifference((await onnx.embedTexts(reference.texts)).data, reference.text_embeds) < 1e-4);
  const tfjsImages = await tfjs.embedImages(pixels, reference.pixel_shape);
  let max = 0;
  tfjsImages.data.forEach((v, i) => (max = Math.max(max, Math.abs(v - images.embeds.data[i]))));
  t.true(max < 1e-4);
});
