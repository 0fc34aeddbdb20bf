import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InputError } from '../core/errors.ts';

/**
 * Region proposals in COCO's detection result format (the format bottom-up attention's
 * features and every COCO detector's output use): a JSON array of
 * `{ image_id, bbox: [x, y, w, h] in pixels, score, category_id? }`. A VQA or GQA run given
 * `--regions FILE` attends over one object token per box instead of the patch grid alone.
 */
export interface Detection {
  /** Pixel box [x, y, w, h], top-left origin, as COCO writes it. */
  bbox: [number, number, number, number];
  score: number;
  categoryId?: number;
  /** Its index in the file, for errors found later (a box beyond its image's border). */
  record: number;
}

export interface DetectionFile {
  file: string;
  /** image id (as a string: VQA's are numbers, GQA's names) → its detections, in file order. */
  byImage: Map<string, Detection[]>;
  count: number;
  /** sha256 of the file's bytes: two runs over different boxes are not comparable. */
  fingerprint: string;
}

/** Reads and checks every record before any work starts: the error names the file, the record and the field. */
export async function readDetectionFile(file: string): Promise<DetectionFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read the regions file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
  let records: unknown;
  try {
    records = JSON.parse(text);
  } catch (error) {
    throw new InputError(`the regions file is not JSON: ${(error as Error).message}`, { file });
  }
  if (!Array.isArray(records)) throw new InputError('the regions file must be a JSON array of COCO-style detections ({image_id, bbox: [x, y, w, h], score})', { file });
  const byImage = new Map<string, Detection[]>();
  records.forEach((record: unknown, index) => {
    const fail = (field: string, expected: string): never => {
      throw new InputError(`expected ${expected}`, { file, record: index, field });
    };
    if (typeof record !== 'object' || record === null || Array.isArray(record)) fail('(record)', 'an object {image_id, bbox, score}');
    const r = record as Record<string, unknown>;
    const imageId = r.image_id;
    if (!((typeof imageId === 'number' && Number.isInteger(imageId)) || (typeof imageId === 'string' && imageId.length > 0))) fail('image_id', 'an integer or a non-empty string');
    const bbox = r.bbox;
    if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((v) => typeof v === 'number' && Number.isFinite(v))) fail('bbox', '[x, y, w, h]: four finite numbers in pixels');
    const [x, y, w, h] = bbox as number[];
    if (w <= 0 || h <= 0) fail('bbox', `a positive width and height, got w ${w}, h ${h}`);
    if (x < 0 || y < 0) fail('bbox', `a box inside the image (x, y ≥ 0), got x ${x}, y ${y}`);
    if (typeof r.score !== 'number' || !Number.isFinite(r.score)) fail('score', 'a finite number');
    if (r.category_id !== undefined && !(typeof r.category_id === 'number' && Number.isInteger(r.category_id))) fail('category_id', 'an integer when present');
    const key = String(imageId);
    const list = byImage.get(key) ?? [];
    list.push({ bbox: [x, y, w, h], score: r.score as number, record: index, ...(r.category_id !== undefined ? { categoryId: r.category_id as number } : {}) });
    byImage.set(key, list);
  });
  return { file, byImage, count: records.length, fingerprint: createHash('sha256').update(text).digest('hex') };
}
