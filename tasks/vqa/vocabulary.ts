import { AnswerProcessingCache } from './accuracy.ts';

/**
 * The answer vocabulary of a VQA classifier: the normalised `multiple_choice_answer`s seen at least
 * `minCount` times (9 over train+val gives the usual 3,129 answers of VQA v2), most frequent first,
 * ties in code-unit string order, so the same examples always give the same class indexes.
 * Examples without a multiple_choice_answer (test splits) are skipped.
 */
export function buildAnswerVocabulary(examples: Iterable<{ multipleChoiceAnswer?: string }>, minCount = 9): string[] {
  if (!Number.isInteger(minCount) || minCount < 1) throw new RangeError(`minCount must be a positive integer, got ${minCount}`);
  const cache = new AnswerProcessingCache();
  const counts = new Map<string, number>();
  for (const example of examples) {
    if (example.multipleChoiceAnswer === undefined) continue;
    const answer = cache.normalize(example.multipleChoiceAnswer);
    counts.set(answer, (counts.get(answer) ?? 0) + 1);
  }
  return [...counts]
    .filter(([, count]) => count >= minCount)
    .sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : a > b ? 1 : 0))
    .map(([answer]) => answer);
}
