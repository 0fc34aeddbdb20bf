import { basename, join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadOptions, LoadedSplit } from '../../core/types.ts';
// Registers the reader of `<shard>#row=<row>` images with core/image-bytes.ts.
import '../hub-images.ts';
import { hubSplitSource, listFolder, resolveHubSnapshot, type HubSnapshot } from '../hub-snapshot.ts';
import { ParquetTable, parquetRowRecord, type ParquetRowGroup, describeCell } from '../parquet-table.ts';
import { fingerprintSplit } from '../split-files.ts';
import { RETRIEVAL_TASK_VERSION, type RetrievalImage } from './karpathy.ts';

/**
 * Karpathy-split retrieval data as two Hub parquet copies lay it out, read offline, told apart by
 * their columns. Both keep the images embedded (the `datasets` Image struct `image: {bytes, path}`);
 * an image's `path` is `<shard>#row=<row>`, read by tasks/hub-images.ts, nothing written out.
 *
 * lmms-lab/flickr30k (what lmms-eval's flickr30k task downloads): `data/test-NNNNN-of-00009.parquet`,
 * one split "test" of 31,783 rows, one row per image. Its card's features
 * (huggingface.co/datasets/lmms-lab/flickr30k, README.md `dataset_info`):
 *
 *   image: image, caption: list<string>, sentids: list<string>, img_id: string, filename: string
 *
 * These are the fields of Karpathy's dataset_flickr30k.json (`imgid`, `filename`, `sentids`,
 * `sentences[].raw`) with the ids as text; the Karpathy `split` field is not there: the Hub's "test"
 * is every image of Flickr30k, not the Karpathy 1K test.
 *
 * COCO with the Karpathy split, as bitmind/MS-COCO has it: `data/<train|validation|test>-*.parquet`
 * (25,010 rows in test and in validation, 566,747 in train: the 5K test and val images' captions,
 * and train+restval's), one row per caption. Its card's features
 * (huggingface.co/datasets/bitmind/MS-COCO, README.md `dataset_info`):
 *
 *   image: image, filepath: string, sentids: list<int32>, filename: string, imgid: int32,
 *   split: string, sentences: {tokens: list<string>, raw: string, imgid: int32, sentid: int32},
 *   cocoid: int32
 *
 * the fields of Karpathy's dataset_coco.json, one sentence per row. It was picked over
 * yerevann/coco-karpathy, the most used Karpathy COCO on the Hub, because that one's card documents
 * no features and it links the images by URL instead of embedding them.
 *
 * In both, the examples are the ones tasks/retrieval/karpathy.ts makes of the same images and
 * captions (image `imgid`, caption `sentid`, images in first-row order, captions in row and list
 * order), so a similarity matrix scores to the last bit in either layout. `--split` names the
 * Hub's split (`val` finds `validation`).
 */

const FLICKR_COLUMNS = ['img_id', 'filename', 'caption', 'sentids'] as const;
const COCO_COLUMNS = ['imgid', 'filename', 'filepath', 'split', 'sentences', 'sentids', 'cocoid'] as const;

/** Which layout a file's columns are: lmms-lab/flickr30k's (a row per image) or bitmind/MS-COCO's (a row per caption). */
type HubRetrievalLayout = 'flickr30k' | 'coco-karpathy';

interface Accumulated {
  examples: RetrievalImage[];
  /** imgid → where the image was first seen (flickr30k: its row; coco: its first caption's row). */
  imageAt: Map<number, string>;
  byImgid: Map<number, RetrievalImage>;
  sentenceAt: Map<number, string>;
}

export async function loadRetrievalHubSplit(options: LoadOptions & { dataDir: string }): Promise<LoadedSplit<RetrievalImage>> {
  const snapshot = await resolveHubSnapshot(options.dataDir, options.revision);
  const { split, files } = await locateSplitFiles(snapshot, options.split);
  const state: Accumulated = { examples: [], imageAt: new Map(), byImgid: new Map(), sentenceAt: new Map() };
  let layout: HubRetrievalLayout | undefined;
  for (const file of files) {
    const table = await ParquetTable.open(file);
    layout ??= layoutOf(table);
    // The image column is not required: a similarity matrix scores without it; reading an image from such a copy fails naming it.
    const columns = layout === 'flickr30k' ? FLICKR_COLUMNS : COCO_COLUMNS;
    table.requireColumns(columns);
    for (const group of table.rowGroups) {
      const rows = await table.readRowGroup(group, columns);
      rows.forEach((row, index) => (layout === 'flickr30k' ? addFlickrRow : addCocoRow)(row, state, file, group, group.firstRow + index, split));
    }
  }
  // Matrix columns: image by image, each image's captions in row order, as karpathy.ts numbers them.
  let column = 0;
  state.examples.forEach((image, imageIndex) => {
    for (const caption of image.captions) Object.assign(caption, { index: column++, imageIndex });
  });
  const examples = state.examples;
  const source = await hubSplitSource(snapshot, files, `hub-parquet/${layout}`);
  return {
    task: 'retrieval',
    taskVersion: RETRIEVAL_TASK_VERSION,
    split: options.splitLabel ?? split,
    fingerprint: fingerprintSplit([source], examples.map((example) => example.id)),
    files,
    examples,
  };
}

function layoutOf(table: ParquetTable): HubRetrievalLayout {
  if (table.columns.includes('caption') && table.columns.includes('img_id')) return 'flickr30k';
  if (table.columns.includes('sentences') && table.columns.includes('imgid')) return 'coco-karpathy';
  throw new InputError(`neither lmms-lab/flickr30k's columns (${FLICKR_COLUMNS.join(', ')}, image) nor a Karpathy COCO's as bitmind/MS-COCO has them (${COCO_COLUMNS.join(', ')}, image); the file has ${table.columns.join(', ')}`, { file: table.file });
}

function claimSentence(state: Accumulated, sentid: number, where: string, fail: (field: string, message: string) => InputError, field: string): void {
  if (state.sentenceAt.has(sentid)) throw fail(field, `sentence id ${sentid} appears twice in the split (first at ${state.sentenceAt.get(sentid)})`);
  state.sentenceAt.set(sentid, where);
}

/** lmms-lab/flickr30k: one row per image, its captions a list. */
function addFlickrRow(row: Record<string, unknown>, state: Accumulated, file: string, group: ParquetRowGroup, rowIndex: number, split: string): void {
  const where = `${basename(file)} ${parquetRowRecord(group, rowIndex)}`;
  const fail = (field: string, message: string) => new InputError(message, { file, record: parquetRowRecord(group, rowIndex), field });
  const imgid = idOf(row.img_id);
  if (imgid === undefined) throw fail('img_id', `expected an image id (a non-negative integer, as text), got ${describeCell(row.img_id)}`);
  if (state.imageAt.has(imgid)) throw fail('img_id', `image id ${imgid} appears twice in the split (first at ${state.imageAt.get(imgid)})`);
  state.imageAt.set(imgid, where);
  if (typeof row.filename !== 'string' || row.filename === '') throw fail('filename', `expected a file name, got ${describeCell(row.filename)}`);
  const captions = row.caption;
  const sentids = row.sentids;
  if (!Array.isArray(captions) || captions.length === 0) throw fail('caption', `expected a non-empty list of captions, got ${describeCell(captions)}`);
  if (!Array.isArray(sentids) || sentids.length !== captions.length) throw fail('sentids', `expected one sentence id per caption (${captions.length}), got ${describeCell(sentids)}`);
  state.examples.push({
    id: String(imgid),
    imgid,
    filename: row.filename,
    path: `${file}#row=${rowIndex}`,
    karpathySplit: split,
    captions: captions.map((text, k) => {
      if (typeof text !== 'string') throw fail(`caption[${k}]`, `expected a string, got ${describeCell(text)}`);
      const sentid = idOf(sentids[k]);
      if (sentid === undefined) throw fail(`sentids[${k}]`, `expected a sentence id (a non-negative integer, as text), got ${describeCell(sentids[k])}`);
      claimSentence(state, sentid, where, fail, `sentids[${k}]`);
      return { id: sentid, text, index: -1, imageIndex: -1 };
    }),
  });
}

const KARPATHY_IMAGE_SPLITS = new Set(['train', 'val', 'test', 'restval']);

/**
 * bitmind/MS-COCO: one row per caption (`sentences` is one {tokens, raw, imgid, sentid}), the
 * image's fields and bytes on each of its rows. An image is its first row; its captions, its rows
 * in order; images in the order of their first rows.
 */
function addCocoRow(row: Record<string, unknown>, state: Accumulated, file: string, group: ParquetRowGroup, rowIndex: number): void {
  const where = `${basename(file)} ${parquetRowRecord(group, rowIndex)}`;
  const fail = (field: string, message: string) => new InputError(message, { file, record: parquetRowRecord(group, rowIndex), field });
  const imgid = idOf(row.imgid);
  if (imgid === undefined) throw fail('imgid', `expected an image id (a non-negative integer), got ${describeCell(row.imgid)}`);
  const sentence = row.sentences as Record<string, unknown> | null;
  if (sentence === null || typeof sentence !== 'object' || Array.isArray(sentence)) throw fail('sentences', `expected a sentence {tokens, raw, imgid, sentid}, got ${describeCell(sentence)}`);
  if (typeof sentence.raw !== 'string') throw fail('sentences.raw', `expected a string, got ${describeCell(sentence.raw)}`);
  const sentid = idOf(sentence.sentid);
  if (sentid === undefined) throw fail('sentences.sentid', `expected a sentence id (a non-negative integer), got ${describeCell(sentence.sentid)}`);
  if (sentence.imgid !== null && sentence.imgid !== undefined && idOf(sentence.imgid) !== imgid) throw fail('sentences.imgid', `expected the row's imgid ${imgid}, got ${describeCell(sentence.imgid)}`);
  const sentids = row.sentids;
  if (!Array.isArray(sentids) || !sentids.some((id) => idOf(id) === sentid)) throw fail('sentids', `expected the image's sentence ids, including this row's ${sentid}, got ${describeCell(sentids)}`);
  claimSentence(state, sentid, where, fail, 'sentences.sentid');
  let image = state.byImgid.get(imgid);
  if (image === undefined) {
    if (typeof row.filename !== 'string' || row.filename === '') throw fail('filename', `expected a file name, got ${describeCell(row.filename)}`);
    if (row.filepath !== null && typeof row.filepath !== 'string') throw fail('filepath', `expected a string, got ${describeCell(row.filepath)}`);
    if (typeof row.split !== 'string' || !KARPATHY_IMAGE_SPLITS.has(row.split)) throw fail('split', `expected "train", "val", "test" or "restval", got ${describeCell(row.split)}`);
    const cocoid = row.cocoid === null || row.cocoid === undefined ? undefined : idOf(row.cocoid);
    if (cocoid === undefined && row.cocoid !== null && row.cocoid !== undefined) throw fail('cocoid', `expected a COCO image id, got ${describeCell(row.cocoid)}`);
    image = {
      id: String(imgid),
      imgid,
      ...(cocoid !== undefined ? { cocoid } : {}),
      filename: row.filename,
      ...(typeof row.filepath === 'string' ? { filepath: row.filepath } : {}),
      path: `${file}#row=${rowIndex}`,
      karpathySplit: row.split,
      captions: [],
    };
    state.byImgid.set(imgid, image);
    state.imageAt.set(imgid, where);
    state.examples.push(image);
  } else if (row.split !== image.karpathySplit) {
    throw fail('split', `image ${imgid} is in Karpathy split "${image.karpathySplit}" at ${state.imageAt.get(imgid)}, "${String(row.split)}" here`);
  }
  image.captions.push({ id: sentid, text: sentence.raw, index: -1, imageIndex: -1 });
}

async function locateSplitFiles(snapshot: HubSnapshot, requested: string): Promise<{ split: string; files: string[] }> {
  const bySplit = new Map<string, string[]>();
  for (const name of await listFolder(join(snapshot.root, 'data'))) {
    const match = /^([A-Za-z0-9_.]+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?\.parquet$/.exec(name) ?? /^([A-Za-z0-9_]+)\.parquet$/.exec(name);
    if (match) bySplit.set(match[1], [...(bySplit.get(match[1]) ?? []), join(snapshot.root, 'data', name)]);
  }
  const splits = [...bySplit.keys()].sort();
  const where = snapshot.revision ? `${snapshot.root} (revision ${snapshot.revision})` : snapshot.root;
  if (splits.length === 0) throw new InputError('no parquet files of a split here (expected data/<split>-00000-of-0000N.parquet, as lmms-lab/flickr30k has them)', { file: where });
  const split = !bySplit.has(requested) && requested === 'val' ? 'validation' : requested;
  const files = bySplit.get(split);
  if (files === undefined) {
    throw new InputError(`no parquet files of split "${requested}" here; splits there: ${splits.join(', ')} (lmms-lab/flickr30k has one, "test": all 31,783 images, without Karpathy's train/val/test assignment)`, { file: where, field: '--split' });
  }
  return { split, files: files.sort() };
}

/** An id written as text ("1000") or as an integer. */
function idOf(value: unknown): number | undefined {
  const number = typeof value === 'string' && /^(0|[1-9]\d*)$/.test(value) ? Number(value) : typeof value === 'bigint' ? Number(value) : value;
  return Number.isSafeInteger(number) && (number as number) >= 0 ? (number as number) : undefined;
}
