import * as arrow from 'apache-arrow';
import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import * as parquetWasm from 'parquet-wasm/node';

/**
 * Writes VQA v2 questions as lmms-lab/VQAv2 has them on the Hub (its dataset card's features, in
 * its column order) with parquet-wasm, the Rust arrow-rs writer compiled to WebAssembly: not the
 * library vlbench reads with, so the reader is checked against files it did not write.
 */
export interface HubVqaRow {
  question_id: number;
  image_id: number;
  question: string;
  question_type: string | null;
  answer_type: string | null;
  multiple_choice_answer: string | null;
  /** The ten answers; null on test splits. */
  answers: string[] | null;
  /** The embedded image file's bytes. */
  image: Uint8Array | null;
}

export type HubCodec = 'snappy' | 'zstd' | 'uncompressed';

export interface ShardOptions {
  codec: HubCodec;
  rowsPerGroup: number;
  /** Leave these columns out (a damaged export). */
  without?: readonly string[];
  /** Write the answers list with this many entries in one row, by index (a damaged export). */
  answerCountAt?: { row: number; count: number };
}

const answerStruct = new arrow.Struct([
  new arrow.Field('answer', new arrow.Utf8(), true),
  new arrow.Field('answer_confidence', new arrow.Utf8(), true),
  new arrow.Field('answer_id', new arrow.Int64(), true),
]);
const imageStruct = new arrow.Struct([new arrow.Field('bytes', new arrow.Binary(), true), new arrow.Field('path', new arrow.Utf8(), true)]);

/** The dataset card's features, in its order. */
const FIELDS = [
  new arrow.Field('question_type', new arrow.Utf8(), true),
  new arrow.Field('multiple_choice_answer', new arrow.Utf8(), true),
  new arrow.Field('answers', new arrow.List(new arrow.Field('item', answerStruct, true)), true),
  new arrow.Field('image_id', new arrow.Int64(), true),
  new arrow.Field('answer_type', new arrow.Utf8(), true),
  new arrow.Field('question_id', new arrow.Int64(), true),
  new arrow.Field('question', new arrow.Utf8(), true),
  new arrow.Field('image', imageStruct, true),
];

export function hubVqaParquet(rows: readonly HubVqaRow[], options: ShardOptions): Uint8Array {
  const fields = FIELDS.filter((field) => !(options.without ?? []).includes(field.name));
  const cells = (row: HubVqaRow, index: number): Record<string, unknown> => {
    let answers = row.answers;
    if (answers !== null && options.answerCountAt?.row === index) answers = answers.slice(0, options.answerCountAt.count);
    return {
      question_type: row.question_type,
      multiple_choice_answer: row.multiple_choice_answer,
      answers: answers?.map((answer, answerIndex) => ({ answer, answer_confidence: answerIndex % 3 === 2 ? 'maybe' : 'yes', answer_id: BigInt(answerIndex + 1) })) ?? null,
      image_id: BigInt(row.image_id),
      answer_type: row.answer_type,
      question_id: BigInt(row.question_id),
      question: row.question,
      image: row.image === null ? null : { bytes: row.image, path: `COCO_val2014_${String(row.image_id).padStart(12, '0')}.jpg` },
    };
  };
  const children = fields.map((field) => {
    const builder = arrow.makeBuilder<arrow.DataType, unknown>({ type: field.type, nullValues: [null, undefined] });
    rows.forEach((row, index) => builder.append(cells(row, index)[field.name]));
    return builder.finish().toVector().data[0];
  });
  const schema = new arrow.Schema(fields);
  const table = new arrow.Table([new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(fields), length: rows.length, nullCount: 0, children }))]);
  const codec = { snappy: parquetWasm.Compression.SNAPPY, zstd: parquetWasm.Compression.ZSTD, uncompressed: parquetWasm.Compression.UNCOMPRESSED }[options.codec];
  const properties = new parquetWasm.WriterPropertiesBuilder().setCompression(codec).setDictionaryEnabled(true).setMaxRowGroupSize(options.rowsPerGroup).build();
  return parquetWasm.writeParquet(parquetWasm.Table.fromIPCStream(arrow.tableToIPC(table, 'stream')), properties);
}

/**
 * A Hugging Face hub cache repository folder as `huggingface_hub` leaves it: `blobs/<sha256>` for
 * each file, `snapshots/<commit>/<path>` links to them, `refs/main` naming `mainCommit`.
 */
export async function writeHubCache(cacheRoot: string, repoId: string, snapshots: Record<string, Record<string, Uint8Array>>, mainCommit: string): Promise<string> {
  const repoFolder = join(cacheRoot, `datasets--${repoId.replace('/', '--')}`);
  await mkdir(join(repoFolder, 'blobs'), { recursive: true });
  await mkdir(join(repoFolder, 'refs'), { recursive: true });
  await writeFile(join(repoFolder, 'refs', 'main'), mainCommit);
  for (const [commit, files] of Object.entries(snapshots)) {
    for (const [path, bytes] of Object.entries(files)) {
      const blob = join(repoFolder, 'blobs', createHash('sha256').update(bytes).digest('hex'));
      await writeFile(blob, bytes);
      const link = join(repoFolder, 'snapshots', commit, path);
      await mkdir(join(link, '..'), { recursive: true });
      await symlink(relative(join(link, '..'), blob), link);
    }
  }
  return repoFolder;
}

/** Any table of `fields`, its rows as objects keyed by field name, written as the VQA shards are. */
export function parquetOf(fields: readonly arrow.Field[], rows: readonly Record<string, unknown>[], options: { codec: HubCodec; rowsPerGroup: number }): Uint8Array {
  const children = fields.map((field) => {
    const builder = arrow.makeBuilder<arrow.DataType, unknown>({ type: field.type, nullValues: [null, undefined] });
    for (const row of rows) builder.append(row[field.name]);
    return builder.finish().toVector().data[0];
  });
  const schema = new arrow.Schema([...fields]);
  const table = new arrow.Table([new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct([...fields]), length: rows.length, nullCount: 0, children }))]);
  const codec = { snappy: parquetWasm.Compression.SNAPPY, zstd: parquetWasm.Compression.ZSTD, uncompressed: parquetWasm.Compression.UNCOMPRESSED }[options.codec];
  const properties = new parquetWasm.WriterPropertiesBuilder().setCompression(codec).setDictionaryEnabled(true).setMaxRowGroupSize(options.rowsPerGroup).build();
  return parquetWasm.writeParquet(parquetWasm.Table.fromIPCStream(arrow.tableToIPC(table, 'stream')), properties);
}

const utf8 = (name: string) => new arrow.Field(name, new arrow.Utf8(), true);
const objectValue = new arrow.Struct([utf8('objectId'), utf8('value')]);

/**
 * lmms-lab/GQA's `<split>_<balance>_instructions` features, in its card's order. `annotations` is a
 * `datasets` Sequence of a dict, which Arrow stores as a struct of lists; `semantic` is a list of
 * structs. `entailed` and `equivalent` are strings, as the card types them.
 */
export const GQA_INSTRUCTION_FIELDS = [
  utf8('id'),
  utf8('imageId'),
  utf8('question'),
  utf8('answer'),
  utf8('fullAnswer'),
  new arrow.Field('isBalanced', new arrow.Bool(), true),
  new arrow.Field('groups', new arrow.Struct([utf8('global'), utf8('local')]), true),
  utf8('entailed'),
  utf8('equivalent'),
  new arrow.Field('types', new arrow.Struct([utf8('structural'), utf8('semantic'), utf8('detailed')]), true),
  new arrow.Field('annotations', new arrow.Struct(['question', 'answer', 'fullAnswer'].map((name) => new arrow.Field(name, new arrow.List(new arrow.Field('item', objectValue, true)), true))), true),
  new arrow.Field('semantic', new arrow.List(new arrow.Field('item', new arrow.Struct([utf8('operation'), utf8('argument'), new arrow.Field('dependencies', new arrow.List(new arrow.Field('item', new arrow.Int32(), true)), true)]), true)), true),
  utf8('semanticStr'),
];

/** lmms-lab/GQA's `<split>_<balance>_images` features: the image id and the `datasets` Image struct. */
export const GQA_IMAGE_FIELDS = [utf8('id'), new arrow.Field('image', imageStruct, true)];

/** lmms-lab/flickr30k's features, in its card's order: the image, its captions and their ids (as text), the image id (as text), the file name. */
export const FLICKR30K_FIELDS = [
  new arrow.Field('image', imageStruct, true),
  new arrow.Field('caption', new arrow.List(new arrow.Field('item', new arrow.Utf8(), true)), true),
  new arrow.Field('sentids', new arrow.List(new arrow.Field('item', new arrow.Utf8(), true)), true),
  utf8('img_id'),
  utf8('filename'),
];

/** bitmind/MS-COCO's features (Karpathy COCO, one row per caption), in its card's order. */
export const COCO_KARPATHY_FIELDS = [
  new arrow.Field('image', imageStruct, true),
  utf8('filepath'),
  new arrow.Field('sentids', new arrow.List(new arrow.Field('item', new arrow.Int32(), true)), true),
  utf8('filename'),
  new arrow.Field('imgid', new arrow.Int32(), true),
  utf8('split'),
  new arrow.Field('sentences', new arrow.Struct([new arrow.Field('tokens', new arrow.List(new arrow.Field('item', new arrow.Utf8(), true)), true), utf8('raw'), new arrow.Field('imgid', new arrow.Int32(), true), new arrow.Field('sentid', new arrow.Int32(), true)]), true),
  new arrow.Field('cocoid', new arrow.Int32(), true),
];
