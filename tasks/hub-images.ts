import { InputError } from '../core/errors.ts';
import { registerEmbeddedImageReader } from '../core/image-bytes.ts';
import { ParquetTable, parquetRowRecord, type ParquetRowGroup } from './parquet-table.ts';

/**
 * Images embedded in the Hub's parquet files, read where they are: the `datasets` Image feature is
 * a struct column `image: {bytes: binary, path: string}` (lmms-lab/VQAv2's data files, lmms-lab/GQA's
 * `*_images` configs, lmms-lab/flickr30k). A loader names an example's image `<file>#row=<row>`,
 * and this reader, registered with core/image-bytes.ts (through which the image pipeline and the
 * feature cache read), returns that cell's bytes; nothing is written out.
 */
export const HUB_IMAGE_COLUMN = 'image';

/**
 * The embedded image of an example read from parquet, as its file's bytes (JPEG or PNG), without
 * writing it anywhere. Images are asked for in split order, a batch at a time and several at
 * once: the decoded image column of the last few row groups is kept, so a row group's column
 * chunk is read once, not once per row, and memory stays at a few row groups of images.
 */
export async function readHubParquetImage(imagePath: string): Promise<Uint8Array> {
  const match = /^(.*)#row=(\d+)$/.exec(imagePath);
  if (match === null) throw new InputError('expected an image inside a parquet file (<file>#row=<row>)', { file: imagePath });
  const [, file, rowText] = match;
  const row = Number(rowText);
  const table = await openTable(file);
  table.requireColumns([HUB_IMAGE_COLUMN]);
  const group = table.rowGroups.find((candidate) => row >= candidate.firstRow && row < candidate.firstRow + candidate.rows);
  if (group === undefined) throw new InputError(`the file has ${table.rowCount} rows, not a row ${row}`, { file, field: HUB_IMAGE_COLUMN });
  const cells = await imageColumnOf(table, group);
  const bytes = (cells[row - group.firstRow] as { bytes?: unknown } | null)?.bytes;
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new InputError('expected the image\'s bytes ({bytes, path} with bytes set)', { file, record: parquetRowRecord(group, row), field: `${HUB_IMAGE_COLUMN}.bytes` });
  }
  return bytes;
}

registerEmbeddedImageReader(readHubParquetImage);

const IMAGE_GROUPS_KEPT = 4;
const openTables = new Map<string, Promise<ParquetTable>>();
const imageGroups = new Map<string, Promise<unknown[]>>();

function openTable(file: string): Promise<ParquetTable> {
  let table = openTables.get(file);
  if (table === undefined) {
    table = ParquetTable.open(file);
    // A failed open is not kept: the file may be fixed and read again in the same process.
    table.catch(() => openTables.delete(file));
    openTables.set(file, table);
  }
  return table;
}

function imageColumnOf(table: ParquetTable, group: ParquetRowGroup): Promise<unknown[]> {
  const key = `${table.file}\n${group.index}`;
  let cells = imageGroups.get(key);
  if (cells === undefined) {
    cells = table.readRowGroup(group, [HUB_IMAGE_COLUMN], { utf8: false }).then((rows) => rows.map((row) => row[HUB_IMAGE_COLUMN]));
    cells.catch(() => imageGroups.delete(key));
    imageGroups.set(key, cells);
    // Oldest first out (a Map iterates in insertion order).
    while (imageGroups.size > IMAGE_GROUPS_KEPT) imageGroups.delete(imageGroups.keys().next().value!);
  }
  return cells;
}
