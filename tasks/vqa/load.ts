import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError, fieldError, listSome } from '../../core/errors.ts';
import type { LoadOptions } from '../../core/types.ts';
import { isHubDatasetFolder, listFolder } from '../hub-snapshot.ts';
import { BackgroundFingerprint, fingerprintSplit, isObject, parseJson, readBytes, readSharedBytes, releaseSharedBytes } from '../split-files.ts';
import { scanVqaAnnotations, scanVqaQuestions, type ScannedVqaAnnotations, type ScannedVqaHeader, type ScannedVqaQuestions } from './official-layout-scan.ts';

// What an example is, shared with the parquet loader (hub-parquet.ts), which this file hands Hub folders to.
export { VQA_ANSWERS_PER_QUESTION, VQA_TASK_VERSION, type LoadedVqaSplit, type VqaExample, type VqaSplitInfo } from './example.ts';
import { VQA_ANSWERS_PER_QUESTION, VQA_TASK_VERSION, type LoadedVqaSplit, type VqaExample } from './example.ts';

/**
 * Loads a VQA v2 split from its official files: `v2_OpenEnded_<dataType>_<subtype>_questions.json`
 * and, except for test splits, `v2_<dataType>_<subtype>_annotations.json`, found in `dataDir` (or
 * its Questions/ and Annotations/ folders) by split name, or given as `files.questions` /
 * `files.annotations`. An empty `split` takes the split from the files' data_subtype.
 *
 * Examples come in annotation-file order (the order the official evaluator walks), or question-file
 * order on test splits. The fingerprint is sha256 over the bytes of the files read and the ordered
 * image ids.
 */
export async function loadVqaSplit(options: LoadOptions): Promise<LoadedVqaSplit> {
  // A Hub dataset folder (lmms-lab/VQAv2's parquet, or a cache folder of it) instead of the official JSON.
  if (options.files?.questions === undefined && options.dataDir !== undefined && (await isHubDatasetFolder(options.dataDir))) {
    const { loadVqaHubSplit } = await import('./hub-parquet.ts');
    return loadVqaHubSplit({ ...options, dataDir: options.dataDir });
  }
  if (options.revision !== undefined) throw new InputError('--revision picks a snapshot of a Hugging Face dataset folder; this is not one', { file: options.dataDir, field: '--revision' });
  const located = await locateVqaFiles(options);
  const { questionsFile, annotationsFile } = located;
  // The hashing thread starts first, so that it is up by the time the files are read.
  const fingerprint = new BackgroundFingerprint();
  const read: Partial<VqaFileBytes> = {};
  try {
    // Both files are read at once, and the questions scanned while the annotations are still
    // being read. A failed read is left to the strict path, which reads the files one after the
    // other and so reports the first problem in the same order as it always has.
    const questionsRead = settled(readSharedBytes(questionsFile, 'questions'));
    const annotationsRead = settled(annotationsFile === undefined ? Promise.resolve(undefined) : readSharedBytes(annotationsFile, 'annotations'));
    const questionsBytes = await questionsRead;
    if (questionsBytes.ok) read.questions = questionsBytes.value;
    const questions = questionsBytes.ok ? scanVqaQuestions(questionsBytes.value) : undefined;
    const annotationsBytes = await annotationsRead;
    if (annotationsBytes.ok) read.annotations = annotationsBytes.value;
    if (!questionsBytes.ok || !annotationsBytes.ok) return await loadVqaSplitStrictly(options, located);
    const bytes = { questions: questionsBytes.value, annotations: annotationsBytes.value };
    fingerprint.hash(fileContents(bytes));
    return (
      (questions && (await loadScannedVqaSplit(options, located, bytes, questions, fingerprint))) ??
      (await loadVqaSplitStrictly(options, located, bytes, fingerprint))
    );
  } finally {
    // The split keeps none of the bytes (its strings are copies), and the worker is done or stopped.
    fingerprint.close();
    releaseSharedBytes(read.questions);
    releaseSharedBytes(read.annotations);
  }
}

/** A promise's outcome as a value, so that a second read's failure is never left unhandled while the first is awaited. */
function settled<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    () => ({ ok: false as const }),
  );
}

/**
 * The strict path alone: JSON.parse and the record-by-record validation, without the byte
 * scanner. What the fast path must agree with, for the tests and the benchmark that compare them.
 */
export async function loadVqaSplitWithJsonParse(options: LoadOptions): Promise<LoadedVqaSplit> {
  return loadVqaSplitStrictly(options, await locateVqaFiles(options));
}

interface VqaFiles {
  questionsFile: string;
  annotationsFile?: string;
}

interface VqaFileBytes {
  questions: Buffer;
  annotations?: Buffer;
}

/**
 * The fast path: the byte scanner reads the official layout without building the files' object
 * trees. `undefined` whenever a file is not well formed by the strict path's rules (a type, a
 * missing field, a duplicate or unknown id, …): the strict path then names the problem. The
 * header checks it shares with the strict path run last, where the strict path would reach them
 * with nothing else wrong, so they throw the same errors.
 */
async function loadScannedVqaSplit(
  options: LoadOptions,
  { questionsFile, annotationsFile }: VqaFiles,
  bytes: VqaFileBytes,
  questions: ScannedVqaQuestions,
  fingerprint: BackgroundFingerprint,
): Promise<LoadedVqaSplit | undefined> {
  const annotations = bytes.annotations && scanVqaAnnotations(bytes.annotations, VQA_ANSWERS_PER_QUESTION);
  if (annotations === undefined && bytes.annotations !== undefined) return undefined;

  const questionCount = questions.questionIds.length;
  if (hasRepeatedId(questions.questionIds)) return undefined;
  // questionOfRecord[r]: the index in the questions file of annotation record r.
  let questionOfRecord: Int32Array | undefined;
  if (annotations !== undefined) {
    questionOfRecord = annotationsToQuestions(questions, annotations);
    if (questionOfRecord === undefined) return undefined;
    checkSubtypesAgree(questions, annotations, questionsFile, annotationsFile!);
  }
  const dataSubtype = splitSubtype(options, questions, questionsFile);
  const imagePaths = imagePathsOf(options, questionsFile, dataSubtype);

  const examples: VqaExample[] = new Array(questionCount);
  for (let record = 0; record < questionCount; record++) {
    if (annotations === undefined) {
      examples[record] = unannotatedExample(imagePaths, questions.questionIds[record], questions.imageIds[record], questions.questions[record]);
      continue;
    }
    const questionId = annotations.questionIds[record];
    const index = questionOfRecord![record];
    examples[record] = annotatedExample(imagePaths, questionId, questions.imageIds[index], questions.questions[index], {
      answers: annotations.answers[record],
      answerType: annotations.answerTypes[record],
      questionType: annotations.questionTypes[record],
      multipleChoiceAnswer: annotations.multipleChoiceAnswers[record],
    });
  }
  return finishVqaSplit(options, { questionsFile, annotationsFile }, await fingerprint.finish(examples.map((example) => example.imageId)), examples, questions.dataType, dataSubtype);
}

/**
 * Where each annotation's question is in the questions file, when every question has exactly one
 * annotation with its image; otherwise `undefined`. Official files list both in the same order,
 * which is checked without a map from id to question.
 */
function annotationsToQuestions(questions: ScannedVqaQuestions, annotations: ScannedVqaAnnotations): Int32Array | undefined {
  const count = questions.questionIds.length;
  if (annotations.questionIds.length !== count) return undefined;
  const questionOfRecord = new Int32Array(count);
  let sameOrder = true;
  for (let record = 0; record < count && sameOrder; record++) sameOrder = annotations.questionIds[record] === questions.questionIds[record];
  if (sameOrder) {
    for (let record = 0; record < count; record++) {
      if (annotations.imageIds[record] !== questions.imageIds[record]) return undefined;
      questionOfRecord[record] = record;
    }
    return questionOfRecord;
  }
  const indexOfQuestion = new Map<number, number>();
  for (let index = 0; index < count; index++) indexOfQuestion.set(questions.questionIds[index], index);
  // Distinct annotation ids, each a question's with its image: with as many annotations as
  // questions, every question then has exactly one.
  const annotated = new Uint8Array(count);
  for (let record = 0; record < count; record++) {
    const index = indexOfQuestion.get(annotations.questionIds[record]);
    if (index === undefined || annotated[index] === 1 || annotations.imageIds[record] !== questions.imageIds[index]) return undefined;
    annotated[index] = 1;
    questionOfRecord[record] = index;
  }
  return questionOfRecord;
}

/** Whether an id appears twice: sorted, compared with its neighbour (a typed-array sort is cheaper than a set of 214k ids). */
function hasRepeatedId(ids: readonly number[]): boolean {
  // Ids in increasing order, as files generated by id usually list them, are distinct without a sort.
  let increasing = true;
  for (let index = 1; index < ids.length && increasing; index++) increasing = ids[index] > ids[index - 1];
  if (increasing) return false;
  const sorted = Float64Array.from(ids).sort();
  for (let index = 1; index < sorted.length; index++) if (sorted[index] === sorted[index - 1]) return true;
  return false;
}

/** JSON.parse and the record-by-record validation whose errors name the file, the record and the field. */
async function loadVqaSplitStrictly(
  options: LoadOptions,
  { questionsFile, annotationsFile }: VqaFiles,
  bytes?: VqaFileBytes,
  fingerprint?: BackgroundFingerprint,
): Promise<LoadedVqaSplit> {
  const questionsBytes = bytes?.questions ?? (await readBytes(questionsFile, 'questions'));
  const questionsJson = parseJson(questionsBytes, questionsFile);
  const questionsHeader = readHeader(questionsJson, questionsFile, 'questions');
  const questions = readQuestions(questionsHeader.records, questionsFile);

  let annotationsBytes: Buffer | undefined;
  let annotations: Map<number, AnnotationRecord> | undefined;
  let annotationOrder: number[] | undefined;
  if (annotationsFile !== undefined) {
    annotationsBytes = bytes?.annotations ?? (await readBytes(annotationsFile, 'annotations'));
    const annotationsHeader = readHeader(parseJson(annotationsBytes, annotationsFile), annotationsFile, 'annotations');
    checkSubtypesAgree(questionsHeader, annotationsHeader, questionsFile, annotationsFile);
    ({ annotations, order: annotationOrder } = readAnnotations(annotationsHeader.records, annotationsFile, questions));
  }

  const dataSubtype = splitSubtype(options, questionsHeader, questionsFile);
  const imagePaths = imagePathsOf(options, questionsFile, dataSubtype);
  const order = annotationOrder ?? [...questions.keys()];
  const examples: VqaExample[] = new Array(order.length);
  for (let i = 0; i < order.length; i++) {
    const questionId = order[i];
    const question = questions.get(questionId)!;
    const annotation = annotations?.get(questionId);
    examples[i] = annotation
      ? annotatedExample(imagePaths, questionId, question.imageId, question.question, annotation)
      : unannotatedExample(imagePaths, questionId, question.imageId, question.question);
  }
  const imageIds = examples.map((example) => example.imageId);
  const splitFingerprint = fingerprint !== undefined ? await fingerprint.finish(imageIds) : fingerprintSplit(fileContents({ questions: questionsBytes, annotations: annotationsBytes }), imageIds);
  return finishVqaSplit(options, { questionsFile, annotationsFile }, splitFingerprint, examples, questionsHeader.dataType, dataSubtype);
}

/** The files the fingerprint covers, in its order. */
function fileContents(bytes: VqaFileBytes): Buffer[] {
  return bytes.annotations !== undefined ? [bytes.questions, bytes.annotations] : [bytes.questions];
}

function checkSubtypesAgree(questionsHeader: ScannedVqaHeader, annotationsHeader: ScannedVqaHeader, questionsFile: string, annotationsFile: string): void {
  if (annotationsHeader.dataSubtype !== undefined && questionsHeader.dataSubtype !== undefined && annotationsHeader.dataSubtype !== questionsHeader.dataSubtype) {
    throw new InputError(
      `data_subtype "${annotationsHeader.dataSubtype}" does not match the questions file's "${questionsHeader.dataSubtype}" (${questionsFile})`,
      { file: annotationsFile, field: 'data_subtype' },
    );
  }
}

/** The split's data_subtype: the questions file's, or the split asked for when the file has none. */
function splitSubtype(options: LoadOptions, questionsHeader: ScannedVqaHeader, questionsFile: string): string {
  const dataSubtype = questionsHeader.dataSubtype ?? (options.split || undefined);
  if (dataSubtype === undefined) {
    throw new InputError('the questions file has no data_subtype and no split was given: cannot name the images', { file: questionsFile, field: 'data_subtype' });
  }
  if (options.split && questionsHeader.dataSubtype !== undefined && options.split !== questionsHeader.dataSubtype) {
    throw new InputError(`the file is split "${questionsHeader.dataSubtype}", not the split "${options.split}" that was asked for`, {
      file: questionsFile,
      field: 'data_subtype',
    });
  }
  return dataSubtype;
}

/** The image paths of a split: `<imagesDir>/<subtype>/COCO_<subtype>_` (normalised once), then the 12-digit id. */
function imagePathsOf(options: LoadOptions, questionsFile: string, dataSubtype: string): ImagePaths {
  const imagesDir = resolve(options.imagesDir ?? options.dataDir ?? dirname(questionsFile));
  // test-dev2015 is a subset of test2015 and has no images of its own.
  const imageSubtype = dataSubtype === 'test-dev2015' ? 'test2015' : dataSubtype;
  return new ImagePaths(join(imagesDir, imageSubtype, `COCO_${imageSubtype}_`));
}

/**
 * `<prefix><12-digit image id>.jpg`, made once for each run of questions on one image: the
 * official files list an image's questions one after the other (about five per COCO image), so
 * most examples share the string of the one before instead of building their own.
 */
class ImagePaths {
  private readonly prefix: string;
  private lastImageId = Number.NaN;
  private lastPath = '';
  constructor(prefix: string) {
    this.prefix = prefix;
  }
  of(imageId: number): string {
    if (imageId !== this.lastImageId) {
      this.lastImageId = imageId;
      this.lastPath = `${this.prefix}${String(imageId).padStart(12, '0')}.jpg`;
    }
    return this.lastPath;
  }
}

function annotatedExample(imagePaths: ImagePaths, questionId: number, imageId: number, question: string, annotation: AnnotationRecord): VqaExample {
  return {
    id: String(questionId), questionId, imageId, imagePath: imagePaths.of(imageId), question, answers: annotation.answers,
    answerType: annotation.answerType, questionType: annotation.questionType, multipleChoiceAnswer: annotation.multipleChoiceAnswer,
  };
}

function unannotatedExample(imagePaths: ImagePaths, questionId: number, imageId: number, question: string): VqaExample {
  return { id: String(questionId), questionId, imageId, imagePath: imagePaths.of(imageId), question, answers: [] };
}

function finishVqaSplit(
  options: LoadOptions,
  { questionsFile, annotationsFile }: VqaFiles,
  fingerprint: string,
  examples: VqaExample[],
  dataType: string | undefined,
  dataSubtype: string,
): LoadedVqaSplit {
  const files = annotationsFile !== undefined ? [questionsFile, annotationsFile] : [questionsFile];
  return {
    task: 'vqa',
    taskVersion: VQA_TASK_VERSION,
    split: options.splitLabel ?? dataSubtype,
    fingerprint,
    files,
    examples,
    info: { dataType: dataType ?? 'unknown', dataSubtype, annotated: annotationsFile !== undefined },
  };
}

async function locateVqaFiles(options: LoadOptions): Promise<VqaFiles> {
  const explicitQuestions = options.files?.questions;
  const explicitAnnotations = options.files?.annotations;
  if (explicitQuestions !== undefined) return { questionsFile: resolve(explicitQuestions), annotationsFile: explicitAnnotations && resolve(explicitAnnotations) };
  if (explicitAnnotations !== undefined) {
    throw new InputError('an annotations file was given without its questions file (the questions hold the question text)', { file: explicitAnnotations });
  }
  if (options.dataDir === undefined) throw new InputError('VQA needs a dataset folder (dataDir) or the questions file (files.questions)');
  if (!options.split) throw new InputError('VQA needs a split name (e.g. val2014) to find its files', { file: options.dataDir });
  const folders = [options.dataDir, join(options.dataDir, 'Questions'), join(options.dataDir, 'Annotations')];
  const questionPattern = new RegExp(`^v2_OpenEnded_(.+)_${escapeRegExp(options.split)}_questions\\.json$`);
  const found: { file: string; dataType: string }[] = [];
  const otherQuestionFiles: string[] = [];
  for (const folder of folders) {
    for (const name of await listFolder(folder)) {
      const match = questionPattern.exec(name);
      if (match) found.push({ file: join(folder, name), dataType: match[1] });
      else if (/^v2_OpenEnded_.+_questions\.json$/.test(name)) otherQuestionFiles.push(name);
    }
  }
  if (found.length === 0) {
    // Real names only: the one expected for COCO, and the questions files that are there.
    const there = otherQuestionFiles.length > 0 ? `questions files there: ${otherQuestionFiles.join(', ')}` : 'no v2_OpenEnded_*_questions.json files there';
    throw new InputError(
      `no questions file for split "${options.split}" in this folder, its Questions/ or Annotations/ (expected e.g. v2_OpenEnded_mscoco_${options.split}_questions.json); ${there}`,
      { file: options.dataDir },
    );
  }
  if (found.length > 1) {
    throw new InputError(`several questions files match split "${options.split}": ${found.map((entry) => basename(entry.file)).join(', ')}; give files.questions`, {
      file: options.dataDir,
    });
  }
  const { file: questionsFile, dataType } = found[0];
  const annotationsName = `v2_${dataType}_${options.split}_annotations.json`;
  for (const folder of folders) {
    const candidate = join(folder, annotationsName);
    if (await isFile(candidate)) return { questionsFile: resolve(questionsFile), annotationsFile: resolve(candidate) };
  }
  return { questionsFile: resolve(questionsFile) };
}

interface QuestionRecord {
  imageId: number;
  question: string;
}

interface AnnotationRecord {
  answers: string[];
  answerType: string;
  questionType: string;
  multipleChoiceAnswer: string;
}

interface Header {
  dataType?: string;
  dataSubtype?: string;
  records: unknown[];
}

function readHeader(json: unknown, file: string, kind: 'questions' | 'annotations'): Header {
  if (!isObject(json)) throw new InputError(`expected a JSON object with a "${kind}" array, got ${Array.isArray(json) ? 'an array' : typeof json}`, { file });
  const records = json[kind];
  if (!Array.isArray(records)) throw fieldError(file, undefined, kind, 'an array', records);
  const dataType = json.data_type;
  const dataSubtype = json.data_subtype;
  if (dataType !== undefined && typeof dataType !== 'string') throw fieldError(file, undefined, 'data_type', 'a string', dataType);
  if (dataSubtype !== undefined && typeof dataSubtype !== 'string') throw fieldError(file, undefined, 'data_subtype', 'a string', dataSubtype);
  return { dataType, dataSubtype, records };
}

function readQuestions(records: unknown[], file: string): Map<number, QuestionRecord> {
  const questions = new Map<number, QuestionRecord>();
  for (let index = 0; index < records.length; index++) {
    const record = records[index];
    if (!isObject(record)) throw fieldError(file, index, 'questions[]', 'an object', record);
    const questionId = record.question_id;
    if (!isId(questionId)) throw fieldError(file, index, 'question_id', 'a non-negative integer', questionId);
    if (questions.has(questionId)) throw new InputError('question_id appears twice', { file, record: questionId, field: 'question_id' });
    const imageId = record.image_id;
    if (!isId(imageId)) throw fieldError(file, questionId, 'image_id', 'a non-negative integer', imageId);
    const question = record.question;
    if (typeof question !== 'string') throw fieldError(file, questionId, 'question', 'a string', question);
    questions.set(questionId, { imageId, question });
  }
  return questions;
}

function readAnnotations(
  records: unknown[],
  file: string,
  questions: Map<number, QuestionRecord>,
): { annotations: Map<number, AnnotationRecord>; order: number[] } {
  const annotations = new Map<number, AnnotationRecord>();
  const order: number[] = [];
  const unknownIds: number[] = [];
  for (let index = 0; index < records.length; index++) {
    const record = records[index];
    if (!isObject(record)) throw fieldError(file, index, 'annotations[]', 'an object', record);
    const questionId = record.question_id;
    if (!isId(questionId)) throw fieldError(file, index, 'question_id', 'a non-negative integer', questionId);
    if (annotations.has(questionId)) throw new InputError('question_id appears twice', { file, record: questionId, field: 'question_id' });
    const question = questions.get(questionId);
    if (question === undefined) {
      unknownIds.push(questionId);
      continue;
    }
    if (record.image_id !== question.imageId) throw fieldError(file, questionId, 'image_id', `${question.imageId} (the questions file's image_id)`, record.image_id);
    const questionType = record.question_type;
    if (typeof questionType !== 'string') throw fieldError(file, questionId, 'question_type', 'a string', questionType);
    const answerType = record.answer_type;
    if (typeof answerType !== 'string') throw fieldError(file, questionId, 'answer_type', 'a string ("yes/no", "number" or "other")', answerType);
    const multipleChoiceAnswer = record.multiple_choice_answer;
    if (typeof multipleChoiceAnswer !== 'string') throw fieldError(file, questionId, 'multiple_choice_answer', 'a string', multipleChoiceAnswer);
    annotations.set(questionId, { answers: readAnswers(record.answers, file, questionId), answerType, questionType, multipleChoiceAnswer });
    order.push(questionId);
  }
  if (unknownIds.length > 0) {
    throw new InputError(`annotations for question ids that are not in the questions file: ${listSome(unknownIds)}`, { file, field: 'question_id' });
  }
  const unannotated: number[] = [];
  if (annotations.size !== questions.size) for (const questionId of questions.keys()) if (!annotations.has(questionId)) unannotated.push(questionId);
  if (unannotated.length > 0) {
    throw new InputError(`questions without an annotation: ${listSome(unannotated)}`, { file, field: 'question_id' });
  }
  return { annotations, order };
}

function readAnswers(value: unknown, file: string, questionId: number): string[] {
  if (!Array.isArray(value) || value.length !== VQA_ANSWERS_PER_QUESTION) {
    throw fieldError(file, questionId, 'answers', `an array of ${VQA_ANSWERS_PER_QUESTION} answer objects`, value);
  }
  const answers: string[] = new Array(VQA_ANSWERS_PER_QUESTION);
  for (let index = 0; index < VQA_ANSWERS_PER_QUESTION; index++) {
    const entry: unknown = value[index];
    if (!isObject(entry)) throw fieldError(file, questionId, `answers[${index}]`, 'an object {answer, answer_confidence, answer_id}', entry);
    const answer = entry.answer;
    if (typeof answer !== 'string') throw fieldError(file, questionId, `answers[${index}].answer`, 'a string', answer);
    // The evaluator leaves one answer out by comparing whole answer records, so the records must
    // be distinct; answer_id (1..10) is what makes them so. Ten ids: compared pairwise, no Set.
    const answerId = entry.answer_id;
    if (!Number.isInteger(answerId)) throw fieldError(file, questionId, `answers[${index}].answer_id`, 'an integer', answerId);
    for (let earlier = 0; earlier < index; earlier++) {
      if ((value[earlier] as Record<string, unknown>).answer_id === answerId) {
        throw fieldError(file, questionId, `answers[${index}].answer_id`, 'an id not used by another answer of this question', answerId);
      }
    }
    const confidence = entry.answer_confidence;
    if (confidence !== undefined && typeof confidence !== 'string') {
      throw fieldError(file, questionId, `answers[${index}].answer_confidence`, 'a string ("yes", "maybe" or "no")', confidence);
    }
    answers[index] = answer;
  }
  return answers;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
