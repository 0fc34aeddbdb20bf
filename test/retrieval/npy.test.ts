import test from 'ava';
import { encodeNpyMatrix, parseNpyMatrix } from '../../tasks/retrieval/index.ts';

/** Bytes exactly as numpy.save writes them (format 1.0, header padded to 64 bytes). */
function numpyBytes(header: string, body: Buffer, version = 1): Buffer {
  const prefixLength = version === 1 ? 10 : 12;
  const padded = header + ' '.repeat((64 - ((prefixLength + header.length + 1) % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(prefixLength);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(prefix);
  if (version === 1) prefix.writeUInt16LE(padded.length, 8);
  else prefix.writeUInt32LE(padded.length, 8);
  return Buffer.concat([prefix, Buffer.from(padded, 'latin1'), body]);
}

function float64Body(values: number[]): Buffer {
  const body = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => body.writeDoubleLE(v, i * 8));
  return body;
}

test('reads numpy float64 (format 1.0 and 2.0) and float32 files', (t) => {
  const bytes = numpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", float64Body([1, 2, 3, 4, 5, 6.5]));
  const matrix = parseNpyMatrix(bytes, 'x.npy');
  t.true(matrix.data instanceof Float64Array);
  t.deepEqual([...matrix.data], [1, 2, 3, 4, 5, 6.5]);
  t.is(matrix.rows, 2);
  t.is(matrix.cols, 3);
  const v2 = parseNpyMatrix(numpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", float64Body([1, 2, 3, 4, 5, 6]), 2), 'x.npy');
  t.is(v2.rows, 3);

  const f32 = new Float32Array([0.25, -1, 3.5, 1e-8]);
  const f32Bytes = numpyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }", Buffer.from(f32.buffer));
  t.deepEqual(parseNpyMatrix(f32Bytes, 'x.npy'), { data: f32, rows: 1, cols: 4, file: 'x.npy' });
  // Data that does not start on a 4-byte boundary of its buffer is copied, not misread.
  const shifted = Buffer.concat([Buffer.alloc(1), f32Bytes]).subarray(1);
  t.deepEqual([...parseNpyMatrix(shifted, 'x.npy').data], [...f32]);
});

test('the writer produces the bytes numpy.save writes', (t) => {
  const data = new Float64Array([1, 2, 3, 4, 5, 6.5]);
  const expected = numpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", float64Body([...data]));
  const written = encodeNpyMatrix({ data, rows: 2, cols: 3 });
  t.true(written.equals(expected));
  t.is((written.length - 6 * 8) % 64, 0);
  t.deepEqual(parseNpyMatrix(written, 'x.npy'), { data, rows: 2, cols: 3, file: 'x.npy' });
});

test('refuses what is not a 2-D little-endian float32/float64 C-order matrix, saying how to fix it', (t) => {
  const body = float64Body([1, 2, 3, 4, 5, 6]);
  const cases: [Buffer, RegExp][] = [
    [Buffer.from('col1,col2\n1,2\n'), /x\.npy: not a \.npy file/],
    [numpyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", body.subarray(0, 24)), /expected dtype float32 or float64 little endian .* got '<i4'/],
    [numpyBytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", body), /got '>f8' \(big-endian data/],
    [numpyBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", body), /expected C order, got fortran_order True; save numpy\.ascontiguousarray/],
    [numpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", body), /expected a 2-D matrix \[images, captions\], got shape \(6,\)/],
    [numpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 3), }", body), /got shape \(1, 2, 3\)/],
    [numpyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4), }", body), /shape \(2, 4\) of <f8 needs 64 data bytes, the file has 48/],
  ];
  for (const [bytes, message] of cases) t.throws(() => parseNpyMatrix(bytes, 'x.npy'), { message });
});
