import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { encodeSafetensors, float32ToFloat16, parseSafetensors, readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../models/encoders/safetensors.ts';

const dir = mkdtempSync(join(tmpdir(), 'vlbench-safetensors-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** A file from a hand-written header and data section, to make each lie exactly. */
function craft(header: unknown, data: Uint8Array | number, headerText?: string): Buffer {
  const text = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = Buffer.alloc(8 + text.length + body.length);
  out.writeBigUInt64LE(BigInt(text.length), 0);
  text.copy(out, 8);
  out.set(body, 8 + text.length);
  return out;
}

function refused(t: import('ava').ExecutionContext, bytes: Uint8Array, pattern: RegExp, tensor?: string): void {
  const error = t.throws(() => parseSafetensors(bytes, 'weights.safetensors'), { instanceOf: InputError });
  t.regex(error!.message, /^weights\.safetensors/);
  t.regex(error!.message, pattern);
  if (tensor) t.true(error!.message.includes(`record "${tensor}"`), error!.message);
}

test('F32 round trip keeps names, shapes, order, values and metadata', async (t) => {
  const file = join(dir, 'round.safetensors');
  const a = { shape: [2, 3], data: Float32Array.from([1, -2.5, 3e-8, 4e20, -0, Math.PI]) };
  const b = { shape: [], data: Float32Array.of(2.6592) };
  const c = { shape: [0, 4], data: new Float32Array(0) };
  await writeSafetensors(file, [['z.weight', a], ['logit_scale', b], ['empty', c]], { metadata: { format: 'pt' } });
  const read = await readSafetensors(file);
  t.deepEqual(read.names, ['z.weight', 'logit_scale', 'empty']);
  t.deepEqual(read.metadata, { format: 'pt' });
  t.deepEqual(read.entry('z.weight')!.shape, [2, 3]);
  t.deepEqual(read.float32('z.weight'), a.data);
  t.deepEqual(read.float32('logit_scale'), b.data);
  t.deepEqual(read.float32('empty'), new Float32Array(0));
  // The data section starts 8-byte aligned, as the reference writer pads it.
  t.is(read.header.dataStart % 8, 0);
  const header = await readSafetensorsHeader(file);
  t.deepEqual([...header.tensors.keys()], ['z.weight', 'logit_scale', 'empty']);
});

test('F16 and BF16 are read exactly; F16 writing rounds to nearest even', (t) => {
  const values = Float32Array.from([0, -0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, Infinity, 0.1]);
  const halves = float32ToFloat16(values);
  t.deepEqual([...halves.subarray(0, 9)], [0x0000, 0x8000, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0400, 0x0001, 0x7c00]);
  t.is(halves[9], 0x2e66); // 0.1 → 0.0999755859375
  const f16 = parseSafetensors(encodeSafetensors([['h', { shape: [10], data: values }]], { dtype: 'F16' }), 'f16');
  t.deepEqual([...f16.float32('h')], [0, -0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, Infinity, 0.0999755859375]);
  // BF16 is the top half of a float32: 1.0 = 0x3f80, -2.0 = 0xc000, 3.140625 = 0x4049.
  const bf16 = Uint8Array.from([0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0, 0]);
  const read = parseSafetensors(craft({ b: { dtype: 'BF16', shape: [4], data_offsets: [0, 8] } }, bf16), 'bf16');
  t.deepEqual([...read.float32('b')], [1, -2, 3.140625, 0]);
});

test('int64 position_ids buffers read as float32', (t) => {
  const data = new Uint8Array(new BigInt64Array([0n, 1n, 2n]).buffer);
  const read = parseSafetensors(craft({ 'text_model.embeddings.position_ids': { dtype: 'I64', shape: [1, 3], data_offsets: [0, 24] } }, data), 'ids');
  t.deepEqual([...read.float32('text_model.embeddings.position_ids')], [0, 1, 2]);
});

test('refuses a file shorter than the length prefix', (t) => {
  refused(t, new Uint8Array(5), /shorter than the 8-byte header length/);
});

test('refuses a header length larger than the file', (t) => {
  const bytes = craft({}, 0);
  bytes.writeBigUInt64LE(1000n, 0);
  refused(t, bytes, /header length 1000 is larger than the 2 bytes after it/);
});

test('refuses a header that is not JSON, or not an object', (t) => {
  refused(t, craft(null, 0, '{"a": [1, 2'), /not valid UTF-8 JSON/);
  refused(t, craft([1, 2], 0), /not a JSON object/);
});

test('refuses an unknown dtype, naming the tensor', (t) => {
  refused(t, craft({ w: { dtype: 'F31', shape: [1], data_offsets: [0, 4] } }, 4), /unknown dtype "F31"/, 'w');
});

test('refuses offsets past the end of the file', (t) => {
  refused(t, craft({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /end 16 is past the end of the data section \(8 bytes\)/, 'w');
});

test('refuses begin after end', (t) => {
  refused(t, craft({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 8), /begin 8 is after end 4/, 'w');
});

test('refuses a byte range that does not match shape × dtype size', (t) => {
  refused(t, craft({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 8] } }, 8), /holds 8 bytes, but shape \[2, 3\] of F16 needs 12/, 'w');
});

test('refuses overlapping tensors, naming both', (t) => {
  const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
  refused(t, craft(header, 12), /overlap tensor "a"/, 'b');
});

test('refuses holes and trailing bytes in the data section', (t) => {
  const hole = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
  refused(t, craft(hole, 12), /bytes 4\.\.8 before this tensor belong to no tensor/, 'b');
  refused(t, craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 12), /has 12 bytes but its tensors cover only 4/);
});

test('refuses malformed entries and metadata', (t) => {
  refused(t, craft({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /shape must be a list of non-negative integers/, 'w');
  refused(t, craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4), /data_offsets must be \[begin, end\]/, 'w');
  refused(t, craft({ w: [1] }, 0), /tensor entry must be an object/, 'w');
  refused(t, craft({ __metadata__: { epoch: 3 } }, 0), /__metadata__ value must be a string/);
});

test('an unreadable dtype is refused when read, naming the tensor', (t) => {
  const read = parseSafetensors(craft({ q: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, 4), 'f8');
  const error = t.throws(() => read.float32('q'), { instanceOf: InputError });
  t.regex(error!.message, /record "q".*dtype F8_E4M3 cannot be read as float32/);
});

test('readSafetensors names a missing file', async (t) => {
  const error = await t.throwsAsync(readSafetensors(join(dir, 'absent.safetensors')), { instanceOf: InputError });
  t.regex(error!.message, /absent\.safetensors: cannot read safetensors file: ENOENT/);
});

test('a lying file on disk is refused by the header reader too', async (t) => {
  const file = join(dir, 'lying.safetensors');
  writeFileSync(file, craft({ w: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, 16));
  await t.throwsAsync(readSafetensorsHeader(file), { instanceOf: InputError, message: /record "w".*past the end/ });
});
