import { existsSync, statSync } from 'node:fs';
import { decodeUtf8 } from '../../core/utf8.ts';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { InputError, describeValue, fieldError } from '../../core/errors.ts';
import type { LoadOptions, LoadedSplit } from '../../core/types.ts';
import { fingerprintSplit } from '../split-files.ts';
import { renderVcrTokens, type VcrText, type VcrToken } from './tags.ts';

/** Bump when loading or tag rendering changes what a model sees (README.md). */
export const VCR_TASK_VERSION = '1';

/** A detection box from the image's metadata json: [x1, y1, x2, y2, detector score], in pixels. */
export type VcrBox = [number, number, number, number, number];

/** A detection's segmentation from the metadata json's `segms`: its polygons, each a list of [x, y] points in pixels. */
export type VcrSegmentation = [number, number][][];

export interface VcrExample {
  /** annot_id, e.g. "val-0". */
  id: string;
  imageId: string;
  movie: string;
  questionNumber: number;
  /** Absolute path of the image (img_fn resolved inside the images folder); not checked at load time. */
  imagePath: string;
  /** Absolute path of the metadata json (metadata_fn resolved inside the images folder). */
  metadataPath: string;
  /**
   * Set when the metadata json was absent at load time (the annotations without vcr1images/):
   * the labels score as usual, but reading `imageWidth`, `imageHeight` or `boxes` throws an
   * InputError naming the missing file. `checkVcrImageData` refuses such a split up front.
   */
  metadataMissing?: true;
  imageWidth: number;
  imageHeight: number;
  /** Detection classes; tags in the texts index into this, and into `boxes`. */
  objects: string[];
  /** One box per object, same order. */
  boxes: VcrBox[];
  /** One segmentation per object, same order, when the metadata json has `segms` (the release does; SynthScenes writes none). */
  segms?: VcrSegmentation[];
  question: VcrText;
  answers: VcrText[];
  rationales: VcrText[];
  /** 0–3; absent in the test split. */
  answerLabel?: number;
  /** 0–3, the right rationale for the right answer; absent in the test split. */
  rationaleLabel?: number;
}

/** The folders of the release: vcr1annots.zip unpacks the jsonl files, vcr1images.zip the images and their metadata. */
export const VCR_ANNOTATIONS_FOLDER = 'vcr1annots';
export const VCR_IMAGES_FOLDER = 'vcr1images';

export const VCR_CHOICES = 4;

interface ImageMetadata {
  boxes: VcrBox[];
  segms?: VcrSegmentation[];
  width: number;
  height: number;
}

/**
 * Loads a VCR split: `<split>.jsonl` (or `files.annotations`) and, where present, each image's
 * metadata json. Where the files are (README.md, "Files"):
 *
 * - the jsonl: `files.annotations`, else `<dataDir>/<split>.jsonl`, else
 *   `<dataDir>/vcr1annots/<split>.jsonl` (dataDir the root the two release folders unpack into);
 * - img_fn and metadata_fn resolve against `imagesDir` when given, else the first folder that
 *   exists of `<dataDir>/vcr1images`, `<jsonl folder>/vcr1images` (r2c's layout) and
 *   `<jsonl folder>/../vcr1images` (vcr1annots/ beside vcr1images/), else dataDir (SynthScenes
 *   and flat copies); dataDir defaults to the jsonl's folder.
 *
 * Scoring needs only the labels, so a jsonl whose metadata and images are absent still loads:
 * its examples are marked `metadataMissing` and their boxes cannot be read (see VcrExample).
 * Metadata that is present is checked as before. The fingerprint covers the jsonl bytes and the
 * image list, not the metadata, so a split scored from the annotations alone is the same split
 * as the one a run trained and predicted on.
 */
export async function loadVcrSplit(options: LoadOptions): Promise<LoadedSplit<VcrExample>> {
  if (options.files) {
    const unknown = Object.keys(options.files).filter((key) => key !== 'annotations');
    if (unknown.length) throw new InputError(`VCR reads only an "annotations" file (the jsonl), not ${unknown.map((k) => `"${k}"`).join(', ')}`);
  }
  const annotationsFile = locateAnnotations(options);
  // Given only the file (`vlbench score --annotations val.jsonl`), the split is its name: "val".
  const split = options.split !== '' ? options.split : basename(annotationsFile).replace(/\.jsonl$/, '');
  const dataDir = resolve(options.dataDir ?? dirname(annotationsFile));
  const imagesRoot = locateImagesRoot(options, dataDir, annotationsFile);

  const bytes = await readExisting(annotationsFile, 'VCR annotations');
  const records = parseJsonl(decodeUtf8(bytes, { file: annotationsFile }), annotationsFile);
  if (records.length === 0) throw new InputError('no examples: the file has no jsonl records', { file: annotationsFile });

  const metadataByPath = new Map<string, ImageMetadata | null>();
  const seenIds = new Map<string, number>();
  let labelled: boolean | undefined;
  const examples: VcrExample[] = [];
  for (const { line, value } of records) {
    const item = parseVcrRecord(value, annotationsFile, line);
    const firstLine = seenIds.get(item.annotId);
    if (firstLine !== undefined) {
      throw new InputError(`duplicate annot_id, first seen on line ${firstLine}`, { file: annotationsFile, record: `line ${line} (${item.annotId})`, field: 'annot_id' });
    }
    seenIds.set(item.annotId, line);
    const hasLabels = item.answerLabel !== undefined;
    if (labelled === undefined) labelled = hasLabels;
    else if (labelled !== hasLabels) {
      throw new InputError(`some records have answer_label/rationale_label and some do not; a split is either labelled (train, val) or not (test)`, {
        file: annotationsFile, record: `line ${line} (${item.annotId})`, field: 'answer_label',
      });
    }

    const where = `line ${line} (${item.annotId})`;
    const imagePath = resolveInside(imagesRoot, item.imgFn, annotationsFile, where, 'img_fn');
    const metadataPath = resolveInside(imagesRoot, item.metadataFn, annotationsFile, where, 'metadata_fn');
    let metadata = metadataByPath.get(metadataPath);
    if (metadata === undefined) {
      const metadataBytes = await readIfPresent(metadataPath, `metadata of ${where} in ${annotationsFile}`);
      metadata = metadataBytes === undefined ? null : parseMetadata(metadataBytes, metadataPath);
      metadataByPath.set(metadataPath, metadata);
    }
    if (metadata && metadata.boxes.length !== item.objects.length) {
      throw new InputError(`${item.objects.length} objects in ${annotationsFile} ${where}, but ${metadata.boxes.length} boxes in the metadata`, {
        file: metadataPath, field: 'boxes',
      });
    }
    const example = {
      id: item.annotId,
      imageId: item.imgId,
      movie: item.movie,
      questionNumber: item.questionNumber,
      imagePath,
      metadataPath,
      ...(metadata ? { imageWidth: metadata.width, imageHeight: metadata.height } : {}),
      objects: item.objects,
      ...(metadata ? { boxes: metadata.boxes } : {}),
      ...(metadata?.segms ? { segms: metadata.segms } : {}),
      question: renderVcrTokens(item.question, item.objects),
      answers: item.answerChoices.map((tokens) => renderVcrTokens(tokens, item.objects)),
      rationales: item.rationaleChoices.map((tokens) => renderVcrTokens(tokens, item.objects)),
      ...(hasLabels ? { answerLabel: item.answerLabel, rationaleLabel: item.rationaleLabel } : {}),
    } as VcrExample;
    if (!metadata) markMetadataMissing(example, annotationsFile, where);
    examples.push(example);
  }

  return {
    task: 'vcr',
    taskVersion: VCR_TASK_VERSION,
    split: options.splitLabel ?? split,
    fingerprint: fingerprintSplit([bytes], examples.map((example) => example.imageId)),
    files: [annotationsFile],
    examples,
  };
}

/**
 * Refuses a split that cannot be trained on or predicted with: an example whose metadata json
 * was absent at load time, or whose image file does not exist. Scoring never needs this; a run
 * calls it before any work, so a labels-only copy fails in one line instead of mid-training.
 */
export function checkVcrImageData(split: LoadedSplit<VcrExample>): void {
  const withoutMetadata = split.examples.filter((example) => example.metadataMissing);
  const withoutImage = split.examples.filter((example) => !example.metadataMissing && !isFile(example.imagePath));
  if (withoutMetadata.length === 0 && withoutImage.length === 0) return;
  const [first] = [...withoutMetadata, ...withoutImage];
  const missing = withoutMetadata.length
    ? `${withoutMetadata.length} of ${split.examples.length} examples have no metadata json (first: ${first.metadataPath})`
    : `${withoutImage.length} of ${split.examples.length} examples have no image file (first: ${first.imagePath})`;
  throw new InputError(`VCR split "${split.split}": ${missing}. ${TRAINING_NEEDS}`, { file: split.files[0], record: first.id });
}

const TRAINING_NEEDS =
  `Training and prediction need every image and its metadata json (boxes) under ${VCR_IMAGES_FOLDER}/ (the release's ${VCR_IMAGES_FOLDER}.zip, unpacked beside ${VCR_ANNOTATIONS_FOLDER}/); scoring needs only the jsonl`;

/** Makes the region fields of an example without metadata throw a clear error when read (training, prediction). */
function markMetadataMissing(example: VcrExample, annotationsFile: string, where: string): void {
  const fail = (): never => {
    throw new InputError(`metadata of ${where} in ${annotationsFile}: file not found. ${TRAINING_NEEDS}`, { file: example.metadataPath });
  };
  example.metadataMissing = true;
  for (const field of ['imageWidth', 'imageHeight', 'boxes'] as const) Object.defineProperty(example, field, { get: fail, enumerable: false });
}

function locateAnnotations(options: LoadOptions): string {
  if (options.files?.annotations !== undefined) return resolve(options.files.annotations);
  if (options.dataDir === undefined || options.split === '') failNoFiles(options.split);
  const candidates = [join(options.dataDir, `${options.split}.jsonl`), join(options.dataDir, VCR_ANNOTATIONS_FOLDER, `${options.split}.jsonl`)].map((file) => resolve(file));
  const found = candidates.find(isFile);
  if (found === undefined) {
    throw new InputError(`VCR split "${options.split}": no ${options.split}.jsonl (looked for ${candidates.join(' and ')})`, { file: resolve(options.dataDir) });
  }
  return found;
}

function locateImagesRoot(options: LoadOptions, dataDir: string, annotationsFile: string): string {
  if (options.imagesDir !== undefined) return resolve(options.imagesDir);
  const annotationsDir = dirname(annotationsFile);
  const candidates = [join(dataDir, VCR_IMAGES_FOLDER), join(annotationsDir, VCR_IMAGES_FOLDER), join(annotationsDir, '..', VCR_IMAGES_FOLDER)];
  return resolve(candidates.find(isDirectory) ?? dataDir);
}

interface VcrRecord {
  annotId: string;
  imgFn: string;
  metadataFn: string;
  imgId: string;
  movie: string;
  questionNumber: number;
  objects: string[];
  question: VcrToken[];
  answerChoices: VcrToken[][];
  rationaleChoices: VcrToken[][];
  answerLabel?: number;
  rationaleLabel?: number;
}

function parseVcrRecord(value: unknown, file: string, line: number): VcrRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fieldError(file, `line ${line}`, '(record)', 'a JSON object', value);
  const raw = value as Record<string, unknown>;
  const annotId = raw.annot_id;
  if (typeof annotId !== 'string' || annotId === '') throw fieldError(file, `line ${line}`, 'annot_id', 'a non-empty string', annotId);
  const record = `line ${line} (${annotId})`;
  const text = (field: string): string => {
    const got = raw[field];
    if (typeof got !== 'string' || got === '') throw fieldError(file, record, field, 'a non-empty string', got);
    return got;
  };
  const objectsRaw = raw.objects;
  if (!Array.isArray(objectsRaw) || !objectsRaw.every((o) => typeof o === 'string' && o !== '')) {
    throw fieldError(file, record, 'objects', 'an array of class names', objectsRaw);
  }
  const objects = objectsRaw as string[];
  const tokens = (got: unknown, field: string): VcrToken[] => {
    if (!Array.isArray(got) || got.length === 0) throw fieldError(file, record, field, 'a non-empty token list', got);
    got.forEach((token, position) => {
      if (typeof token === 'string') return;
      const tagOk = Array.isArray(token) && token.length > 0 && token.every((i) => Number.isInteger(i) && i >= 0 && i < objects.length);
      if (!tagOk) {
        throw fieldError(file, record, `${field}[${position}]`, `a word or a detection tag of indexes 0..${objects.length - 1} into objects`, token);
      }
    });
    return got as VcrToken[];
  };
  const choices = (field: string): VcrToken[][] => {
    const got = raw[field];
    if (!Array.isArray(got) || got.length !== VCR_CHOICES) throw fieldError(file, record, field, `${VCR_CHOICES} choices`, got);
    return got.map((choice, i) => tokens(choice, `${field}[${i}]`));
  };
  const label = (field: string): number | undefined => {
    const got = raw[field];
    if (got === undefined) return undefined;
    if (!Number.isInteger(got) || (got as number) < 0 || (got as number) >= VCR_CHOICES) throw fieldError(file, record, field, 'an integer 0..3', got);
    return got as number;
  };
  const questionNumber = raw.question_number;
  if (!Number.isInteger(questionNumber)) throw fieldError(file, record, 'question_number', 'an integer', questionNumber);
  const answerLabel = label('answer_label');
  const rationaleLabel = label('rationale_label');
  if ((answerLabel === undefined) !== (rationaleLabel === undefined)) {
    const missing = answerLabel === undefined ? 'answer_label' : 'rationale_label';
    throw fieldError(file, record, missing, 'both labels or neither (test)', undefined);
  }
  return {
    annotId,
    imgFn: text('img_fn'),
    metadataFn: text('metadata_fn'),
    imgId: text('img_id'),
    movie: text('movie'),
    questionNumber: questionNumber as number,
    objects,
    question: tokens(raw.question, 'question'),
    answerChoices: choices('answer_choices'),
    rationaleChoices: choices('rationale_choices'),
    answerLabel,
    rationaleLabel,
  };
}

function parseMetadata(bytes: Buffer, file: string): ImageMetadata {
  let value: unknown;
  try {
    value = JSON.parse(decodeUtf8(bytes, { file }));
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`not valid JSON (${(error as Error).message})`, { file });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fieldError(file, undefined, '(file)', 'a JSON object', value);
  const raw = value as Record<string, unknown>;
  const boxes = raw.boxes;
  if (!Array.isArray(boxes)) throw fieldError(file, undefined, 'boxes', 'an array of [x1, y1, x2, y2, score]', boxes);
  boxes.forEach((box, i) => {
    if (!Array.isArray(box) || box.length !== 5 || !box.every((n) => typeof n === 'number' && Number.isFinite(n))) {
      throw fieldError(file, `box ${i}`, 'boxes', '[x1, y1, x2, y2, score] of finite numbers', box);
    }
  });
  for (const field of ['width', 'height'] as const) {
    const got = raw[field];
    if (typeof got !== 'number' || !(got > 0)) throw fieldError(file, undefined, field, 'a positive number of pixels', got);
  }
  return { boxes: boxes as VcrBox[], ...parseSegms(raw.segms, boxes.length, file), width: raw.width as number, height: raw.height as number };
}

/**
 * `segms`, one entry per box: the detection's polygons of [x, y] points (what R2C rasterises into
 * its masks). Absent or empty (SynthScenes writes `[]`) means boxes only.
 */
function parseSegms(segms: unknown, boxCount: number, file: string): { segms?: VcrSegmentation[] } {
  if (segms === undefined || (Array.isArray(segms) && segms.length === 0)) return {};
  if (!Array.isArray(segms) || segms.length !== boxCount) throw fieldError(file, undefined, 'segms', `one segmentation per box (${boxCount})`, segms);
  const isPoint = (p: unknown) => Array.isArray(p) && p.length === 2 && p.every((n) => typeof n === 'number' && Number.isFinite(n));
  segms.forEach((polygons, i) => {
    if (!Array.isArray(polygons) || !polygons.every((polygon) => Array.isArray(polygon) && polygon.every(isPoint))) {
      throw fieldError(file, `box ${i}`, 'segms', 'a list of polygons, each a list of [x, y] points', polygons);
    }
  });
  return { segms: segms as VcrSegmentation[] };
}

/** One JSON value per non-blank line; a record's line number (1-based) goes into every error. */
export function parseJsonl(text: string, file: string): { line: number; value: unknown }[] {
  const records: { line: number; value: unknown }[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((content, index) => {
    if (content.trim() === '') return;
    try {
      records.push({ line: index + 1, value: JSON.parse(content) });
    } catch (error) {
      throw new InputError(`not valid JSON (${(error as Error).message})`, { file, record: `line ${index + 1}` });
    }
  });
  return records;
}

/**
 * Resolves a dataset-relative path and refuses one that leaves the dataset folder (absolute, or
 * climbing with ".."): annotation files are input, and must not make vlbench read anywhere else.
 */
function resolveInside(root: string, path: string, file: string, record: string, field: string): string {
  if (isAbsolute(path) || /^[a-zA-Z]:[\\/]/.test(path)) {
    throw new InputError(`expected a path relative to ${root}, got the absolute path ${describeValue(path)}`, { file, record, field });
  }
  const resolved = resolve(root, path);
  const inside = relative(root, resolved);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw new InputError(`path ${describeValue(path)} resolves outside the dataset folder ${root}`, { file, record, field });
  }
  return resolved;
}

function isDirectory(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

async function readExisting(file: string, what: string): Promise<Buffer> {
  const bytes = await readIfPresent(file, what);
  if (bytes === undefined) throw new InputError(`${what}: file not found`, { file });
  return bytes;
}

/** The file's bytes, or undefined when it does not exist; any other failure to read is an error. */
async function readIfPresent(file: string, what: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EISDIR') throw new InputError(`${what}: expected a file, got a folder`, { file });
    throw new InputError(`${what}: cannot read (${(error as Error).message})`, { file });
  }
}

function failNoFiles(split: string): never {
  throw new InputError(`VCR${split ? ` split "${split}"` : ''}: give the dataset folder and the split (<split>.jsonl in it) or the jsonl file itself`);
}
