import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InputError } from './errors.ts';

/**
 * Writes a file through a temporary file in the same folder and a rename: a reader never sees
 * half a file, and a failed write leaves the previous file as it was (and no temporary behind).
 * The folder is created when missing.
 */
export async function writeFileAtomically(file: string, content: string | Uint8Array): Promise<void> {
  const target = resolve(file);
  const temporary = `${target}.${process.pid}.${Date.now()}.tmp`;
  try {
    await mkdir(dirname(target), { recursive: true });
    await writeFile(temporary, content);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new InputError(`cannot write: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
}
