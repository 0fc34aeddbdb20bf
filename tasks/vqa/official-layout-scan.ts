/**
 * The fast path of the VQA loaders: reads the official VQA v2 files (questions, annotations,
 * EvalAI results) straight from their bytes, keeping only the fields the loader keeps.
 *
 * Each function returns the file's content only when every record is well formed by the strict
 * path's rules (load.ts, predictions.ts); otherwise `undefined`, and the caller runs the strict
 * path, which then reports the problem by file, record and field. So these functions only
 * decide "handled or not" and never explain why: the strict path is the one place that does.
 * Cross-record checks (duplicate ids, questions without annotations, …) stay with the caller.
 */
import { InternedStrings, JsonByteScanner, JsonKeys, JsonObjectMembers, NOT_HANDLED } from './json-byte-scanner.ts';

/** The header fields the loader reads from a questions or annotations file. */
export interface ScannedVqaHeader {
  dataType?: string;
  dataSubtype?: string;
}

/** A questions file, one entry per record in file order. */
export interface ScannedVqaQuestions extends ScannedVqaHeader {
  questionIds: number[];
  imageIds: number[];
  questions: string[];
}

/** An annotations file, one entry per record in file order; `answers[i]` holds record i's 10 answer strings. */
export interface ScannedVqaAnnotations extends ScannedVqaHeader {
  questionIds: number[];
  imageIds: number[];
  questionTypes: string[];
  answerTypes: string[];
  multipleChoiceAnswers: string[];
  answers: string[][];
}

/** An EvalAI result file, in file order. */
export interface ScannedVqaResults {
  questionIds: number[];
  answers: string[];
}

const HEADER_DATA_TYPE = 0;
const HEADER_DATA_SUBTYPE = 1;
const HEADER_RECORDS = 2;

const QUESTION_KEYS = new JsonKeys(['question_id', 'image_id', 'question']);
const ANNOTATION_KEYS = new JsonKeys(['question_id', 'image_id', 'question_type', 'answer_type', 'multiple_choice_answer', 'answers']);
const ANSWER_KEYS = new JsonKeys(['answer', 'answer_id', 'answer_confidence']);
const RESULT_KEYS = new JsonKeys(['question_id', 'answer']);

/** Runs a scan; a file it does not handle (or nests too deeply for it to follow) gives `undefined`. */
function scanOrUndefined<T>(scan: () => T): T | undefined {
  try {
    return scan();
  } catch (error) {
    if (error === NOT_HANDLED || error instanceof RangeError) return undefined;
    throw error;
  }
}

/**
 * `{..., "<recordsKey>": [...], ...}` in any key order: the header's data_type and data_subtype
 * (strings when present) and the records array, which `readRecord` reads one record at a time.
 * A key of interest seen twice is left to the strict path (JSON.parse keeps the last one).
 */
function scanHeaderAndRecords(bytes: Buffer, recordsKey: string, readRecord: (scanner: JsonByteScanner) => void): ScannedVqaHeader {
  const members = new JsonObjectMembers(new JsonKeys(['data_type', 'data_subtype', recordsKey]));
  const scanner = new JsonByteScanner(bytes);
  const header: ScannedVqaHeader = {};
  for (let more = members.open(scanner); more; more = scanner.nextMember()) {
    const key = members.readKey(scanner);
    if (key < 0) continue;
    if (key === HEADER_DATA_TYPE) header.dataType = scanner.readString();
    else if (key === HEADER_DATA_SUBTYPE) header.dataSubtype = scanner.readString();
    else {
      scanner.expect(0x5b);
      for (let element = scanner.firstElement(); element; element = scanner.nextElement()) readRecord(scanner);
    }
  }
  scanner.expectEnd();
  if (!members.saw(HEADER_RECORDS, 1)) throw NOT_HANDLED;
  return header;
}

/** `{"questions": [{"image_id", "question", "question_id"}, ...], ...}`. */
export function scanVqaQuestions(bytes: Buffer): ScannedVqaQuestions | undefined {
  return scanOrUndefined(() => {
    const questionIds: number[] = [];
    const imageIds: number[] = [];
    const questions: string[] = [];
    const members = new JsonObjectMembers(QUESTION_KEYS);
    const header = scanHeaderAndRecords(bytes, 'questions', (scanner) => {
      let questionId = 0;
      let imageId = 0;
      let question = '';
      for (let more = members.open(scanner); more; more = scanner.nextMember()) {
        const key = members.readKey(scanner);
        if (key < 0) continue;
        if (key === 0) questionId = scanner.readPlainNonNegativeInteger();
        else if (key === 1) imageId = scanner.readPlainNonNegativeInteger();
        else question = scanner.readString();
      }
      if (!members.sawAll()) throw NOT_HANDLED;
      questionIds.push(questionId);
      imageIds.push(imageId);
      questions.push(question);
    });
    return { ...header, questionIds, imageIds, questions };
  });
}

/**
 * `{"annotations": [{"question_id", "image_id", "question_type", "answer_type",
 * "multiple_choice_answer", "answers": [10 × {"answer", "answer_confidence", "answer_id"}]}, ...], ...}`.
 * The answer ids of one question must be distinct integers (the leave-one-out compares whole
 * answer records); answer_confidence, when present, a string.
 */
export function scanVqaAnnotations(bytes: Buffer, answersPerQuestion: number): ScannedVqaAnnotations | undefined {
  return scanOrUndefined(() => {
    const strings = new InternedStrings();
    const questionIds: number[] = [];
    const imageIds: number[] = [];
    const questionTypes: string[] = [];
    const answerTypes: string[] = [];
    const multipleChoiceAnswers: string[] = [];
    const answersOfRecords: string[][] = [];
    const answerIds: number[] = new Array(answersPerQuestion).fill(0);
    const members = new JsonObjectMembers(ANNOTATION_KEYS);
    const answerMembers = new JsonObjectMembers(ANSWER_KEYS);
    const header = scanHeaderAndRecords(bytes, 'annotations', (scanner) => {
      let questionId = 0;
      let imageId = 0;
      let questionType = '';
      let answerType = '';
      let multipleChoiceAnswer = '';
      let answers: string[] = [];
      for (let more = members.open(scanner); more; more = scanner.nextMember()) {
        const key = members.readKey(scanner);
        if (key < 0) continue;
        switch (key) {
          case 0: questionId = scanner.readPlainNonNegativeInteger(); break;
          case 1: imageId = scanner.readPlainNonNegativeInteger(); break;
          case 2: questionType = scanner.readInternedString(strings); break;
          case 3: answerType = scanner.readInternedString(strings); break;
          case 4: multipleChoiceAnswer = scanner.readInternedString(strings); break;
          default: answers = readAnswers(scanner, answerMembers, strings, answersPerQuestion, answerIds);
        }
      }
      if (!members.sawAll()) throw NOT_HANDLED;
      questionIds.push(questionId);
      imageIds.push(imageId);
      questionTypes.push(questionType);
      answerTypes.push(answerType);
      multipleChoiceAnswers.push(multipleChoiceAnswer);
      answersOfRecords.push(answers);
    });
    return { ...header, questionIds, imageIds, questionTypes, answerTypes, multipleChoiceAnswers, answers: answersOfRecords };
  });
}

function readAnswers(scanner: JsonByteScanner, members: JsonObjectMembers, strings: InternedStrings, count: number, answerIds: number[]): string[] {
  const answers: string[] = new Array(count);
  let index = 0;
  scanner.expect(0x5b);
  for (let element = scanner.firstElement(); element; element = scanner.nextElement()) {
    if (index === count) throw NOT_HANDLED;
    let answer = '';
    let answerId = 0;
    for (let more = members.open(scanner); more; more = scanner.nextMember()) {
      const key = members.readKey(scanner);
      if (key < 0) continue;
      if (key === 0) answer = scanner.readInternedString(strings);
      else if (key === 1) answerId = scanner.readPlainNonNegativeInteger();
      else scanner.skipString();
    }
    // answer and answer_id are required; answer_confidence is optional.
    if (!members.saw(0, 2)) throw NOT_HANDLED;
    for (let earlier = 0; earlier < index; earlier++) if (answerIds[earlier] === answerId) throw NOT_HANDLED;
    answerIds[index] = answerId;
    answers[index++] = answer;
  }
  if (index !== count) throw NOT_HANDLED;
  return answers;
}

/** `[{"question_id", "answer"}, ...]`. */
export function scanVqaResults(bytes: Buffer): ScannedVqaResults | undefined {
  return scanOrUndefined(() => {
    const strings = new InternedStrings();
    const scanner = new JsonByteScanner(bytes);
    const questionIds: number[] = [];
    const answers: string[] = [];
    const members = new JsonObjectMembers(RESULT_KEYS);
    scanner.expect(0x5b);
    for (let element = scanner.firstElement(); element; element = scanner.nextElement()) {
      let questionId = 0;
      let answer = '';
      for (let more = members.open(scanner); more; more = scanner.nextMember()) {
        const key = members.readKey(scanner);
        if (key < 0) continue;
        if (key === 0) questionId = scanner.readPlainNonNegativeInteger();
        else answer = scanner.readInternedString(strings);
      }
      if (!members.sawAll()) throw NOT_HANDLED;
      questionIds.push(questionId);
      answers.push(answer);
    }
    scanner.expectEnd();
    return { questionIds, answers };
  });
}
