import type { VizwizExample } from '../../tasks/vizwiz/index.ts';
import { buildAnswerVocabulary } from '../../tasks/vqa/vocabulary.ts';
import { answerClassificationAdapter, softAnswerTargets, type AnswerTask } from './answer-classification.ts';

/**
 * VizWiz-VQA as answer classification, as VQA v2: a vocabulary of each question's most frequent
 * crowd answer (VizWiz has no multiple_choice_answer), normalised as the metric normalises, and
 * the official soft score of each of the ten answers as its target; predictions keyed by image.
 */
export const vizwizAnswers: AnswerTask<VizwizExample, string> = {
  task: 'vizwiz',
  predictionKeyOf: (example) => example.image,
  questionOf: (example) => example.question,
  imagePathOf: (example) => example.imagePath,
  imageIdOf: (example) => example.image,
  vocabulary: (train, minCount) => buildAnswerVocabulary(train.flatMap((example) => (example.answers.length ? [{ multipleChoiceAnswer: mostFrequent(example.answers) }] : [])), minCount),
  targets: (examples, vocabulary) => softAnswerTargets(examples, (example) => example.answers, vocabulary),
};

export const vizwizAdapter = answerClassificationAdapter(vizwizAnswers);

/** The answer most annotators gave; ties to the one given first. */
function mostFrequent(answers: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const answer of answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  let best = answers[0];
  for (const [answer, count] of counts) if (count > counts.get(best)!) best = answer;
  return best;
}
