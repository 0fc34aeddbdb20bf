import type { GqaExample, GqaSceneGraph } from '../../tasks/gqa/index.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { answerClassificationAdapter, countedAnswerVocabulary, exactAnswerTargets, type AnswerTask } from './answer-classification.ts';

/**
 * GQA as answer classification. GQA is scored by exact match without normalisation, so its
 * vocabulary keeps the raw answers (normalising would turn "t-shirt" into "t shirt" and never
 * match), and each question trains on its one answer (score 1); predictions keyed by questionId.
 */
export const gqaAnswers: AnswerTask<GqaExample, string> = {
  task: 'gqa',
  predictionKeyOf: (example) => example.questionId,
  questionOf: (example) => example.question,
  imagePathOf: (example) => example.imagePath,
  imageIdOf: (example) => example.imageId,
  vocabulary: (train, minCount) => countedAnswerVocabulary(train.flatMap((example) => (example.answer === undefined ? [] : [example.answer])), minCount),
  targets: (examples, vocabulary) => exactAnswerTargets(examples, (example) => example.answer, vocabulary),
  graphOf: (example, graphsByImageId) => example.sceneGraph ?? graphsByImageId.get(example.imageId),
  async loadSceneGraphs(train) {
    // GQA examples carry their graphs.
    const graphs = new Map<string, GqaSceneGraph>();
    for (const example of train.examples) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
    return graphs;
  },
  controls: gqaControls,
};

export const gqaAdapter = answerClassificationAdapter(gqaAnswers);

/**
 * The floor beside a split's score: GQA is exact match, so accuracy per detailed type, and the
 * type's most frequent training answer (overall and per type), with the model's own per type.
 */
export function gqaControls(train: LoadedSplit<GqaExample>, split: LoadedSplit<GqaExample>, predictions: ReadonlyMap<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  const typeOf = (e: GqaExample) => e.types?.detailed ?? '';
  const counts = new Map<string, Map<string, number>>();
  for (const e of train.examples) {
    if (e.answer === undefined) continue;
    const byAnswer = counts.get(typeOf(e)) ?? new Map<string, number>();
    byAnswer.set(e.answer, (byAnswer.get(e.answer) ?? 0) + 1);
    counts.set(typeOf(e), byAnswer);
  }
  const priorOf = (type: string) => [...(counts.get(type) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
  const sums = new Map<string, { model: number; prior: number; n: number }>();
  for (const e of split.examples) {
    if (e.answer === undefined) continue;
    for (const type of ['overall', typeOf(e)]) {
      const entry = sums.get(type) ?? { model: 0, prior: 0, n: 0 };
      entry.model += predictions.get(e.questionId) === e.answer ? 1 : 0;
      entry.prior += priorOf(typeOf(e)) === e.answer ? 1 : 0;
      entry.n += 1;
      sums.set(type, entry);
    }
  }
  for (const [type, { model, prior, n }] of sums) {
    if (type === 'overall') out['prior/overall'] = (100 * prior) / n;
    else {
      out[`questionType/${type}`] = (100 * model) / n;
      out[`prior/questionType/${type}`] = (100 * prior) / n;
    }
  }
  return out;
}
