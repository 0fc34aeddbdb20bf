import test from 'ava';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { OnnxClipEncoder, padToFixedLength, readTextGraphInputs } from '../../models/encoders/onnx-clip.ts';

/**
 * clip-tiny-text16 is clip-tiny's text graph exported on the same weights without a dynamic
 * sequence axis: input_ids [batch_size, 16], as torch.onnx.export of openai/CLIP writes [*, 77]
 * (scripts/make-onnx-fixture.py --weights-from test/fixtures/clip-tiny --text-sequence-length 16).
 */
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const dynamicFolder = join(fixtures, 'clip-tiny');
const fixedFolder = join(fixtures, 'clip-tiny-text16');
const dir = mkdtempSync(join(tmpdir(), 'vlbench-onnx-fixed-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** Texts of 3 to 16 tokens (BOS and EOS included); the last one is exactly 16. */
const TEXTS = [
  'cat',
  'a photo of a red circle',
  'Two blue squares, left of the yellow triangle.',
  'a small green dog on the right of a large cat above two squares',
];

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('the declared shapes are read: dynamic axes stay dynamic, fixed sizes are kept', async (t) => {
  const fixed = await OnnxClipEncoder.load(fixedFolder);
  const dynamic = await OnnxClipEncoder.load(dynamicFolder);
  try {
    t.deepEqual(fixed.textInputs, { declared: { input_ids: ['batch_size', 16], attention_mask: ['batch_size', 16] }, fixedLength: 16 });
    t.deepEqual(dynamic.textInputs, { declared: { input_ids: ['batch_size', 'sequence_length'], attention_mask: ['batch_size', 'sequence_length'] } });
  } finally {
    await fixed.dispose();
    await dynamic.dispose();
  }
  t.deepEqual(readTextGraphInputs({ input_ids: [1, 77], attention_mask: [1, 77] }, 'm.onnx'), { declared: { input_ids: [1, 77], attention_mask: [1, 77] }, fixedBatch: 1, fixedLength: 77 });
  t.throws(() => readTextGraphInputs({ input_ids: ['batch', 77], attention_mask: ['batch', 'sequence'] }, 'm.onnx'), {
    instanceOf: InputError,
    message: 'm.onnx: input_ids and attention_mask declare different shapes ([batch, 77] vs [batch, sequence])',
  });
});

test('a fixed 16-token text graph encodes texts of any length up to 16 as the dynamic export does, within 1e-5', async (t) => {
  const fixed = await OnnxClipEncoder.load(fixedFolder);
  const dynamic = await OnnxClipEncoder.load(dynamicFolder);
  try {
    const lengths = TEXTS.map((text) => fixed.tokenizer!.encodeOne(text).length);
    t.deepEqual(lengths, [3, 8, 12, 16]);
    // embedTexts pads to the longest text (8 tokens for a batch of the first two); the fixed graph needs 16.
    for (const batch of [TEXTS, TEXTS.slice(0, 2), [TEXTS[1]]]) {
      const expected = await dynamic.embedTexts(batch);
      const got = await fixed.embedTexts(batch);
      t.deepEqual(got.shape, [batch.length, 16]);
      t.true(maxAbsDifference(got.data, expected.data) < 1e-5, `${batch.length} texts: ${maxAbsDifference(got.data, expected.data)}`);
    }
    // Tokens too: the ids and mask returned are the 16-token ones the graph saw.
    const encoded = await fixed.encodeTexts(TEXTS, { padding: 'longest' });
    t.deepEqual(encoded.tokens.shape, [4, 16, 32]);
    t.is(encoded.inputIds.length, 4 * 16);
    t.deepEqual(Array.from(encoded.attentionMask.subarray(16, 32)), [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    const reference = await dynamic.encodeTexts(TEXTS, { padding: 'max_length' });
    t.true(maxAbsDifference(encoded.tokens.data, reference.tokens.data) < 1e-5);
  } finally {
    await fixed.dispose();
    await dynamic.dispose();
  }
});

test('a text longer than the fixed length is refused by index, naming the graph, before ONNX Runtime runs', async (t) => {
  // The same graph in a folder whose config allows 32 positions: the tokenizer keeps up to 32 tokens, the graph takes 16.
  const folder = join(dir, 'fixed-16-config-32');
  cpSync(fixedFolder, folder, { recursive: true });
  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8'));
  config.text_config.max_position_embeddings = 32;
  writeFileSync(join(folder, 'config.json'), JSON.stringify(config));
  const encoder = await OnnxClipEncoder.load(folder);
  try {
    const long = `${TEXTS[3]} and three blue circles`;
    t.is(encoder.tokenizer!.encodeOne(long).length, 20);
    await t.throwsAsync(encoder.embedTexts([TEXTS[0], long]), {
      instanceOf: InputError,
      message: `${join(folder, 'onnx', 'text_model.onnx')}, field "input_ids": text 2 of the batch has 20 tokens, but the text graph takes exactly 16 (input_ids declared [batch, 16]): shorten it to at most 16 tokens, special tokens included`,
    });
    t.is((await encoder.embedTexts([TEXTS[3]])).shape[0], 1);
  } finally {
    await encoder.dispose();
  }
});

test('a graph ONNX Runtime refuses is an InputError naming each input with the shape given and the shape declared', async (t) => {
  const encoder = await OnnxClipEncoder.load(dynamicFolder);
  try {
    // 20 positions where the graph has 16 position embeddings: ORT fails inside the graph.
    const length = 20;
    const batch = { inputIds: new Int32Array(length).fill(1), attentionMask: new Int32Array(length).fill(1), batch: 1, length };
    const error = await t.throwsAsync(encoder.runText(batch, false), { instanceOf: InputError });
    t.true(
      error!.message.startsWith(`${join(dynamicFolder, 'onnx', 'text_model.onnx')}: ONNX Runtime cannot run the graph on input_ids [1, 20] (int64), attention_mask [1, 20] (int64); ` +
        'the graph declares input_ids [batch_size, sequence_length], attention_mask [batch_size, sequence_length]: '),
      error!.message,
    );
  } finally {
    await encoder.dispose();
  }
});

test('padToFixedLength re-pads rows with the pad id and keeps each row\'s tokens and mask', (t) => {
  const batch = { inputIds: Int32Array.of(7, 1, 2, 9, 7, 3, 9, 9), attentionMask: Int32Array.of(1, 1, 1, 1, 1, 1, 1, 0), batch: 2, length: 4 };
  const padded = padToFixedLength(batch, 6, 9, 'm.onnx');
  t.deepEqual(Array.from(padded.inputIds), [7, 1, 2, 9, 9, 9, 7, 3, 9, 9, 9, 9]);
  t.deepEqual(Array.from(padded.attentionMask), [1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]);
  t.is(padded.length, 6);
  // Shorter is fine while every row fits: row 2 uses 3 of its 4 positions.
  t.deepEqual(Array.from(padToFixedLength({ ...batch, inputIds: batch.inputIds.slice(4), attentionMask: batch.attentionMask.slice(4), batch: 1 }, 3, 9, 'm.onnx').inputIds), [7, 3, 9]);
  t.throws(() => padToFixedLength(batch, 3, 9, 'm.onnx'), { message: /text 1 of the batch has 4 tokens, but the text graph takes exactly 3/ });
});

test('a graph with a fixed batch size runs in full chunks of that size and returns one row per text', async (t) => {
  const encoder = await OnnxClipEncoder.load(dynamicFolder);
  try {
    const whole = await encoder.encodeTexts(TEXTS.slice(0, 3), { padding: 'max_length' });
    // As a graph declaring input_ids [2, sequence] would be read: three texts run as two chunks of two.
    Object.assign(encoder, { textInputs: { ...encoder.textInputs, fixedBatch: 2 } });
    const chunked = await encoder.encodeTexts(TEXTS.slice(0, 3), { padding: 'max_length' });
    t.deepEqual(chunked.embeds.shape, [3, 16]);
    t.deepEqual(chunked.tokens.shape, [3, 16, 32]);
    t.true(maxAbsDifference(chunked.embeds.data, whole.embeds.data) < 1e-5);
    t.true(maxAbsDifference(chunked.tokens.data, whole.tokens.data) < 1e-5);
  } finally {
    await encoder.dispose();
  }
});

test('a vision graph with a fixed batch size runs in full chunks of that size and returns one row per image', async (t) => {
  const encoder = await OnnxClipEncoder.load(dynamicFolder);
  try {
    t.is(encoder.visionFixedBatch, undefined);
    const pixels = new Float32Array(3 * 3 * 32 * 32).map((_, i) => 1.7 * Math.sin(0.37 * i + 1.3));
    const whole = await encoder.encodeImages(pixels, [3, 3, 32, 32]);
    // As a graph declaring pixel_values [2, 3, 32, 32] would be read: three images run as two chunks of two.
    Object.assign(encoder, { visionFixedBatch: 2 });
    const chunked = await encoder.encodeImages(pixels, [3, 3, 32, 32]);
    t.deepEqual(chunked.embeds.shape, [3, 16]);
    t.deepEqual(chunked.tokens.shape, whole.tokens.shape);
    t.true(maxAbsDifference(chunked.embeds.data, whole.embeds.data) < 1e-5);
    t.true(maxAbsDifference(chunked.tokens.data, whole.tokens.data) < 1e-5);
  } finally {
    await encoder.dispose();
  }
});
