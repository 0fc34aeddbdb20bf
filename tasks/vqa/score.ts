import type { LoadedSplit, ScoreOptions, ScoreReport } from '../../core/types.ts';
import { scoreVqaLike, type VqaLikeScoring } from '../vqa-like/score.ts';
import type { VqaExample } from './load.ts';
import { VQA_RESULT_KEY } from './predictions.ts';

/** Bumps when the accuracy definition changes; the legacy mode is a different metric, never compared with the current one. */
export const VQA_METRIC_VERSION = '1';

/** question_id → predicted answer, as in the EvalAI result file. */
export type VqaPredictions = ReadonlyMap<number, string>;

/** Where VQA v2's examples keep what the accuracy reads. */
export const VQA_SCORING: VqaLikeScoring<VqaExample, number> = {
  metric: { current: 'vqa-accuracy', legacy: 'vqa-accuracy-legacy' },
  metricVersion: VQA_METRIC_VERSION,
  key: VQA_RESULT_KEY,
  answersOf: (example) => example.answers,
  answerTypeOf: (example) => example.answerType!,
  questionTypeOf: (example) => example.questionType!,
  exampleIdOf: (example) => example.id,
  imageOf: (example) => String(example.imageId),
  testServer: 'EvalAI',
};

/**
 * Official VQA accuracy of predictions on an annotated split. `official` is the evaluator's
 * `accuracy` dictionary ({overall, perAnswerType, perQuestionType}, ×100, rounded to 2 decimals);
 * `perExample` holds the unrounded 100·accuracy of each question.
 */
export function scoreVqa(split: LoadedSplit<VqaExample>, predictions: VqaPredictions, options: ScoreOptions = {}): ScoreReport {
  return scoreVqaLike(split, predictions, options, VQA_SCORING);
}
