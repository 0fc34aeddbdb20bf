import { writeFileAtomically } from '../../core/atomic-write.ts';
import { InputError, describeValue, listSome } from '../../core/errors.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { isObject, parseJson, readBytes } from '../split-files.ts';

/**
 * Result files of VQA-like tasks, `[{"<key>": id, "answer": str}]`, keyed by whatever id the
 * task's official format uses: VQA v2's integer `question_id`, VizWiz's `image` name. Reading,
 * checking and writing live here once, so a new VQA-like dataset names its key instead of copying
 * the checks.
 */
export interface ResultKey<Example, Id extends number | string> {
  /** The record's key field in the official format, e.g. "question_id", "image". */
  field: string;
  /** The key's JSON type: an integer, or a string. */
  type: Id extends number ? 'integer' : 'string';
  /** What an error calls the ids in the plural, e.g. "question ids", "images". */
  noun: string;
  /** The example's id under this key. */
  of(example: Example): Id;
}

/** How many bad records an error lists before it only counts them. */
const SHOWN = 5;

/** Reads a result file through JSON.parse with record-by-record checks, and checks it covers the split exactly. */
export async function readAnswerResults<Example, Id extends number | string>(split: LoadedSplit<Example>, file: string, key: ResultKey<Example, Id>): Promise<Map<Id, string>> {
  const predictions = parseAnswerResults(await readBytes(file, 'predictions'), file, key);
  checkAnswerResults(split, predictions, file, key);
  return predictions;
}

/** JSON.parse and record-by-record checks whose errors list the bad records. */
export function parseAnswerResults<Id extends number | string>(bytes: Buffer, file: string, key: ResultKey<never, Id>): Map<Id, string> {
  const json = parseJson(bytes, file);
  const typeName = key.type === 'integer' ? 'int' : 'str';
  if (!Array.isArray(json)) throw new InputError(`expected a JSON array of {"${key.field}": ${typeName}, "answer": str}, got ${describeValue(json)}`, { file });
  const predictions = new Map<Id, string>();
  const badRecords: string[] = [];
  const duplicates: Id[] = [];
  json.forEach((record, index) => {
    if (!isObject(record)) return void badRecords.push(`[${index}] is ${describeValue(record)}, not an object`);
    const id = record[key.field];
    if (key.type === 'integer' ? !Number.isSafeInteger(id) : typeof id !== 'string') return void badRecords.push(`[${index}].${key.field} is ${describeValue(id)}, not ${key.type === 'integer' ? 'an integer' : 'a string'}`);
    if (typeof record.answer !== 'string') return void badRecords.push(`[${index}] (${key.field} ${id}).answer is ${describeValue(record.answer)}, not a string`);
    if (predictions.has(id as Id)) duplicates.push(id as Id);
    else predictions.set(id as Id, record.answer);
  });
  if (badRecords.length > 0) {
    const head = badRecords.slice(0, SHOWN).join('; ');
    throw new InputError(`${badRecords.length} malformed result record${badRecords.length === 1 ? '' : 's'}${badRecords.length > SHOWN ? ` (first ${SHOWN})` : ''}: ${head}`, { file });
  }
  if (duplicates.length > 0) throw new InputError(`${key.noun} predicted more than once: ${listSome(duplicates, SHOWN)}`, { file, field: key.field });
  return predictions;
}

/** Refuses predictions whose ids are not exactly the split's. */
export function checkAnswerResults<Example, Id extends number | string>(split: LoadedSplit<Example>, predictions: ReadonlyMap<Id, string>, file: string, key: ResultKey<Example, Id>): void {
  // The common case, checked without building a set of the split's ids (it runs before every
  // scoring, on 214k ids for VQA's val2014). Result files list the questions in the split's order,
  // and a map's keys are distinct and iterate in insertion order: the same ids in the same order
  // are exactly the split's ids. Otherwise: every id answered, and as many answers as distinct ids.
  if (inSplitOrder(split.examples, predictions, key)) return;
  let answered = true;
  for (const example of split.examples) {
    if (!predictions.has(key.of(example))) {
      answered = false;
      break;
    }
  }
  if (answered && predictions.size === countDistinct(split.examples, key)) return;
  const missing: Id[] = [];
  for (const example of split.examples) if (!predictions.has(key.of(example))) missing.push(key.of(example));
  const known = new Set(split.examples.map((example) => key.of(example)));
  const extra: Id[] = [];
  for (const id of predictions.keys()) if (!known.has(id)) extra.push(id);
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`${listSome(missing, SHOWN)} ${key.noun} of split "${split.split}" have no answer`);
  if (extra.length > 0) problems.push(`${listSome(extra, SHOWN)} ${key.noun} are not in split "${split.split}"`);
  if (problems.length > 0) throw new InputError(`${problems.join('; ')}; nothing is scored on a subset`, { file, field: key.field });
}

/** Whether the predictions' ids, in insertion order, are the examples' ids one for one. */
function inSplitOrder<Example, Id extends number | string>(examples: readonly Example[], predictions: ReadonlyMap<Id, string>, key: ResultKey<Example, Id>): boolean {
  if (predictions.size !== examples.length) return false;
  let index = 0;
  for (const id of predictions.keys()) {
    if (id !== key.of(examples[index])) return false;
    index++;
  }
  return true;
}

/** How many distinct ids the examples have: integers sorted and counted by neighbours (a typed-array sort is cheaper than a set); strings through a set. */
function countDistinct<Example, Id extends number | string>(examples: readonly Example[], key: ResultKey<Example, Id>): number {
  if (key.type === 'string') return new Set(examples.map((example) => key.of(example))).size;
  const ids = new Float64Array(examples.length);
  for (let index = 0; index < examples.length; index++) ids[index] = key.of(examples[index]) as number;
  ids.sort();
  let distinct = ids.length > 0 ? 1 : 0;
  // Equal as a Set keys them: 0 and -0 are one id, and so are NaNs (which sort last).
  for (let index = 1; index < ids.length; index++) if (ids[index] !== ids[index - 1] && !(Number.isNaN(ids[index]) && Number.isNaN(ids[index - 1]))) distinct++;
  return distinct;
}

/** Writes the result file in the split's order, after checking it covers the split exactly; atomic. */
export async function writeAnswerResults<Example, Id extends number | string>(split: LoadedSplit<Example>, predictions: ReadonlyMap<Id, string>, file: string, key: ResultKey<Example, Id>): Promise<void> {
  checkAnswerResults(split, predictions, file, key);
  const records = split.examples.map((example) => ({ [key.field]: key.of(example), answer: predictions.get(key.of(example))! }));
  await writeFileAtomically(file, JSON.stringify(records));
}
