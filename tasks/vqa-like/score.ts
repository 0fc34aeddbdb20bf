import { InputError } from '../../core/errors.ts';
import type { LoadedSplit, ScoreOptions, ScoreReport } from '../../core/types.ts';
import { computeVqaAccuracy, type VqaNormalizationMode, type VqaOfficialAccuracy } from '../vqa/accuracy.ts';
import { checkAnswerResults, type ResultKey } from './results.ts';

/**
 * The official VQA accuracy (normalisation, leave-one-annotator-out over the human answers) of a
 * VQA-like task, per answer type and, where the task has them, per question type. A VQA-like task
 * says where each part of its examples is; the scoring, its checks and its report are shared.
 */
export interface VqaLikeScoring<Example, Id extends number | string> {
  /** Metric family names in the report, current and legacy normalisation (e.g. "vqa-accuracy"). */
  metric: { current: string; legacy: string };
  metricVersion: string;
  /** The key of the task's result file, which is also each prediction's key. */
  key: ResultKey<Example, Id>;
  /** The human answers, raw; empty on a split without answers (a test split). */
  answersOf(example: Example): readonly string[];
  answerTypeOf(example: Example): string;
  /** Absent: the task has no question types, and the official report has no perQuestionType. */
  questionTypeOf?(example: Example): string;
  /** The per-example record's id (the leaderboard's) and its image, so intervals resample images. */
  exampleIdOf(example: Example): string;
  imageOf(example: Example): string;
  /** Where a split without answers can be scored instead, for the error (e.g. "EvalAI"). */
  testServer: string;
}

export type VqaLikeOfficial = Pick<VqaOfficialAccuracy, 'overall' | 'perAnswerType'> & Partial<Pick<VqaOfficialAccuracy, 'perQuestionType'>>;

/**
 * `official` is the evaluator's `accuracy` dictionary ({overall, perAnswerType[, perQuestionType]},
 * ×100, rounded to 2 decimals); `perExample` holds the unrounded 100·accuracy of each question.
 */
export function scoreVqaLike<Example, Id extends number | string>(split: LoadedSplit<Example>, predictions: ReadonlyMap<Id, string>, options: ScoreOptions, scoring: VqaLikeScoring<Example, Id>): ScoreReport {
  if (split.examples.length === 0) throw new InputError(`split "${split.split}" has no questions to score`, { file: split.files[0] });
  const unannotated = split.examples.find((example) => scoring.answersOf(example).length === 0);
  if (unannotated !== undefined) {
    throw new InputError(`split "${split.split}" has no answers (a test split?): submit its result file to ${scoring.testServer} instead`, {
      file: split.files[0],
      record: scoring.key.of(unannotated),
    });
  }
  checkAnswerResults(split, predictions, 'predictions', scoring.key);
  const mode: VqaNormalizationMode = options.legacyNormalization ? 'legacy' : 'current';
  const questions = split.examples.map((example) => ({
    questionId: scoring.key.of(example),
    answers: scoring.answersOf(example),
    answerType: scoring.answerTypeOf(example),
    questionType: scoring.questionTypeOf?.(example) ?? '',
  }));
  const { official: accuracy, perQuestion } = computeVqaAccuracy(questions, (id) => predictions.get(id)!, mode);
  const official: VqaLikeOfficial = scoring.questionTypeOf ? accuracy : { overall: accuracy.overall, perAnswerType: accuracy.perAnswerType };
  const metrics: Record<string, number> = { overall: official.overall };
  for (const [answerType, value] of Object.entries(official.perAnswerType)) metrics[`answerType/${answerType}`] = value;
  return {
    metric: mode === 'legacy' ? scoring.metric.legacy : scoring.metric.current,
    metricVersion: scoring.metricVersion,
    primary: 'overall',
    metrics,
    official,
    // 100·acc computed exactly as the evaluator does before its per-question round(…, 2).
    // The image, so the leaderboard resamples images (all their questions together), not questions.
    perExample: split.examples.map((example, index) => ({ id: scoring.exampleIdOf(example), score: 100 * perQuestion[index], image: scoring.imageOf(example) })),
  };
}
