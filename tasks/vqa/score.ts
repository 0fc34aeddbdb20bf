import { InputError } from '../../core/errors.ts';
import type { LoadedSplit, ScoreOptions, ScoreReport } from '../../core/types.ts';
import { computeVqaAccuracy, type VqaNormalizationMode, type VqaScoredQuestion } from './accuracy.ts';
import type { VqaExample } from './load.ts';
import { checkVqaPredictions } from './predictions.ts';

/** Bumps when the accuracy definition changes; the legacy mode is a different metric, never compared with the current one. */
export const VQA_METRIC_VERSION = '1';

/** question_id → predicted answer, as in the EvalAI result file. */
export type VqaPredictions = ReadonlyMap<number, string>;

/**
 * Official VQA accuracy of predictions on an annotated split. `official` is the evaluator's
 * `accuracy` dictionary ({overall, perAnswerType, perQuestionType}, ×100, rounded to 2 decimals);
 * `perExample` holds the unrounded 100·accuracy of each question.
 */
export function scoreVqa(split: LoadedSplit<VqaExample>, predictions: VqaPredictions, options: ScoreOptions = {}): ScoreReport {
  if (split.examples.length === 0) throw new InputError(`split "${split.split}" has no questions to score`, { file: split.files[0] });
  const unannotated = split.examples.find((example) => example.answers.length === 0);
  if (unannotated !== undefined) {
    throw new InputError(`split "${split.split}" has no answers (a test split?): submit its result file to EvalAI instead`, {
      file: split.files[0],
      record: unannotated.questionId,
    });
  }
  checkVqaPredictions(split, predictions, 'predictions');
  const mode: VqaNormalizationMode = options.legacyNormalization ? 'legacy' : 'current';
  const questions: VqaScoredQuestion[] = split.examples.map((example) => ({
    questionId: example.questionId,
    answers: example.answers,
    answerType: example.answerType!,
    questionType: example.questionType!,
  }));
  const { official, perQuestion } = computeVqaAccuracy(questions, (questionId) => predictions.get(questionId)!, mode);
  const metrics: Record<string, number> = { overall: official.overall };
  for (const [answerType, accuracy] of Object.entries(official.perAnswerType)) metrics[`answerType/${answerType}`] = accuracy;
  return {
    metric: mode === 'legacy' ? 'vqa-accuracy-legacy' : 'vqa-accuracy',
    metricVersion: VQA_METRIC_VERSION,
    primary: 'overall',
    metrics,
    official,
    // 100·acc computed exactly as the evaluator does before its per-question round(…, 2).
    // The image, so the leaderboard resamples images (all their questions together), not questions.
    perExample: split.examples.map((example, index) => ({ id: example.id, score: 100 * perQuestion[index], image: String(example.imageId) })),
  };
}
