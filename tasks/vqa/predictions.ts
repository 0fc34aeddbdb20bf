import type { LoadedSplit } from '../../core/types.ts';
import { readBytes } from '../split-files.ts';
import { checkAnswerResults, parseAnswerResults, writeAnswerResults, type ResultKey } from '../vqa-like/results.ts';
import { scanVqaResults } from './official-layout-scan.ts';

/** VQA v2's result files key each answer by the integer question_id. */
export const VQA_RESULT_KEY: ResultKey<{ questionId: number }, number> = { field: 'question_id', type: 'integer', noun: 'question ids', of: (example) => example.questionId };

/**
 * Reads an EvalAI VQA result file, `[{"question_id": int, "answer": str}]`, and checks it covers
 * the split's questions exactly: every record well typed, no id twice, none missing, none extra
 * (the official loader refuses a result file whose ids are not the annotation's ids).
 */
export async function readVqaPredictions(split: LoadedSplit<{ questionId: number }>, file: string): Promise<Map<number, string>> {
  const bytes = await readBytes(file, 'predictions');
  const predictions = scannedPredictions(bytes) ?? parseAnswerResults(bytes, file, VQA_RESULT_KEY);
  checkVqaPredictions(split, predictions, file);
  return predictions;
}

/** The strict path alone (JSON.parse, no byte scanner), for the tests and the benchmark that compare the two. */
export async function readVqaPredictionsWithJsonParse(split: LoadedSplit<{ questionId: number }>, file: string): Promise<Map<number, string>> {
  const predictions = parseAnswerResults(await readBytes(file, 'predictions'), file, VQA_RESULT_KEY);
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

/** Refuses predictions whose question ids are not exactly the split's. */
export function checkVqaPredictions(split: LoadedSplit<{ questionId: number }>, predictions: ReadonlyMap<number, string>, file: string): void {
  checkAnswerResults(split, predictions, file, VQA_RESULT_KEY);
}

/** Writes the EvalAI result file in the split's order, after checking it covers the split exactly; atomic. */
export async function writeVqaResults(split: LoadedSplit<{ questionId: number }>, predictions: ReadonlyMap<number, string>, file: string): Promise<void> {
  await writeAnswerResults(split, predictions, file, VQA_RESULT_KEY);
}
