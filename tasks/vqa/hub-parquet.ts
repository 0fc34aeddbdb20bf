import { basename, join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadOptions } from '../../core/types.ts';
import { hubSplitSource, listFolder, resolveHubSnapshot, type HubSnapshot } from '../hub-snapshot.ts';
import { ParquetTable, parquetRowRecord, type ParquetRowGroup, describeCell } from '../parquet-table.ts';
import { fingerprintSplit } from '../split-files.ts';
import { VQA_ANSWERS_PER_QUESTION, VQA_TASK_VERSION, type LoadedVqaSplit, type VqaExample } from './example.ts';

/**
 * VQA v2 as the Hub's `lmms-lab/VQAv2` lays it out (what lmms-eval downloads): parquet shards
 * `data/<split>-NNNNN-of-NNNNN[-hash].parquet` for the splits validation (214,354 questions),
 * testdev and test, with the columns of its dataset card:
 *
 *   question_type: string, multiple_choice_answer: string,
 *   answers: list<{answer: string, answer_confidence: string, answer_id: int64}>,
 *   image_id: int64, answer_type: string, question_id: int64, question: string,
 *   image: {bytes: binary, path: string}   (the `datasets` Image feature, the JPEG embedded)
 *
 * The examples are the official loader's (tasks/vqa/load.ts), field for field, so `vlbench score`
 * gives the same numbers on the same questions in either layout. Test splits carry null answers;
 * copies without the image column (text-only exports) load and score, and only fail to give images.
 * Images stay in the files: an example's `imagePath` is `<shard>#row=<row>`, the first row that
 * embeds its image, and `readVqaHubImage` (registered with core/image-bytes.ts, through which the
 * image pipeline reads) returns that cell's bytes.
 */

/** Splits as lmms-lab/VQAv2 names them; the official names are taken too. */
const OFFICIAL_SPLIT_NAMES: Readonly<Record<string, string>> = { val2014: 'validation', 'test-dev2015': 'testdev', test2015: 'test' };

/** The columns every split has; the annotation columns may be null on test splits. */
const QUESTION_COLUMNS = ['question_id', 'question', 'image_id'] as const;
const ANNOTATION_COLUMNS = ['answers', 'answer_type', 'question_type', 'multiple_choice_answer'] as const;
/** The embedded images are read by tasks/hub-images.ts, shared with the other Hub parquet layouts. */
export { HUB_IMAGE_COLUMN as VQA_HUB_IMAGE_COLUMN, readHubParquetImage as readVqaHubImage } from '../hub-images.ts';

/** What `info.dataType` says of a split read from parquet, where the JSON layout says its data_type ("mscoco"). */
export const VQA_HUB_DATA_TYPE = 'hub-parquet';

export async function loadVqaHubSplit(options: LoadOptions & { dataDir: string }): Promise<LoadedVqaSplit> {
  const snapshot = await resolveHubSnapshot(options.dataDir, options.revision);
  const { split, files } = await locateSplitFiles(snapshot, options.split);
  const examples: VqaExample[] = [];
  let annotated: boolean | undefined;
  for (const file of files) {
    const table = await ParquetTable.open(file);
    // The image column is not required here: scoring needs none, and text-only copies (without
    // `image`) score too; reading an image from such a file is what fails, naming it.
    table.requireColumns([...QUESTION_COLUMNS, ...ANNOTATION_COLUMNS]);
    for (const group of table.rowGroups) {
      const rows = await table.readRowGroup(group, [...QUESTION_COLUMNS, ...ANNOTATION_COLUMNS]);
      for (let index = 0; index < rows.length; index++) {
        const example = exampleOfRow(rows[index], table.file, group, group.firstRow + index);
        const hasAnswers = example.answers.length > 0;
        // A split is annotated throughout (validation) or not at all (test): a mix is a damaged file.
        if (annotated === undefined) annotated = hasAnswers;
        else if (annotated !== hasAnswers) {
          throw new InputError(annotated ? 'null answers in an annotated split' : 'answers in a split whose first rows have none', { file, record: parquetRowRecord(group, group.firstRow + index), field: 'answers' });
        }
        examples.push(example);
      }
    }
  }
  const source = await hubSplitSource(snapshot, files, 'hub-parquet/vqa');
  checkDistinctQuestionIds(examples, files);
  // Each row embeds its image, so the questions of one COCO image are several rows; they name the
  // image by its first row, as the JSON layout names it by one file, so that everything keyed by
  // image (held-out validation images, region boxes) sees one image, not one per question.
  const firstRowOfImage = new Map<number, string>();
  for (const example of examples) {
    const first = firstRowOfImage.get(example.imageId);
    if (first === undefined) firstRowOfImage.set(example.imageId, example.imagePath);
    else example.imagePath = first;
  }
  // The source (hubSplitSource) says which copy was read; the image ids, which images the examples ask about.
  return {
    task: 'vqa',
    taskVersion: VQA_TASK_VERSION,
    split: options.splitLabel ?? split,
    fingerprint: fingerprintSplit([source], examples.map((example) => example.imageId)),
    files,
    examples,
    info: { dataType: VQA_HUB_DATA_TYPE, dataSubtype: split, annotated: annotated ?? false },
  };
}

async function locateSplitFiles(snapshot: HubSnapshot, requested: string): Promise<{ split: string; files: string[] }> {
  // data/<split>-…parquet (the dataset's own files), or <split>/…parquet and <config>/<split>/…parquet (the Hub's parquet conversion).
  const bySplit = new Map<string, string[]>();
  const add = (split: string, file: string) => bySplit.set(split, [...(bySplit.get(split) ?? []), file]);
  for (const name of await listFolder(join(snapshot.root, 'data'))) {
    const match = /^([A-Za-z0-9_.]+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?\.parquet$/.exec(name) ?? /^([A-Za-z0-9_]+)\.parquet$/.exec(name);
    if (match) add(match[1], join(snapshot.root, 'data', name));
  }
  for (const folder of [snapshot.root, join(snapshot.root, 'default')]) {
    for (const split of await listFolder(folder)) {
      if (split === 'data') continue;
      for (const name of await listFolder(join(folder, split))) if (name.endsWith('.parquet')) add(split, join(folder, split, name));
    }
  }
  const splits = [...bySplit.keys()].sort();
  const where = snapshot.revision ? `${snapshot.root} (revision ${snapshot.revision})` : snapshot.root;
  if (splits.length === 0) throw new InputError('no parquet files of a split here (expected data/<split>-00000-of-0000N.parquet, as lmms-lab/VQAv2 has them)', { file: where });
  let split = requested ? OFFICIAL_SPLIT_NAMES[requested] ?? requested : undefined;
  if (split === undefined) {
    if (splits.length > 1) throw new InputError(`several splits here (${splits.join(', ')}): name one with --split`, { file: where, field: '--split' });
    split = splits[0];
  }
  const files = bySplit.get(split);
  if (files === undefined) throw new InputError(`no parquet files of split "${split}" here; splits there: ${splits.join(', ')}`, { file: where, field: '--split' });
  // Shard order is the split's order: names sort as their shard numbers.
  return { split, files: files.sort((a, b) => (basename(a) < basename(b) ? -1 : basename(a) > basename(b) ? 1 : 0)) };
}

function exampleOfRow(row: Record<string, unknown>, file: string, group: ParquetRowGroup, rowIndex: number): VqaExample {
  const record = parquetRowRecord(group, rowIndex);
  const fail = (field: string, expected: string, got: unknown) => new InputError(`expected ${expected}, got ${describeCell(got)}`, { file, record, field });
  const questionId = idOf(row.question_id);
  if (questionId === undefined) throw fail('question_id', 'a non-negative integer', row.question_id);
  const imageId = idOf(row.image_id);
  if (imageId === undefined) throw fail('image_id', 'a non-negative integer', row.image_id);
  const question = row.question;
  if (typeof question !== 'string') throw fail('question', 'a string', question);
  const example: VqaExample = { id: String(questionId), questionId, imageId, imagePath: `${file}#row=${rowIndex}`, question, answers: [] };
  if (row.answers === null || row.answers === undefined) return example;

  const answers = row.answers;
  if (!Array.isArray(answers) || answers.length !== VQA_ANSWERS_PER_QUESTION) throw fail('answers', `a list of ${VQA_ANSWERS_PER_QUESTION} answers`, answers);
  const ids: number[] = [];
  for (let index = 0; index < answers.length; index++) {
    const entry = answers[index] as Record<string, unknown> | null;
    if (entry === null || typeof entry !== 'object') throw fail(`answers[${index}]`, 'a struct {answer, answer_confidence, answer_id}', entry);
    if (typeof entry.answer !== 'string') throw fail(`answers[${index}].answer`, 'a string', entry.answer);
    // The evaluator leaves one answer out by comparing whole records: answer_id keeps them distinct.
    const answerId = idOf(entry.answer_id);
    if (answerId === undefined || ids.includes(answerId)) throw fail(`answers[${index}].answer_id`, 'an integer not used by another answer of this question', entry.answer_id);
    ids.push(answerId);
    if (entry.answer_confidence !== null && entry.answer_confidence !== undefined && typeof entry.answer_confidence !== 'string') {
      throw fail(`answers[${index}].answer_confidence`, 'a string ("yes", "maybe" or "no")', entry.answer_confidence);
    }
    example.answers.push(entry.answer);
  }
  for (const field of ['answer_type', 'question_type', 'multiple_choice_answer'] as const) if (typeof row[field] !== 'string') throw fail(field, 'a string', row[field]);
  example.answerType = row.answer_type as string;
  example.questionType = row.question_type as string;
  example.multipleChoiceAnswer = row.multiple_choice_answer as string;
  return example;
}

function checkDistinctQuestionIds(examples: readonly VqaExample[], files: readonly string[]): void {
  const seen = new Set<number>();
  for (const example of examples) {
    if (seen.has(example.questionId)) {
      const [file, row] = example.imagePath.split('#row=');
      throw new InputError(`question_id ${example.questionId} appears twice in the split (${files.length} file${files.length === 1 ? '' : 's'})`, { file, record: `row ${row}`, field: 'question_id' });
    }
    seen.add(example.questionId);
  }
}

/** int64 columns arrive as bigint. */
function idOf(value: unknown): number | undefined {
  const number = typeof value === 'bigint' ? Number(value) : value;
  return Number.isSafeInteger(number) && (number as number) >= 0 && (typeof value !== 'bigint' || BigInt(number as number) === value) ? (number as number) : undefined;
}
