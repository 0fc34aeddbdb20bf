import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { InputError } from '../core/errors.ts';
import { checkUtf8 } from '../core/utf8.ts';

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

/**
 * Reads a file into memory that a worker thread can read as well (a SharedArrayBuffer), so that
 * {@link BackgroundFingerprint} hashes it beside the parsing rather than before or after it.
 * Anything unusual (not a regular file, a size that changes while it is read, any error) is left
 * to {@link readBytes}, which reads it again and gives the usual error. Hand the bytes to
 * {@link releaseSharedBytes} once nothing reads them any more.
 */
export async function readSharedBytes(file: string, what: string): Promise<Buffer> {
  let bytes: Buffer | undefined;
  try {
    const handle = await open(file, 'r');
    try {
      const info = await handle.stat();
      if (info.isFile() && info.size > 0) {
        const shared = Buffer.from(sharedBufferFor(info.size), 0, info.size);
        let filled = 0;
        while (filled < info.size) {
          const { bytesRead } = await handle.read(shared, filled, info.size - filled, filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        // Complete only when the file ended where stat said it would.
        if (filled === info.size && (await handle.read(Buffer.alloc(1), 0, 1, filled)).bytesRead === 0) bytes = shared;
      }
    } finally {
      await handle.close();
    }
  } catch {
    bytes = undefined;
  }
  return bytes ?? readBytes(file, what);
}

/**
 * Shared buffers of finished loads, for the next load to read into. V8 frees a SharedArrayBuffer
 * only in a full collection, which it starts late for them (they do not weigh on its heuristics
 * the way ordinary buffers do): without reuse, loading a 165 MB split five times in one process
 * held three copies at once (880 MB resident, against 410 MB with ordinary buffers). Weak
 * references, so that a buffer the collector has freed is not kept alive.
 */
const releasedSharedBuffers: WeakRef<SharedArrayBuffer>[] = [];
const RELEASED_SHARED_BUFFERS_KEPT = 4;

/** A released buffer of at least `size` bytes (and not far larger, which a small view would keep alive), or a new one. */
function sharedBufferFor(size: number): SharedArrayBuffer {
  let best = -1;
  for (let index = 0; index < releasedSharedBuffers.length; index++) {
    const buffer = releasedSharedBuffers[index].deref();
    if (buffer === undefined || buffer.byteLength < size || buffer.byteLength > 2 * size) continue;
    if (best < 0 || buffer.byteLength < releasedSharedBuffers[best].deref()!.byteLength) best = index;
  }
  if (best < 0) return new SharedArrayBuffer(size);
  return releasedSharedBuffers.splice(best, 1)[0].deref()!;
}

/** Gives bytes from {@link readSharedBytes} back for another read to reuse: the caller and any worker are done with them. */
export function releaseSharedBytes(bytes: Uint8Array | undefined): void {
  if (bytes === undefined || !(bytes.buffer instanceof SharedArrayBuffer)) return;
  for (let index = releasedSharedBuffers.length - 1; index >= 0; index--) {
    const buffer = releasedSharedBuffers[index].deref();
    // Released twice, or collected: dropped from the list.
    if (buffer === undefined || buffer === bytes.buffer) releasedSharedBuffers.splice(index, 1);
  }
  releasedSharedBuffers.push(new WeakRef(bytes.buffer));
  if (releasedSharedBuffers.length > RELEASED_SHARED_BUFFERS_KEPT) releasedSharedBuffers.shift();
}

export function parseJson(bytes: Buffer, file: string): unknown {
  // Decoding would turn invalid bytes into U+FFFD silently: a text file is UTF-8 or refused.
  checkUtf8(bytes, { file });
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
  hash.update(imageIdsText(imageIds));
  return hash.digest('hex');
}

function imageIdsText(imageIds: readonly (number | string)[]): string {
  return `images\n${imageIds.join('\n')}`;
}

/**
 * The worker's code, plain JavaScript (it runs without the TypeScript loader, whichever way the
 * main thread was started): hashes the files it is sent, then the image ids, as fingerprintSplit does.
 */
const FINGERPRINT_WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hash = createHash('sha256');
parentPort.once('message', (contents) => {
  for (const bytes of contents) {
    hash.update(bytes.length + '\\n');
    hash.update(bytes);
  }
  parentPort.once('message', (imageIdsText) => {
    hash.update(imageIdsText);
    parentPort.postMessage(hash.digest('hex'));
    parentPort.close();
  });
});`;

/**
 * {@link fingerprintSplit} on a worker thread: sha256 of a 180 MB split (VQA v2 val2014) costs
 * about a tenth of a second, which the thread takes off the loader's path. Started before the
 * files are read, so that the thread is up when they are; given the files once read, and the
 * image ids once parsed. Files not in shared memory, or a worker that fails, are hashed on the
 * calling thread instead: the fingerprint is the same either way.
 */
export class BackgroundFingerprint {
  private worker: Worker | undefined;
  private contents: readonly Uint8Array[] | undefined;
  private digest: Promise<string | undefined> | undefined;

  constructor() {
    try {
      // No execArgv: the worker needs no loader, and starts faster without one.
      this.worker = new Worker(FINGERPRINT_WORKER, { eval: true, execArgv: [] });
      this.worker.unref();
      const worker = this.worker;
      this.digest = new Promise((resolve) => {
        worker.once('message', (hex: string) => resolve(hex));
        worker.once('error', () => resolve(undefined));
        worker.once('exit', () => resolve(undefined));
      });
    } catch {
      this.worker = undefined;
    }
  }

  /** The files, in order; once. */
  hash(contents: readonly Uint8Array[]): void {
    this.contents = contents;
    if (this.worker === undefined) return;
    if (contents.every((bytes) => bytes.buffer instanceof SharedArrayBuffer)) this.worker.postMessage(contents);
    else this.close();
  }

  /** The fingerprint, with the split's ordered image ids. */
  async finish(imageIds: readonly (number | string)[]): Promise<string> {
    const contents = this.contents ?? [];
    if (this.worker !== undefined && this.digest !== undefined) {
      this.worker.postMessage(imageIdsText(imageIds));
      const hex = await this.digest;
      this.worker = undefined;
      if (hex !== undefined) return hex;
    }
    return fingerprintSplit(contents, imageIds);
  }

  /** Stops the worker, where the split is not finished (an error, or another path took over). */
  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }
}
