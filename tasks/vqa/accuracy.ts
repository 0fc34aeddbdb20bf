import { cleanWhitespace, normalizeVqaAnswer, processPunctuation } from './normalize.ts';

/**
 * Which version of the official evaluator to reproduce.
 * - "current": GT-Vision-Lab/VQA since the 2021 fix. Answers and prediction are stripped of
 *   \n, \t and outer whitespace; only when the answers are not all identical are both the answers
 *   and the prediction normalised (punctuation, digits, articles, contractions).
 * - "legacy": the code before that fix, still used by LAVIS and others. The prediction is always
 *   stripped and fully normalised; the answers are never stripped, and get only the punctuation
 *   step, and only when they are not all identical.
 */
export type VqaNormalizationMode = 'current' | 'legacy';

/**
 * Python 3's `round(x, digits)` on a float: the exact binary value of x is rounded to the nearest
 * multiple of 10^-digits, exact ties go to the even neighbour (Python 2.7 sent them away from zero;
 * the two differ only for values such as 12.125 that are exactly halfway in binary).
 * `toFixed` is exact per ECMAScript but breaks ties upwards, so ties are detected and handled here.
 */
export function pythonRound(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const scale = 10 ** digits;
  // x*100 ends in exactly .5 iff 2^(digits+1)·x is an odd integer (x is a dyadic rational).
  const doubled = x * 2 ** (digits + 1);
  if (Number.isInteger(doubled) && Math.abs(doubled % 2) === 1) {
    const below = Math.floor(x * scale);
    const even = below % 2 === 0 ? below : below + 1;
    return even / scale;
  }
  return Number(x.toFixed(digits));
}

/** Holds the processed form of each distinct string: VQA answers repeat a great deal. */
export class AnswerProcessingCache {
  private readonly normalized = new Map<string, string>();
  private readonly punctuated = new Map<string, string>();
  private readonly cleaned = new Map<string, string>();
  normalize(text: string): string {
    let out = this.normalized.get(text);
    if (out === undefined) this.normalized.set(text, (out = normalizeVqaAnswer(text)));
    return out;
  }
  punctuation(text: string): string {
    let out = this.punctuated.get(text);
    if (out === undefined) this.punctuated.set(text, (out = processPunctuation(text)));
    return out;
  }
  clean(text: string): string {
    let out = this.cleaned.get(text);
    if (out === undefined) this.cleaned.set(text, (out = cleanWhitespace(text)));
    return out;
  }
}

function allIdentical(values: readonly string[]): boolean {
  for (let i = 1; i < values.length; i++) if (values[i] !== values[0]) return false;
  return true;
}

/**
 * The official per-question accuracy in [0, 1]: the mean over the answers i of
 * min(1, #{j ≠ i : answer_j == prediction} / 3), summed in answer order as the evaluator does,
 * so the floating-point result is the same to the last bit.
 */
export function vqaQuestionAccuracy(
  answers: readonly string[],
  prediction: string,
  mode: VqaNormalizationMode = 'current',
  cache: AnswerProcessingCache = new AnswerProcessingCache(),
): number {
  let processedAnswers: readonly string[];
  let processedPrediction: string;
  if (mode === 'current') {
    const cleanedAnswers = answers.map((answer) => cache.clean(answer));
    processedPrediction = cache.clean(prediction);
    if (allIdentical(cleanedAnswers)) {
      processedAnswers = cleanedAnswers;
    } else {
      processedAnswers = cleanedAnswers.map((answer) => cache.normalize(answer));
      processedPrediction = cache.normalize(processedPrediction);
    }
  } else {
    processedPrediction = cache.normalize(prediction);
    processedAnswers = allIdentical(answers) ? answers : answers.map((answer) => cache.punctuation(answer));
  }
  return leaveOneOutAccuracy(processedAnswers, processedPrediction);
}

function leaveOneOutAccuracy(answers: readonly string[], prediction: string): number {
  let matchesAll = 0;
  for (const answer of answers) if (answer === prediction) matchesAll++;
  let sum = 0;
  for (const answer of answers) {
    const matchesOthers = answer === prediction ? matchesAll - 1 : matchesAll;
    sum += Math.min(1, matchesOthers / 3);
  }
  return sum / answers.length;
}

/**
 * The soft target of one candidate answer for training (0, 0.3, 0.6, 0.9 or 1 with ten answers):
 * the official leave-one-out accuracy with the answers and the candidate always normalised, so a
 * vocabulary built from normalised answers lines up with the annotations.
 */
export function vqaSoftScore(answers: readonly string[], candidate: string, cache: AnswerProcessingCache = new AnswerProcessingCache()): number {
  return leaveOneOutAccuracy(answers.map((answer) => cache.normalize(answer)), cache.normalize(candidate));
}

/** One annotated question as the scorer needs it. */
export interface VqaScoredQuestion<Id extends number | string = number> {
  /** The key of its prediction: VQA's question id, or another VQA-like task's own (VizWiz: the image name). */
  questionId: Id;
  answers: readonly string[];
  answerType: string;
  questionType: string;
}

/** The evaluator's `accuracy` dictionary: ×100, rounded to 2 decimals, types in order of first appearance. */
export interface VqaOfficialAccuracy {
  overall: number;
  perAnswerType: Record<string, number>;
  perQuestionType: Record<string, number>;
}

export interface VqaAccuracyResult {
  official: VqaOfficialAccuracy;
  /** Unrounded accuracy in [0, 1] per question, in the order given. */
  perQuestion: Float64Array;
}

/**
 * Scores questions in the order given (the evaluator walks the annotation file in order; the
 * order changes sums in the last bits only, but bit for bit means the same order). Averages are
 * plain left-to-right sums, as Python's sum() computed them before 3.12, of unrounded values.
 */
export function computeVqaAccuracy<Id extends number | string = number>(
  questions: readonly VqaScoredQuestion<Id>[],
  predictionOf: (questionId: Id) => string,
  mode: VqaNormalizationMode = 'current',
): VqaAccuracyResult {
  const cache = new AnswerProcessingCache();
  const perQuestion = new Float64Array(questions.length);
  const byAnswerType = new Map<string, { sum: number; count: number }>();
  const byQuestionType = new Map<string, { sum: number; count: number }>();
  let total = 0;
  for (let i = 0; i < questions.length; i++) {
    const question = questions[i];
    const accuracy = vqaQuestionAccuracy(question.answers, predictionOf(question.questionId), mode, cache);
    perQuestion[i] = accuracy;
    total += accuracy;
    accumulate(byAnswerType, question.answerType, accuracy);
    accumulate(byQuestionType, question.questionType, accuracy);
  }
  return {
    official: {
      overall: pythonRound((100 * total) / questions.length, 2),
      perAnswerType: averages(byAnswerType),
      perQuestionType: averages(byQuestionType),
    },
    perQuestion,
  };
}

function accumulate(groups: Map<string, { sum: number; count: number }>, key: string, value: number): void {
  const group = groups.get(key);
  if (group) {
    group.sum += value;
    group.count++;
  } else {
    groups.set(key, { sum: value, count: 1 });
  }
}

function averages(groups: Map<string, { sum: number; count: number }>): Record<string, number> {
  // No prototype: a question type named "__proto__" or "constructor" stays an ordinary key.
  const out: Record<string, number> = Object.create(null);
  for (const [key, { sum, count }] of groups) out[key] = pythonRound((100 * sum) / count, 2);
  return out;
}
