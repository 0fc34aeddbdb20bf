import { isUtf8 } from 'node:buffer';
import { InputError, type InputLocation } from './errors.ts';

/**
 * Text files are UTF-8 or refused. Node's lenient decoding turns every invalid byte into U+FFFD,
 * which then reads as a different answer, question or caption than the file holds; a score or an
 * embedding of that text would describe a file nobody wrote. The check is simdutf's (`isUtf8`,
 * gigabytes a second); only a file that fails it is walked again in JavaScript to name the offset.
 */

/** The offset of the first byte that does not start or continue a well-formed UTF-8 sequence (Unicode table 3-7), or -1. */
export function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  const length = bytes.length;
  let position = 0;
  while (position < length) {
    const byte = bytes[position];
    if (byte < 0x80) {
      position++;
      continue;
    }
    let needed: number;
    let low = 0x80;
    let high = 0xbf;
    if (byte >= 0xc2 && byte <= 0xdf) needed = 1;
    else if (byte >= 0xe0 && byte <= 0xef) {
      needed = 2;
      if (byte === 0xe0) low = 0xa0; // overlong
      if (byte === 0xed) high = 0x9f; // surrogates
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      needed = 3;
      if (byte === 0xf0) low = 0x90; // overlong
      if (byte === 0xf4) high = 0x8f; // past U+10FFFF
    } else return position;
    for (let k = 1; k <= needed; k++) {
      const next = bytes[position + k];
      // Truncated at the end of the file, or a byte that cannot continue the sequence.
      if (next === undefined || next < low || next > high) return position;
      low = 0x80;
      high = 0xbf;
    }
    position += needed + 1;
  }
  return -1;
}

/** Throws an InputError naming the file and the byte offset when `bytes` are not UTF-8. */
export function checkUtf8(bytes: Uint8Array, location: InputLocation): void {
  if (isUtf8(bytes)) return;
  const offset = firstInvalidUtf8Offset(bytes);
  const shown = Array.from(bytes.subarray(offset, offset + 4), (b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
  throw new InputError(`not UTF-8: invalid byte sequence at byte offset ${offset} (${shown}); text files must be UTF-8`, location);
}

/** The text of `bytes` (a byte order mark skipped), or an InputError naming the file and the offset of the first invalid byte. */
export function decodeUtf8(bytes: Uint8Array, location: InputLocation): string {
  checkUtf8(bytes, location);
  const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, bytes.length - start).toString('utf8');
}
