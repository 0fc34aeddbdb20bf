import { readFile, readdir } from 'node:fs/promises';
import { decodeUtf8 } from '../../core/utf8.ts';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { InputError, describeValue, fieldError, listSome } from '../../core/errors.ts';
import type { LoadOptions, LoadedSplit } from '../../core/types.ts';
import { fingerprintSplit } from '../split-files.ts';

/** Bump when loading changes which images or captions a split holds, or their order. */
export const RETRIEVAL_TASK_VERSION = '1';

/** The `split` values of a Karpathy JSON, and the usual training union. */
export const KARPATHY_SPLITS = ['test', 'val', 'train', 'restval', 'train+restval'] as const;
const IMAGE_SPLITS = new Set(['train', 'val', 'test', 'restval']);

export interface RetrievalCaption {
  /** sentid */
  id: number;
  /** The sentence's `raw` text, unchanged. */
  text: string;
  /** Column of this caption in the split's similarity matrix. */
  index: number;
  /** Row (index into the split's examples) of the image it describes. */
  imageIndex: number;
}

/** One image of the split with its captions, in file order; an example is one row of the matrix. */
export interface RetrievalImage {
  /** String(imgid): the id per-example scores and bootstrap use. */
  id: string;
  imgid: number;
  /** COCO image id, when the file has it. */
  cocoid?: number;
  filename: string;
  filepath?: string;
  /** Absolute image path: <imagesDir>/<filepath>/<filename>, or <imagesDir>/<filename> without filepath. */
  path: string;
  /** The image's own split in the file ("restval" inside a train+restval split). */
  karpathySplit: string;
  captions: RetrievalCaption[];
}

/**
 * Loads one split of a Karpathy JSON (dataset_coco.json, dataset_flickr30k.json, or SynthScenes'
 * dataset_synthscenes_<domain>.json): `files.annotations`, or the one dataset_*.json in `dataDir`.
 * Images keep file order; captions keep file order image by image, sentence by sentence, so
 * column c of a similarity matrix is the c-th caption of the split.
 */
export async function loadKarpathySplit(options: LoadOptions): Promise<LoadedSplit<RetrievalImage>> {
  const split = options.split;
  if (!(KARPATHY_SPLITS as readonly string[]).includes(split)) {
    throw new InputError(`unknown Karpathy split ${JSON.stringify(split)}; expected one of ${KARPATHY_SPLITS.join(', ')}`, { field: 'split' });
  }
  const file = resolve(options.files?.annotations ?? (await findKarpathyFile(options.dataDir)));
  const imagesDir = resolve(options.imagesDir ?? dirname(file));
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? 'Karpathy JSON not found' : `cannot read (${(error as Error).message})`, { file });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeUtf8(bytes, { file }));
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`not valid JSON (${(error as Error).message})`, { file });
  }
  const images = (parsed as { images?: unknown } | null)?.images;
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray(images)) {
    throw fieldError(file, undefined, 'images', 'an array of images (Karpathy JSON)', images);
  }

  const wanted = split === 'train+restval' ? new Set(['train', 'restval']) : new Set([split]);
  const examples: RetrievalImage[] = [];
  const seenImages = new Set<number>();
  const seenSentences = new Set<number>();
  let captionCount = 0;
  images.forEach((value, position) => {
    const image = parseImage(value, position, file);
    if (!wanted.has(image.split)) return;
    const record = `images[${position}] (imgid ${image.imgid})`;
    if (seenImages.has(image.imgid)) throw new InputError('imgid appears twice in the split', { file, record, field: 'imgid' });
    seenImages.add(image.imgid);
    const imageIndex = examples.length;
    const captions = image.sentences.map((sentence) => {
      if (seenSentences.has(sentence.sentid)) throw new InputError(`sentid ${sentence.sentid} appears twice in the split`, { file, record, field: 'sentences' });
      seenSentences.add(sentence.sentid);
      return { id: sentence.sentid, text: sentence.raw, index: captionCount++, imageIndex };
    });
    const relativePath = image.filepath !== undefined ? join(image.filepath, image.filename) : image.filename;
    examples.push({
      id: String(image.imgid),
      imgid: image.imgid,
      ...(image.cocoid !== undefined ? { cocoid: image.cocoid } : {}),
      filename: image.filename,
      ...(image.filepath !== undefined ? { filepath: image.filepath } : {}),
      path: resolveInside(imagesDir, relativePath, file, record),
      karpathySplit: image.split,
      captions,
    });
  });
  if (examples.length === 0) {
    const present = [...new Set(images.map((image) => (image as { split?: unknown })?.split))].map(String);
    throw new InputError(`no images in split "${split}" (the file's splits: ${present.join(', ') || 'none'})`, { file });
  }

  const fingerprint = fingerprintSplit([bytes], examples.map((example) => example.id));
  return {
    task: 'retrieval',
    taskVersion: RETRIEVAL_TASK_VERSION,
    split: options.splitLabel ?? split,
    fingerprint,
    files: [file],
    examples,
  };
}

/** The split's captions as matrix columns, in order. */
export function retrievalCaptions(split: LoadedSplit<RetrievalImage>): RetrievalCaption[] {
  return split.examples.flatMap((image) => image.captions);
}

/** Row of each column: what scoreRetrieval needs besides the matrix. */
export function captionImageIndexOf(split: LoadedSplit<RetrievalImage>): Int32Array {
  const index = new Int32Array(split.examples.reduce((sum, image) => sum + image.captions.length, 0));
  let column = 0;
  split.examples.forEach((image, row) => {
    for (let k = 0; k < image.captions.length; k++) index[column++] = row;
  });
  return index;
}

interface KarpathyImage {
  filename: string;
  filepath?: string;
  imgid: number;
  cocoid?: number;
  split: string;
  sentences: { raw: string; sentid: number }[];
}

function parseImage(value: unknown, position: number, file: string): KarpathyImage {
  let record = `images[${position}]`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fieldError(file, record, '(image)', 'an object', value);
  const raw = value as Record<string, unknown>;
  if (!Number.isInteger(raw.imgid)) throw fieldError(file, record, 'imgid', 'an integer', raw.imgid);
  record = `images[${position}] (imgid ${raw.imgid})`;
  if (typeof raw.filename !== 'string' || raw.filename === '') throw fieldError(file, record, 'filename', 'a non-empty string', raw.filename);
  if (raw.filepath !== undefined && typeof raw.filepath !== 'string') throw fieldError(file, record, 'filepath', 'a string (COCO) or nothing (Flickr30k)', raw.filepath);
  if (raw.cocoid !== undefined && !Number.isInteger(raw.cocoid)) throw fieldError(file, record, 'cocoid', 'an integer', raw.cocoid);
  if (typeof raw.split !== 'string' || !IMAGE_SPLITS.has(raw.split)) throw fieldError(file, record, 'split', '"train", "val", "test" or "restval"', raw.split);
  if (!Array.isArray(raw.sentences) || raw.sentences.length === 0) throw fieldError(file, record, 'sentences', 'a non-empty array of sentences', raw.sentences);
  const sentences = raw.sentences.map((sentence: unknown, k: number) => {
    const s = sentence as Record<string, unknown> | null;
    if (typeof s !== 'object' || s === null) throw fieldError(file, record, `sentences[${k}]`, 'an object', sentence);
    if (typeof s.raw !== 'string') throw fieldError(file, record, `sentences[${k}].raw`, 'a string', s.raw);
    if (!Number.isInteger(s.sentid)) throw fieldError(file, record, `sentences[${k}].sentid`, 'an integer', s.sentid);
    return { raw: s.raw, sentid: s.sentid as number };
  });
  return {
    filename: raw.filename,
    filepath: raw.filepath as string | undefined,
    imgid: raw.imgid as number,
    cocoid: raw.cocoid as number | undefined,
    split: raw.split,
    sentences,
  };
}

async function findKarpathyFile(dataDir: string | undefined): Promise<string> {
  if (dataDir === undefined) throw new InputError('retrieval: give the Karpathy JSON (annotations file) or the folder that holds it');
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch (error) {
    throw new InputError(`cannot list the folder (${(error as Error).message})`, { file: dataDir });
  }
  const candidates = names.filter((name) => /^dataset_.*\.json$/.test(name)).sort();
  if (candidates.length !== 1) {
    throw new InputError(`expected exactly one dataset_*.json (Karpathy JSON) in the folder, found ${candidates.length ? listSome(candidates) : 'none'}; name the file`, { file: dataDir });
  }
  return join(dataDir, candidates[0]);
}

/** Image paths come from the annotation file: they may not climb out of the images folder. */
function resolveInside(root: string, path: string, file: string, record: string): string {
  if (isAbsolute(path) || /^[a-zA-Z]:[\\/]/.test(path)) {
    throw new InputError(`expected a path relative to the images folder ${root}, got ${describeValue(path)}`, { file, record, field: 'filename' });
  }
  const resolved = resolve(root, path);
  const inside = relative(root, resolved);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside) || basename(resolved) === '') {
    throw new InputError(`image path ${describeValue(path)} resolves outside the images folder ${root}`, { file, record, field: 'filepath/filename' });
  }
  return resolved;
}
