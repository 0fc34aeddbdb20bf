import { basename, join, relative } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadOptions, LoadedSplit } from '../../core/types.ts';
import { HUB_IMAGE_COLUMN } from '../hub-images.ts';
import { hubSplitSource, listFolder, resolveHubSnapshot, type HubSnapshot } from '../hub-snapshot.ts';
import { ParquetTable, parquetRowRecord, type ParquetRowGroup, describeCell } from '../parquet-table.ts';
import { fingerprintSplit } from '../split-files.ts';
import { GQA_TASK_VERSION, readQuestion, type GqaExample } from './example.ts';

/**
 * GQA as the Hub's `lmms-lab/GQA` lays it out (what lmms-eval's gqa task downloads): one config
 * per split, balance and kind, `<split>_<balanced|all>_instructions` and
 * `<split>_<balanced|all>_images`, for the splits train, val, testdev, test, challenge and
 * submission, each a folder of `<split>-NNNNN-of-NNNNN.parquet` shards (or, in the Hub's parquet
 * conversion, `<config>/<split>/NNNN.parquet`). Features, from the dataset card's `dataset_info`
 * (huggingface.co/datasets/lmms-lab/GQA README.md; the same schema is on deepvk/GQA-ru's card,
 * a translation of it):
 *
 *   *_images:        id: string, image: image ({bytes: binary, path: string}, the JPEG embedded)
 *   *_instructions:  id: string, imageId: string, question: string, answer: string,
 *                    fullAnswer: string, isBalanced: bool, groups: {global: string, local: string},
 *                    entailed: string, equivalent: string,
 *                    types: {structural: string, semantic: string, detailed: string},
 *                    annotations: list<{question, answer, fullAnswer: {objectId, value}}>,
 *                    semantic: list<{operation: string, argument: string, dependencies: list<int32>}>,
 *                    semanticStr: string
 *   test/challenge/submission instructions: id, imageId, question, isBalanced only (no answers).
 *
 * lmms-eval joins the two configs by `imageId` = images' `id` (gqa_doc_to_visual); so does this
 * loader. The card types `entailed` and `equivalent` as strings where the official JSON has lists
 * of question ids: they are read as JSON text (`["201640614"]`) or Python's list text
 * (`['201640614']`), and an actual list column is taken too. Scene graphs and the choices file
 * are not in the Hub copy: validity and plausibility are not reported, and the scene-graph
 * objective has no graphs to learn from.
 *
 * Each question becomes the example the official loader (index.ts) makes of the same question,
 * field for field, through the same function: the row is turned into the official JSON record
 * first. Images stay in the files: an example's `imagePath` is `<images shard>#row=<row>`, read by
 * tasks/hub-images.ts.
 */

const CONFIG = /^(.+)_(balanced|all)_(instructions|images)$/;
const REQUIRED_COLUMNS = ['id', 'imageId', 'question', 'isBalanced'] as const;
const OPTIONAL_COLUMNS = ['answer', 'fullAnswer', 'types', 'groups', 'entailed', 'equivalent', 'semantic'] as const;
const IMAGE_ID_COLUMN = 'id';

export async function loadGqaHubSplit(options: LoadOptions & { dataDir: string }): Promise<LoadedSplit<GqaExample>> {
  const snapshot = await resolveHubSnapshot(options.dataDir, options.revision);
  const { name, instructionFiles, imageFiles } = await locateConfigs(snapshot, options.split);

  // Images first: each question names the row that embeds its image.
  const imageRows = new Map<string, string>();
  const imageIdsMissingFolder = imageFiles.length === 0 ? join(snapshot.root, `${name}_images`) : undefined;
  for (const file of imageFiles) {
    const table = await ParquetTable.open(file);
    table.requireColumns([IMAGE_ID_COLUMN, HUB_IMAGE_COLUMN]);
    for (const group of table.rowGroups) {
      const rows = await table.readRowGroup(group, [IMAGE_ID_COLUMN]);
      rows.forEach((row, index) => {
        const at = group.firstRow + index;
        const id = row[IMAGE_ID_COLUMN];
        if (typeof id !== 'string' || id === '') throw new InputError(`expected an image id (a non-empty string), got ${describeCell(id)}`, { file, record: parquetRowRecord(group, at), field: IMAGE_ID_COLUMN });
        if (imageRows.has(id)) throw new InputError(`image id "${id}" appears twice (first at ${imageRows.get(id)})`, { file, record: parquetRowRecord(group, at), field: IMAGE_ID_COLUMN });
        imageRows.set(id, `${file}#row=${at}`);
      });
    }
  }

  const examples: GqaExample[] = [];
  const seen = new Map<string, string>();
  for (const file of instructionFiles) {
    const table = await ParquetTable.open(file);
    table.requireColumns(REQUIRED_COLUMNS);
    const columns = [...REQUIRED_COLUMNS, ...OPTIONAL_COLUMNS.filter((column) => table.columns.includes(column))];
    for (const group of table.rowGroups) {
      const rows = await table.readRowGroup(group, columns);
      rows.forEach((row, index) => {
        const at = parquetRowRecord(group, group.firstRow + index);
        const questionId = row.id;
        if (typeof questionId !== 'string' || questionId === '') throw new InputError(`expected a question id (a non-empty string), got ${describeCell(questionId)}`, { file, record: at, field: 'id' });
        if (seen.has(questionId)) throw new InputError(`question id "${questionId}" appears twice in the split (first at ${seen.get(questionId)})`, { file, record: at, field: 'id' });
        seen.set(questionId, `${basename(file)} ${at}`);
        const example = readQuestion(officialRecordOf(row, file, group, group.firstRow + index), questionId, file, imageIdsMissingFolder ?? snapshot.root, at);
        if (imageIdsMissingFolder === undefined) {
          const imagePath = imageRows.get(example.imageId);
          if (imagePath === undefined) {
            throw new InputError(`image "${example.imageId}" is not in the images config (${imageRows.size} images in ${imageFiles.map((image) => relative(snapshot.root, image)).join(', ')})`, { file, record: at, field: 'imageId' });
          }
          example.imagePath = imagePath;
        }
        examples.push(example);
      });
    }
  }

  const files = [...instructionFiles, ...imageFiles];
  // The revision and the files' hashes (hubSplitSource): the JSON files of the same questions are another split, never ranked with it.
  const source = await hubSplitSource(snapshot, files, 'hub-parquet/gqa');
  return {
    task: 'gqa',
    taskVersion: GQA_TASK_VERSION,
    split: options.splitLabel ?? name,
    fingerprint: fingerprintSplit([source], examples.map((example) => example.imageId)),
    files,
    examples,
  };
}

/** The official questions file's record of a row: what readQuestion reads, so both layouts give the same example. */
function officialRecordOf(row: Record<string, unknown>, file: string, group: ParquetRowGroup, rowIndex: number): Record<string, unknown> {
  const record: Record<string, unknown> = { imageId: row.imageId, question: row.question, isBalanced: row.isBalanced };
  // Nulls are the columns a config does not fill (test splits have no answers): absent in the JSON.
  for (const field of ['answer', 'fullAnswer'] as const) if (row[field] !== null && row[field] !== undefined) record[field] = row[field];
  if (row.types !== null && row.types !== undefined) record.types = withoutNulls(row.types);
  if (row.groups !== null && row.groups !== undefined) {
    const groups = row.groups as Record<string, unknown>;
    record.groups = typeof groups === 'object' ? { global: groups.global ?? null, local: groups.local ?? null } : groups;
  }
  for (const field of ['entailed', 'equivalent'] as const) {
    if (row[field] !== null && row[field] !== undefined) record[field] = questionIdList(row[field], file, group, rowIndex, field);
  }
  if (row.semantic !== null && row.semantic !== undefined) {
    record.semantic = Array.isArray(row.semantic) ? row.semantic.map((step) => (step !== null && typeof step === 'object' ? withoutNulls(step) : step)) : row.semantic;
  }
  return record;
}

/** `entailed` / `equivalent`: the card's string (JSON or Python list text), or a list column. */
function questionIdList(value: unknown, file: string, group: ParquetRowGroup, rowIndex: number, field: string): unknown {
  if (Array.isArray(value)) return value;
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (text === '') return [];
  for (const candidate of [text, text.replace(/'/g, '"')]) {
    try {
      const parsed = JSON.parse(candidate) as unknown;
      if (Array.isArray(parsed) && parsed.every((item) => typeof item === 'string')) return parsed;
    } catch {
      // Not this form; the next, or the error below.
    }
  }
  throw new InputError(`expected a list of question ids (as text, e.g. ["201640614"]), got ${describeCell(value)}`, { file, record: parquetRowRecord(group, rowIndex), field });
}

function withoutNulls(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== null && item !== undefined));
}

interface LocatedConfigs {
  /** `<split>_<balanced|all>`, the configs' common prefix. */
  name: string;
  instructionFiles: string[];
  /** Empty where the snapshot has no images config for the split (a text-only download). */
  imageFiles: string[];
}

async function locateConfigs(snapshot: HubSnapshot, requested: string): Promise<LocatedConfigs> {
  const configs = new Map<string, { instructions?: string[]; images?: string[] }>();
  for (const folder of await listFolder(snapshot.root)) {
    const match = CONFIG.exec(folder);
    if (match === null) continue;
    const files = await parquetFilesOf(join(snapshot.root, folder));
    if (files.length === 0) continue;
    const name = `${match[1]}_${match[2]}`;
    const entry = configs.get(name) ?? {};
    entry[match[3] as 'instructions' | 'images'] = files;
    configs.set(name, entry);
  }
  const names = [...configs.keys()].filter((name) => configs.get(name)!.instructions !== undefined).sort();
  const where = snapshot.revision ? `${snapshot.root} (revision ${snapshot.revision})` : snapshot.root;
  if (names.length === 0) throw new InputError('no GQA instructions here (expected <split>_balanced_instructions/<split>-00000-of-0000N.parquet, as lmms-lab/GQA has them)', { file: where });
  let name: string | undefined;
  if (!requested) {
    if (names.length > 1) throw new InputError(`several splits here (${names.join(', ')}): name one with --split`, { file: where, field: '--split' });
    name = names[0];
  } else {
    // "testdev" is its balanced questions, as the official loader prefers testdev_balanced_questions.json.
    name = [requested, `${requested}_balanced`, `${requested}_all`].find((candidate) => names.includes(candidate));
    if (name === undefined) throw new InputError(`no instructions of split "${requested}" here; splits there: ${names.join(', ')}`, { file: where, field: '--split' });
  }
  const split = name.replace(/_(balanced|all)$/, '');
  // The balanced questions' images are a subset of all questions' images: either config serves.
  const images = configs.get(name)!.images ?? configs.get(`${split}_balanced`)?.images ?? configs.get(`${split}_all`)?.images ?? [];
  return { name, instructionFiles: configs.get(name)!.instructions!, imageFiles: images };
}

/** A config's shards, `<config>/*.parquet` or `<config>/<split>/*.parquet`, in shard order. */
async function parquetFilesOf(folder: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await listFolder(folder)) {
    if (entry.endsWith('.parquet')) files.push(join(folder, entry));
    else for (const inner of await listFolder(join(folder, entry))) if (inner.endsWith('.parquet')) files.push(join(folder, entry, inner));
  }
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
