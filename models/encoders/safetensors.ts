import { open, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { InputError } from '../../core/errors.ts';
import { writeFileAtomically } from '../../core/atomic-write.ts';

/**
 * Reader and writer for the safetensors format (Hugging Face's weight file): an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets: [begin,
 * end]}, __metadata__?: {string: string}}`, then the raw little-endian tensor bytes.
 *
 * It is our own because no maintained safetensors package exists on npm. The format is
 * chosen precisely because reading it executes nothing, so the reader trusts nothing: every
 * header that lies about the bytes behind it is refused with the file and tensor named, with
 * the same rules as the reference implementation (tensors tile the data section exactly:
 * no overlaps, no holes, no trailing bytes).
 */

/** Element size in bytes of every dtype the format defines. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The reference implementation refuses headers over 100 MB; so do we, before allocating them. */
const MAX_HEADER_BYTES = 100_000_000;

export type WritableDtype = 'F32' | 'F16';

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section in the file. */
  dataStart: number;
}

/** A parsed file: header plus its bytes; tensors are decoded to float32 on request. */
export class SafetensorsFile {
  constructor(
    readonly file: string,
    readonly header: SafetensorsHeader,
    private readonly bytes: Uint8Array,
  ) {}

  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): SafetensorsEntry | undefined {
    return this.header.tensors.get(name);
  }

  /**
   * The tensor's values as float32: F32, F16 and BF16 exactly; integer dtypes (checkpoints
   * carry int64 `position_ids` buffers) only when every value is exact in float32.
   */
  float32(name: string): Float32Array {
    const entry = this.header.tensors.get(name);
    if (!entry) throw new InputError(`no tensor named "${name}"`, { file: this.file, record: name });
    const start = this.header.dataStart + entry.begin;
    const raw = this.bytes.subarray(start, this.header.dataStart + entry.end);
    const count = elementCount(entry.shape);
    switch (entry.dtype) {
      case 'F32': {
        const out = new Float32Array(count);
        new Uint8Array(out.buffer).set(raw);
        return out;
      }
      case 'F16':
        return float16ToFloat32(raw, count);
      case 'BF16': {
        const halves = new Uint16Array(count);
        new Uint8Array(halves.buffer).set(raw);
        const bits = new Uint32Array(count);
        for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
        return new Float32Array(bits.buffer);
      }
      case 'I64':
      case 'I32': {
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) {
          const value = entry.dtype === 'I64' ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true);
          if (Math.abs(value) > 2 ** 24) throw new InputError(`integer tensor value ${value} is not exact as float32`, { file: this.file, record: name });
          out[i] = value;
        }
        return out;
      }
      default:
        throw new InputError(`dtype ${entry.dtype} cannot be read as float32 (supported: F32, F16, BF16, I64, I32)`, { file: this.file, record: name, field: 'dtype' });
    }
  }
}

if (endianness() !== 'LE') {
  // Typed-array views below read the file's little-endian bytes in host order.
  throw new Error('vlbench reads safetensors on little-endian machines only');
}

export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new InputError(`cannot read safetensors file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
  return parseSafetensors(bytes, file);
}

/** Reads and validates only the header (for checking names and shapes without the data). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await open(file, 'r').catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read safetensors file: ${error.code ?? error.message}`, { file });
  });
  try {
    const { size } = await handle.stat();
    const prefix = Buffer.alloc(8);
    await handle.read(prefix, 0, Math.min(8, size), 0);
    const headerLength = checkHeaderLength(prefix, size, file);
    const headerBytes = Buffer.alloc(headerLength);
    await handle.read(headerBytes, 0, headerLength, 8);
    return parseHeader(headerBytes, size, file);
  } finally {
    await handle.close();
  }
}

export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const headerLength = checkHeaderLength(bytes, bytes.byteLength, file);
  const header = parseHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength, file);
  return new SafetensorsFile(file, header, bytes);
}

function checkHeaderLength(bytes: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) throw new InputError(`not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`, { file });
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(fileSize - 8)) {
    throw new InputError(`header length ${length} is larger than the ${fileSize - 8} bytes after it (truncated file, or not safetensors)`, { file });
  }
  if (length > BigInt(MAX_HEADER_BYTES)) throw new InputError(`header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`, { file });
  if (length < 2n) throw new InputError(`header length ${length} is too short for a JSON object`, { file });
  return Number(length);
}

function parseHeader(headerBytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw new InputError(`header is not valid UTF-8 JSON: ${(error as Error).message}`, { file });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError('header is not a JSON object', { file });
  const dataStart = 8 + headerBytes.byteLength;
  const dataLength = fileSize - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, file);
      continue;
    }
    tensors.set(name, parseEntry(name, value, dataLength, file));
  }
  checkTiling(tensors, dataLength, file);
  return { tensors, metadata, dataStart };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InputError('__metadata__ must be an object of strings', { file, record: '__metadata__' });
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw new InputError(`__metadata__ value must be a string, got ${typeof item}`, { file, record: '__metadata__', field: key });
  }
  return value as Record<string, string>;
}

function parseEntry(name: string, value: unknown, dataLength: number, file: string): SafetensorsEntry {
  const where = { file, record: name };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError('tensor entry must be an object {dtype, shape, data_offsets}', where);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw new InputError('dtype must be a string', { ...where, field: 'dtype' });
  const elementBytes = DTYPE_BYTES[dtype];
  if (elementBytes === undefined) throw new InputError(`unknown dtype "${dtype}" (known: ${Object.keys(DTYPE_BYTES).join(', ')})`, { ...where, field: 'dtype' });
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(`shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`, { ...where, field: 'shape' });
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(`data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`, { ...where, field: 'data_offsets' });
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new InputError(`data_offsets begin ${begin} is after end ${end}`, { ...where, field: 'data_offsets' });
  if (end > dataLength) throw new InputError(`data_offsets end ${end} is past the end of the data section (${dataLength} bytes)`, { ...where, field: 'data_offsets' });
  const expected = elementCount(shape) * elementBytes;
  if (end - begin !== expected) {
    throw new InputError(`holds ${end - begin} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${expected}`, { ...where, field: 'data_offsets' });
  }
  return { dtype, shape: shape as number[], begin, end };
}

/** Tensors must cover the data section exactly once, as the reference implementation requires. */
function checkTiling(tensors: Map<string, SafetensorsEntry>, dataLength: number, file: string): void {
  const sorted = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let cursor = 0;
  let previous = '';
  for (const [name, entry] of sorted) {
    if (entry.begin < cursor) throw new InputError(`bytes ${entry.begin}..${entry.end} overlap tensor "${previous}" (which ends at ${cursor})`, { file, record: name, field: 'data_offsets' });
    if (entry.begin > cursor) throw new InputError(`bytes ${cursor}..${entry.begin} before this tensor belong to no tensor (a hole in the data section)`, { file, record: name, field: 'data_offsets' });
    cursor = entry.end;
    previous = name;
  }
  if (cursor !== dataLength) throw new InputError(`the data section has ${dataLength} bytes but its tensors cover only ${cursor}`, { file });
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface TensorToWrite {
  shape: readonly number[];
  data: Float32Array;
}

/** Encodes tensors (in the given order) as a safetensors file, F32 by default. */
export function encodeSafetensors(
  tensors: Iterable<[string, TensorToWrite]>,
  options: { dtype?: WritableDtype; metadata?: Record<string, string> } = {},
): Buffer {
  const dtype = options.dtype ?? 'F32';
  const elementBytes = DTYPE_BYTES[dtype];
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  const list = [...tensors];
  let offset = 0;
  for (const [name, tensor] of list) {
    if (name === '__metadata__') throw new Error('"__metadata__" is reserved and cannot name a tensor');
    const count = elementCount(tensor.shape);
    if (count !== tensor.data.length) throw new Error(`tensor "${name}": shape [${tensor.shape.join(', ')}] needs ${count} values, got ${tensor.data.length}`);
    header[name] = { dtype, shape: [...tensor.shape], data_offsets: [offset, offset + count * elementBytes] };
    offset += count * elementBytes;
  }
  let headerText = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  headerText += ' '.repeat((8 - ((Buffer.byteLength(headerText) + 8) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let cursor = 8 + headerBytes.length;
  for (const [, tensor] of list) {
    const bytes = dtype === 'F32' ? new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength) : new Uint8Array(float32ToFloat16(tensor.data).buffer);
    out.set(bytes, cursor);
    cursor += bytes.byteLength;
  }
  return out;
}

/** Writes atomically: a reader never sees a half-written checkpoint. */
export async function writeSafetensors(
  file: string,
  tensors: Iterable<[string, TensorToWrite]>,
  options: { dtype?: WritableDtype; metadata?: Record<string, string> } = {},
): Promise<void> {
  await writeFileAtomically(file, encodeSafetensors(tensors, options));
}

let float16Table: Float32Array | undefined;

/** All 65,536 half values, computed once: a table lookup is the fast way to widen 150 M of them. */
function float16Values(): Float32Array {
  if (float16Table) return float16Table;
  float16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) float16Table[h] = sign * fraction * 2 ** -24;
    else if (exponent === 31) float16Table[h] = fraction ? NaN : sign * Infinity;
    else float16Table[h] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  return float16Table;
}

function float16ToFloat32(raw: Uint8Array, count: number): Float32Array {
  const halves = new Uint16Array(count);
  new Uint8Array(halves.buffer).set(raw);
  const table = float16Values();
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = table[halves[i]];
  return out;
}

/** Round-to-nearest-even float32 → float16, as numpy and torch convert. */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mantissa |= 0x800000;
      const shift = 14 - e;
      let half = mantissa >>> shift;
      const remainder = mantissa & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (remainder > halfway || (remainder === halfway && half & 1)) half++;
      out[i] = sign | half;
    } else {
      let half = (e << 10) | (mantissa >>> 13);
      const remainder = mantissa & 0x1fff;
      if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++;
      out[i] = sign | half;
    }
  }
  return out;
}
