import type { VizwizExample } from '../../tasks/vizwiz/index.ts';
import { mostFrequent } from '../../tasks/vqa/priors.ts';
import { buildAnswerVocabulary } from '../../tasks/vqa/vocabulary.ts';
import { answerClassificationAdapter, softAnswerTargets, type AnswerTask } from './answer-classification.ts';

/**
 * VizWiz-VQA as answer classification, as VQA v2: a vocabulary of each question's most frequent
 * crowd answer (ties to the one given first) (VizWiz has no multiple_choice_answer), normalised as the metric normalises, and
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
