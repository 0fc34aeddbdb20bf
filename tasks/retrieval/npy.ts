import { readFile, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { InputError } from '../../core/errors.ts';

/**
 * NumPy .npy files, only the part retrieval needs: 2-D float32 / float64, little endian, C order.
 * The format is a short magic + a Python-dict header + raw data (numpy's NEP 1), and the npm
 * packages that read it are unmaintained, so it is parsed here; anything else is refused with a
 * message that says how to re-save the array.
 */

/** A row-major matrix: element (r, c) is data[r * cols + c]. */
export interface SimilarityMatrix {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
  /** The .npy file the matrix was read from, so an error about its values (a NaN cell) names it. */
  file?: string;
}

/** Typed arrays use the host's byte order; the files are little endian (x64 and arm64 hosts are too). */
function requireLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('.npy matrices are read and written on little-endian hosts only');
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // "\x93NUMPY"

export async function readNpyMatrix(file: string): Promise<SimilarityMatrix> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? 'similarity matrix file not found' : `cannot read (${(error as Error).message})`, { file });
  }
  return parseNpyMatrix(bytes, file);
}

export function parseNpyMatrix(bytes: Buffer, file: string): SimilarityMatrix {
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC)) {
    throw new InputError('not a .npy file (no \\x93NUMPY magic); save the matrix with numpy.save', { file });
  }
  const major = bytes[6];
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = bytes.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new InputError('truncated .npy header', { file });
    headerLength = bytes.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw new InputError(`unsupported .npy format version ${major}.${bytes[7]} (expected 1, 2 or 3)`, { file });
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw new InputError('truncated .npy header', { file });
  const header = bytes.subarray(headerStart, dataStart).toString(major === 3 ? 'utf8' : 'latin1');

  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(`unreadable .npy header ${JSON.stringify(header.trim())}`, { file });
  }
  const shape = shapeText.split(',').map((part) => part.trim()).filter((part) => part !== '').map(Number);
  if (shape.length !== 2 || !shape.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new InputError(`expected a 2-D matrix [images, captions], got shape (${shapeText.trim()})`, { file });
  }
  if (fortran === 'True') {
    throw new InputError('expected C order, got fortran_order True; save numpy.ascontiguousarray(matrix)', { file });
  }
  const elementSize = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (elementSize === 0) {
    const hint = descr.startsWith('>') ? 'big-endian data; save matrix.astype("<f4")' : 'save matrix.astype(numpy.float32)';
    throw new InputError(`expected dtype float32 or float64 little endian ('<f4' or '<f8'), got '${descr}' (${hint})`, { file });
  }
  const [rows, cols] = shape;
  const expectedBytes = rows * cols * elementSize;
  if (bytes.length - dataStart !== expectedBytes) {
    throw new InputError(`shape (${rows}, ${cols}) of ${descr} needs ${expectedBytes} data bytes, the file has ${bytes.length - dataStart}`, { file });
  }
  requireLittleEndianHost();
  // Typed arrays need their byte offset aligned to the element size; copy only when it is not.
  const offset = bytes.byteOffset + dataStart;
  const buffer = offset % elementSize === 0 ? bytes.buffer : bytes.buffer.slice(offset, offset + expectedBytes);
  const start = offset % elementSize === 0 ? offset : 0;
  const data = elementSize === 4 ? new Float32Array(buffer, start, rows * cols) : new Float64Array(buffer, start, rows * cols);
  return { data, rows, cols, file };
}

/** Writes a matrix as .npy version 1.0, readable by numpy.load. */
export async function writeNpyMatrix(file: string, matrix: SimilarityMatrix): Promise<void> {
  await writeFile(file, encodeNpyMatrix(matrix));
}

export function encodeNpyMatrix({ data, rows, cols }: SimilarityMatrix): Buffer {
  if (data.length !== rows * cols) throw new Error(`matrix of ${rows}×${cols} holds ${data.length} values`);
  const descr = data instanceof Float32Array ? '<f4' : '<f8';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  // numpy pads the header with spaces and a final newline so the data starts on a 64-byte boundary.
  const unpadded = MAGIC.length + 4 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(prefix);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  requireLittleEndianHost();
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]);
}
