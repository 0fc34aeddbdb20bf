import { basename, join, relative, sep } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadOptions, LoadedSplit } from '../../core/types.ts';
// Registers the reader of `<shard>#row=<row>` images with core/image-bytes.ts.
import '../hub-images.ts';
import { fileSha256, listFolder, resolveHubSnapshot, revisionOfFiles, type HubSnapshot } from '../hub-snapshot.ts';
import { ParquetTable, parquetRowRecord } from '../parquet-table.ts';
import { fingerprintSplit } from '../split-files.ts';
import { RETRIEVAL_TASK_VERSION, type RetrievalImage } from './karpathy.ts';

/**
 * Flickr30k as the Hub's `lmms-lab/flickr30k` lays it out (what lmms-eval's flickr30k task
 * downloads): `data/test-NNNNN-of-00009.parquet`, one split "test" of 31,783 rows, one row per
 * image, with the features of its dataset card (huggingface.co/datasets/lmms-lab/flickr30k,
 * README.md `dataset_info`):
 *
 *   image: image ({bytes: binary, path: string}, the JPEG embedded), caption: list<string>,
 *   sentids: list<string>, img_id: string, filename: string
 *
 * These are the fields of Karpathy's dataset_flickr30k.json (`imgid`, `filename`, `sentids`,
 * `sentences[].raw`) with the ids as text; the Karpathy `split` field is not there: the Hub's
 * "test" is every image of Flickr30k, not the Karpathy 1K test. So a split here is the Hub's
 * split, all of its images, and the examples are the ones tasks/retrieval/karpathy.ts makes of the
 * same images and captions (image `imgid`, caption `sentid`, in row and list order), so a
 * similarity matrix scores to the last bit in either layout. Images stay in the files: an image's
 * `path` is `<shard>#row=<row>`, read by tasks/hub-images.ts.
 */

const COLUMNS = ['img_id', 'filename', 'caption', 'sentids'] as const;

export async function loadRetrievalHubSplit(options: LoadOptions & { dataDir: string }): Promise<LoadedSplit<RetrievalImage>> {
  const snapshot = await resolveHubSnapshot(options.dataDir, options.revision);
  const { split, files } = await locateSplitFiles(snapshot, options.split);
  const examples: RetrievalImage[] = [];
  const seenImages = new Map<number, string>();
  const seenSentences = new Set<number>();
  let captionCount = 0;
  for (const file of files) {
    const table = await ParquetTable.open(file);
    // The image column is not required: a similarity matrix scores without it; reading an image from such a copy fails naming it.
    table.requireColumns(COLUMNS);
    for (const group of table.rowGroups) {
      const rows = await table.readRowGroup(group, COLUMNS);
      rows.forEach((row, index) => {
        const rowIndex = group.firstRow + index;
        const fail = (field: string, message: string) => new InputError(message, { file, record: parquetRowRecord(group, rowIndex), field });
        const imgid = idOf(row.img_id);
        if (imgid === undefined) throw fail('img_id', `expected an image id (a non-negative integer, as text), got ${describeCell(row.img_id)}`);
        if (seenImages.has(imgid)) throw fail('img_id', `image id ${imgid} appears twice in the split (first at ${seenImages.get(imgid)})`);
        seenImages.set(imgid, `${basename(file)} ${parquetRowRecord(group, rowIndex)}`);
        if (typeof row.filename !== 'string' || row.filename === '') throw fail('filename', `expected a file name, got ${describeCell(row.filename)}`);
        const captions = row.caption;
        const sentids = row.sentids;
        if (!Array.isArray(captions) || captions.length === 0) throw fail('caption', `expected a non-empty list of captions, got ${describeCell(captions)}`);
        if (!Array.isArray(sentids) || sentids.length !== captions.length) throw fail('sentids', `expected one sentence id per caption (${captions.length}), got ${describeCell(sentids)}`);
        const imageIndex = examples.length;
        examples.push({
          id: String(imgid),
          imgid,
          filename: row.filename,
          path: `${file}#row=${rowIndex}`,
          karpathySplit: split,
          captions: captions.map((text, k) => {
            if (typeof text !== 'string') throw fail(`caption[${k}]`, `expected a string, got ${describeCell(text)}`);
            const sentid = idOf(sentids[k]);
            if (sentid === undefined) throw fail(`sentids[${k}]`, `expected a sentence id (a non-negative integer, as text), got ${describeCell(sentids[k])}`);
            if (seenSentences.has(sentid)) throw fail(`sentids[${k}]`, `sentence id ${sentid} appears twice in the split`);
            seenSentences.add(sentid);
            return { id: sentid, text, index: captionCount++, imageIndex };
          }),
        });
      });
    }
  }
  const revision = await revisionOfFiles(snapshot, files);
  const fileHashes: { path: string; sha256: string }[] = [];
  for (const file of files) fileHashes.push({ path: relative(snapshot.root, file).split(sep).join('/'), sha256: await fileSha256(file, snapshot.root) });
  // As for the other Hub layouts: the revision and the files' hashes say which copy was read.
  const source = Buffer.from(JSON.stringify({ layout: 'hub-parquet/flickr30k', revision, files: fileHashes }));
  return {
    task: 'retrieval',
    taskVersion: RETRIEVAL_TASK_VERSION,
    split: options.splitLabel ?? split,
    fingerprint: fingerprintSplit([source], examples.map((example) => example.id)),
    files,
    examples,
  };
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
  const files = bySplit.get(requested);
  if (files === undefined) {
    throw new InputError(`no parquet files of split "${requested}" here; splits there: ${splits.join(', ')} (lmms-lab/flickr30k has one, "test": all 31,783 images, without Karpathy's train/val/test assignment)`, { file: where, field: '--split' });
  }
  return { split: requested, files: files.sort() };
}

/** An id written as text ("1000") or as an integer. */
function idOf(value: unknown): number | undefined {
  const number = typeof value === 'string' && /^(0|[1-9]\d*)$/.test(value) ? Number(value) : typeof value === 'bigint' ? Number(value) : value;
  return Number.isSafeInteger(number) && (number as number) >= 0 ? (number as number) : undefined;
}

function describeCell(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'bigint') return `int64 ${value}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'object') return 'a struct';
  return `${typeof value} ${String(value)}`;
}
