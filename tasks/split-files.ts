import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InputError } from '../core/errors.ts';

// The one place every task reads, parses and fingerprints the files of a split. The split
// fingerprint is part of the leaderboard's comparability key, so it must mean the same thing for
// every task: the bytes of each file read, then the split's ordered image ids.

export async function readBytes(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new InputError(`cannot read the ${what} file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
}

export function parseJson(bytes: Buffer, file: string): unknown {
  try {
    // A UTF-8 byte order mark is legal in a file but not in JSON.parse; skipped on the bytes, so a
    // 150 MB file is not copied once more as a string.
    const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
    return JSON.parse(bytes.toString('utf8', start));
  } catch (error) {
    throw new InputError(`not valid JSON: ${(error as Error).message}`, { file });
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** sha256 over each file's length and bytes, then the ordered image ids: the split's identity. */
export function fingerprintSplit(contents: readonly Uint8Array[], imageIds: readonly (number | string)[]): string {
  const hash = createHash('sha256');
  for (const bytes of contents) {
    hash.update(`${bytes.length}\n`);
    hash.update(bytes);
  }
  hash.update(`images\n${imageIds.join('\n')}`);
  return hash.digest('hex');
}
