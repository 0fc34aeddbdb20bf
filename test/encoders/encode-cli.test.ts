import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { main } from '../../cli/program.ts';
import { runEncode } from '../../cli/commands/encode.ts';
import { InputError } from '../../core/errors.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';

const fixture = join(import.meta.dirname, '..', 'fixtures', 'clip-tiny');
const dir = mkdtempSync(join(tmpdir(), 'vlbench-encode-'));
const images = [join(dir, 'red.png'), join(dir, 'blue.jpg'), join(dir, 'wide.png')];
const textsFile = join(dir, 'texts.txt');
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.before(async () => {
  await sharp({ create: { width: 40, height: 48, channels: 3, background: { r: 220, g: 20, b: 30 } } }).png().toFile(images[0]);
  await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 10, g: 60, b: 230 } } }).jpeg().toFile(images[1]);
  const gradient = Buffer.alloc(96 * 40 * 3).map((_, i) => (i * 7) % 256);
  await sharp(gradient, { raw: { width: 96, height: 40, channels: 3 } }).png().toFile(images[2]);
  writeFileSync(textsFile, 'a photo of a red circle\ntwo blue squares\nthe large cat on the left\n');
});

test.serial('encode writes one row per image in argument order and per text line, matching the encoder', async (t) => {
  const out = join(dir, 'tfjs.json');
  const code = await main(['encode', '--model', fixture, '--images', images[2], images[0], images[1], '--texts', textsFile, '--out', out, '--backend', 'wasm']);
  t.is(code, 0);
  const written = JSON.parse(readFileSync(out, 'utf8'));
  t.is(written.image_embeds.length, 3);
  t.is(written.text_embeds.length, 3);
  t.is(written.image_embeds[0].length, 16);
  t.is(written.engine, 'tfjs');
  t.false(written.normalized);
  const encoder = await loadEncoder(fixture, { backend: 'wasm' });
  try {
    // red.png is one flat colour, so CLIP's preprocessing gives (v / 255 - mean) / std on every
    // pixel of the 32 × 32 crop whatever the resize: the expected input, from the definition.
    const { mean, std } = encoder.preprocessing;
    const plane = 32 * 32;
    const pixels = new Float32Array(3 * plane).map((_, i) => {
      const c = Math.floor(i / plane);
      return ([220, 20, 30][c] / 255 - mean[c]) / std[c];
    });
    const expected = await encoder.embedImages(pixels, [1, 3, 32, 32]);
    written.image_embeds[1].forEach((v: number, i: number) => t.true(Math.abs(v - expected.data[i]) < 1e-6));
    const text = await encoder.embedTexts(['two blue squares']);
    written.text_embeds[1].forEach((v: number, i: number) => t.true(Math.abs(v - text.data[i]) < 1e-6));
  } finally {
    await encoder.dispose();
  }
});

test.serial('--normalize gives unit rows; the ONNX engine agrees with tfjs to 1e-4', async (t) => {
  const tfjs = await runEncode({ model: fixture, images, texts: textsFile, out: join(dir, 'a.json'), normalize: true, backend: 'wasm' });
  const onnx = await runEncode({ model: fixture, engine: 'onnx', images, texts: textsFile, out: join(dir, 'b.json'), normalize: true });
  t.is(onnx.engine, 'onnx');
  t.is(onnx.backend, 'onnxruntime');
  for (const row of [...tfjs.image_embeds, ...tfjs.text_embeds]) t.true(Math.abs(Math.hypot(...row) - 1) < 1e-6);
  tfjs.image_embeds.forEach((row, r) => row.forEach((v, i) => t.true(Math.abs(v - onnx.image_embeds[r][i]) < 1e-4)));
  tfjs.text_embeds.forEach((row, r) => row.forEach((v, i) => t.true(Math.abs(v - onnx.text_embeds[r][i]) < 1e-4)));
});

test.serial('texts only: image_embeds is empty', async (t) => {
  const result = await runEncode({ model: fixture, texts: textsFile, out: join(dir, 'c.json'), backend: 'wasm' });
  t.deepEqual(result.image_embeds, []);
  t.is(result.text_embeds.length, 3);
});

test.serial('bad input is refused before anything is written', async (t) => {
  const out = join(dir, 'never.json');
  await t.throwsAsync(runEncode({ model: fixture, out }), { instanceOf: InputError, message: /nothing to encode/ });
  await t.throwsAsync(runEncode({ model: fixture, images: [join(dir, 'missing.png')], out }), { instanceOf: InputError, message: /missing\.png: image file does not exist/ });
  await t.throwsAsync(runEncode({ model: fixture, texts: textsFile, out, engine: 'torch' }), { instanceOf: InputError, message: /unknown engine "torch"/ });
  await t.throwsAsync(runEncode({ model: fixture, texts: textsFile, out, batch: '0' }), { instanceOf: InputError, message: /--batch/ });
  const gappy = join(dir, 'gappy.txt');
  writeFileSync(gappy, 'a cat\n\na dog\n');
  await t.throwsAsync(runEncode({ model: fixture, texts: gappy, out }), { instanceOf: InputError, message: /gappy\.txt, record "line 2": empty line/ });
  await t.throwsAsync(runEncode({ model: join(dir, 'no-model'), texts: textsFile, out }), { instanceOf: InputError, message: /model folder does not exist/ });
  // Latin-1, not UTF-8: refused naming the line and the byte offset, never embedded as "caf\ufffd".
  const latin1 = join(dir, 'latin1.txt');
  writeFileSync(latin1, Buffer.concat([Buffer.from('a cat\na caf'), Buffer.from([0xe9]), Buffer.from(' sign\n')]));
  await t.throwsAsync(runEncode({ model: fixture, texts: latin1, out }), { instanceOf: InputError, message: /latin1\.txt, record "line 2": not UTF-8: invalid byte sequence at byte offset 11 \(0xe9 / });
  t.false(existsSync(out));
  // Through the CLI: one line on stderr, exit code 2.
  t.is(await main(['encode', '--model', fixture, '--out', out]), 2);
  t.is(await main(['encode', '--model', fixture, '--texts', latin1, '--out', out]), 2);
  t.false(existsSync(out));
});
