import type { VqaExample } from './load.ts';

/**
 * The floor every VQA model is judged against: each question answered with the most frequent
 * `multiple_choice_answer` of its question type in the training split (the "per Q-type prior"
 * of Antol et al. 2015, VQA, table 2). It reads no image, so a model at or below it on a split
 * has learned nothing from the pictures there.
 */
export interface QuestionTypePrior {
  /** question type → its most frequent training answer. */
  byType: ReadonlyMap<string, string>;
  /** For a question type the training split never asked: the most frequent answer of all. */
  fallback: string;
}

/** The most frequent of `answers`; ties go to the answer seen first, so the prior is deterministic. */
export function mostFrequent(answers: Iterable<string>): string {
  const counts = new Map<string, number>();
  for (const answer of answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  let best = '';
  let bestCount = -1;
  for (const [answer, count] of counts) if (count > bestCount) [best, bestCount] = [answer, count];
  return best;
}

const trainingAnswer = (example: VqaExample) => example.multipleChoiceAnswer ?? example.answers[0];

export function questionTypePrior(train: readonly VqaExample[]): QuestionTypePrior {
  const answersByType = new Map<string, string[]>();
  for (const example of train) {
    const type = example.questionType ?? '';
    const answers = answersByType.get(type) ?? [];
    answers.push(trainingAnswer(example));
    answersByType.set(type, answers);
  }
  return { byType: new Map([...answersByType].map(([type, answers]) => [type, mostFrequent(answers)])), fallback: mostFrequent(train.map(trainingAnswer)) };
}

/** The prior's answer to every question of a split, keyed by question id (the official result format's key). */
export function priorPredictions(examples: readonly VqaExample[], prior: QuestionTypePrior): Map<number, string> {
  return new Map(examples.map((example) => [example.questionId, prior.byType.get(example.questionType ?? '') ?? prior.fallback]));
}
