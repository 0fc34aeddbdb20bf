import { writeFileAtomically } from '../../core/atomic-write.ts';
import { InputError, describeValue, listSome } from '../../core/errors.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { isObject, parseJson, readBytes } from '../split-files.ts';
import { scanVqaResults } from './official-layout-scan.ts';

/** How many bad records an error lists before it only counts them. */
const SHOWN = 5;

/**
 * Reads an EvalAI VQA result file, `[{"question_id": int, "answer": str}]`, and checks it covers
 * the split's questions exactly: every record well typed, no id twice, none missing, none extra
 * (the official loader refuses a result file whose ids are not the annotation's ids).
 */
export async function readVqaPredictions(split: LoadedSplit<{ questionId: number }>, file: string): Promise<Map<number, string>> {
  const bytes = await readBytes(file, 'predictions');
  const predictions = scannedPredictions(bytes) ?? parsePredictions(bytes, file);
  checkVqaPredictions(split, predictions, file);
  return predictions;
}

/** The strict path alone (JSON.parse, no byte scanner), for the tests and the benchmark that compare the two. */
export async function readVqaPredictionsWithJsonParse(split: LoadedSplit<{ questionId: number }>, file: string): Promise<Map<number, string>> {
  const predictions = parsePredictions(await readBytes(file, 'predictions'), file);
  checkVqaPredictions(split, predictions, file);
  return predictions;
}

/** The fast path (official-layout-scan.ts): `undefined` for anything the strict path must explain, duplicate ids included. */
function scannedPredictions(bytes: Buffer): Map<number, string> | undefined {
  const results = scanVqaResults(bytes);
  if (results === undefined) return undefined;
  const predictions = new Map<number, string>();
  for (let index = 0; index < results.questionIds.length; index++) predictions.set(results.questionIds[index], results.answers[index]);
  return predictions.size === results.questionIds.length ? predictions : undefined;
}

/** JSON.parse and record-by-record checks whose errors list the bad records. */
function parsePredictions(bytes: Buffer, file: string): Map<number, string> {
  const json = parseJson(bytes, file);
  if (!Array.isArray(json)) throw new InputError(`expected a JSON array of {"question_id": int, "answer": str}, got ${describeValue(json)}`, { file });
  const predictions = new Map<number, string>();
  const badRecords: string[] = [];
  const duplicates: number[] = [];
  json.forEach((record, index) => {
    if (!isObject(record)) return void badRecords.push(`[${index}] is ${describeValue(record)}, not an object`);
    const questionId = record.question_id;
    if (!Number.isSafeInteger(questionId)) return void badRecords.push(`[${index}].question_id is ${describeValue(questionId)}, not an integer`);
    if (typeof record.answer !== 'string') return void badRecords.push(`[${index}] (question_id ${questionId}).answer is ${describeValue(record.answer)}, not a string`);
    if (predictions.has(questionId as number)) duplicates.push(questionId as number);
    else predictions.set(questionId as number, record.answer);
  });
  if (badRecords.length > 0) {
    const head = badRecords.slice(0, SHOWN).join('; ');
    throw new InputError(`${badRecords.length} malformed result record${badRecords.length === 1 ? '' : 's'}${badRecords.length > SHOWN ? ` (first ${SHOWN})` : ''}: ${head}`, { file });
  }
  if (duplicates.length > 0) throw new InputError(`question ids predicted more than once: ${listSome(duplicates, SHOWN)}`, { file, field: 'question_id' });
  return predictions;
}

/** Refuses predictions whose question ids are not exactly the split's. */
export function checkVqaPredictions(split: LoadedSplit<{ questionId: number }>, predictions: ReadonlyMap<number, string>, file: string): void {
  // The common case, checked without building a set of the split's ids (it runs before every
  // scoring, on 214k ids for val2014). Result files list the questions in the split's order, and
  // a map's keys are distinct and iterate in insertion order: the same ids in the same order are
  // exactly the split's ids. Otherwise: every id answered, and as many answers as distinct ids.
  if (inSplitOrder(split.examples, predictions)) return;
  let answered = true;
  for (const example of split.examples) {
    if (!predictions.has(example.questionId)) {
      answered = false;
      break;
    }
  }
  if (answered && predictions.size === countDistinct(split.examples)) return;
  const missing: number[] = [];
  for (const example of split.examples) if (!predictions.has(example.questionId)) missing.push(example.questionId);
  const known = new Set(split.examples.map((example) => example.questionId));
  const extra: number[] = [];
  for (const questionId of predictions.keys()) if (!known.has(questionId)) extra.push(questionId);
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`${listSome(missing, SHOWN)} question ids of split "${split.split}" have no answer`);
  if (extra.length > 0) problems.push(`${listSome(extra, SHOWN)} question ids are not in split "${split.split}"`);
  if (problems.length > 0) throw new InputError(`${problems.join('; ')}; nothing is scored on a subset`, { file, field: 'question_id' });
}

/** Whether the predictions' ids, in insertion order, are the examples' ids one for one. */
function inSplitOrder(examples: readonly { questionId: number }[], predictions: ReadonlyMap<number, string>): boolean {
  if (predictions.size !== examples.length) return false;
  let index = 0;
  for (const questionId of predictions.keys()) {
    if (questionId !== examples[index].questionId) return false;
    index++;
  }
  return true;
}

/** How many distinct question ids the examples have: sorted numbers, counted by neighbours (a typed-array sort is cheaper than a set). */
function countDistinct(examples: readonly { questionId: number }[]): number {
  const ids = new Float64Array(examples.length);
  for (let index = 0; index < examples.length; index++) ids[index] = examples[index].questionId;
  ids.sort();
  let distinct = ids.length > 0 ? 1 : 0;
  // Equal as a Set keys them: 0 and -0 are one id, and so are NaNs (which sort last).
  for (let index = 1; index < ids.length; index++) if (ids[index] !== ids[index - 1] && !(Number.isNaN(ids[index]) && Number.isNaN(ids[index - 1]))) distinct++;
  return distinct;
}

/** Writes the EvalAI result file in the split's order, after checking it covers the split exactly; atomic. */
export async function writeVqaResults(split: LoadedSplit<{ questionId: number }>, predictions: ReadonlyMap<number, string>, file: string): Promise<void> {
  checkVqaPredictions(split, predictions, file);
  const records = split.examples.map((example) => ({ question_id: example.questionId, answer: predictions.get(example.questionId)! }));
  await writeFileAtomically(file, JSON.stringify(records));
}

