import { readFile } from 'node:fs/promises';
import { InputError } from './errors.ts';

/**
 * The bytes of an example's image, wherever they are kept. Most datasets keep one file per image
 * and name it by path; the Hub's parquet copies embed the image in the data file, named
 * `<data file>#row=<row>`. The loader that makes such names registers how to read them here, so
 * the image pipeline and the feature cache (models/, which never imports a task) read either
 * without knowing which dataset they came from, and nothing is written out.
 */
export type EmbeddedImageReader = (name: string) => Promise<Uint8Array>;

const EMBEDDED = /#row=\d+$/;
let embeddedReader: EmbeddedImageReader | undefined;

/** Called by the loader of a layout whose images live inside its data files. */
export function registerEmbeddedImageReader(reader: EmbeddedImageReader): void {
  embeddedReader = reader;
}

export function isEmbeddedImage(name: string): boolean {
  return EMBEDDED.test(name);
}

/** The image file's bytes (JPEG, PNG, …); an unreadable file is an InputError naming it. */
export async function readImageBytes(name: string): Promise<Uint8Array> {
  if (isEmbeddedImage(name)) {
    if (embeddedReader === undefined) throw new InputError('an image inside a data file, but no loader that reads such files has run in this process', { file: name });
    return embeddedReader(name);
  }
  try {
    return await readFile(name);
  } catch (error) {
    throw new InputError(`cannot read image: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file: name });
  }
}
