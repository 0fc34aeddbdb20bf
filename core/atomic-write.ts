import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InputError } from './errors.ts';

/** The file operations a durable write makes; tests pass a recording one to see their order. */
export interface AtomicWriteFileSystem {
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
  open(path: string, flags: 'w' | 'r'): Promise<AtomicWriteHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: true }): Promise<void>;
}

export interface AtomicWriteHandle {
  writeFile(content: string | Uint8Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

const nodeFileSystem: AtomicWriteFileSystem = { mkdir, open, rename, rm };

/** Where a folder cannot be opened or fsynced (Windows, some network file systems), its entries are as durable as that system makes them. */
const FOLDER_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EBADF']);

let temporaryCount = 0;

/**
 * Writes a file through a temporary file in the same folder and a rename: a reader never sees
 * half a file, and a failed write leaves the previous file as it was (and no temporary behind).
 * The folder is created when missing.
 *
 * Durable too: the temporary's data is fsynced before the rename (else a crash soon after can
 * leave the new name pointing at an empty or partial file: the rename's metadata may reach
 * the disk before the data), and the folder is fsynced after it (the rename itself is a change
 * to the folder, lost in a crash until the folder is synced).
 */
export async function writeFileAtomically(file: string, content: string | Uint8Array, options: { fileSystem?: AtomicWriteFileSystem } = {}): Promise<void> {
  const fs = options.fileSystem ?? nodeFileSystem;
  const target = resolve(file);
  const folder = dirname(target);
  const temporary = `${target}.${process.pid}.${Date.now()}.${temporaryCount++}.tmp`;
  try {
    await fs.mkdir(folder, { recursive: true });
    const handle = await fs.open(temporary, 'w');
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, target);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw new InputError(`cannot write: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
  await syncFolder(fs, folder, file);
}

async function syncFolder(fs: AtomicWriteFileSystem, folder: string, file: string): Promise<void> {
  let handle: AtomicWriteHandle;
  try {
    handle = await fs.open(folder, 'r');
  } catch (error) {
    if (FOLDER_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) return;
    throw new InputError(`written, but its folder could not be synced to disk: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!FOLDER_SYNC_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) {
      throw new InputError(`written, but its folder could not be synced to disk: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
    }
  } finally {
    await handle.close();
  }
}
