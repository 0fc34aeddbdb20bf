import { join } from 'node:path';
import { loadGqaSplit, type GqaSceneGraph } from '../../tasks/gqa/index.ts';
import { synthPaths } from '../../tasks/synth/index.ts';
import type { VqaExample } from '../../tasks/vqa/load.ts';
import { priorPredictions, questionTypePrior } from '../../tasks/vqa/priors.ts';
import { scoreVqa } from '../../tasks/vqa/score.ts';
import { buildAnswerVocabulary } from '../../tasks/vqa/vocabulary.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { answerClassificationAdapter, graphByImageFile, softAnswerTargets, type AnswerTask } from './answer-classification.ts';

/**
 * VQA v2 as answer classification: the official vocabulary rule (normalised
 * multiple_choice_answer, min count), trained on the official soft scores of each question's ten
 * answers; predictions keyed by question_id, as the EvalAI result file.
 */
export const vqaAnswers: AnswerTask<VqaExample, number> = {
  task: 'vqa',
  predictionKeyOf: (example) => example.questionId,
  questionOf: (example) => example.question,
  imagePathOf: (example) => example.imagePath,
  imageIdOf: (example) => String(example.imageId),
  vocabulary: (train, minCount) => buildAnswerVocabulary(train, minCount),
  targets: (examples, vocabulary) => softAnswerTargets(examples, (example) => example.answers, vocabulary),
  // SynthScenes VQA finds its image's GQA scene graph by image file name.
  graphOf: (example, graphsByImageId) => graphByImageFile(example.imagePath, graphsByImageId),
  async loadSceneGraphs(_train, trainOptions, synthRoot) {
    // SynthScenes VQA reads the GQA scene-graph file of the same split; real VQA v2 has none.
    const graphs = new Map<string, GqaSceneGraph>();
    if (!synthRoot) return graphs;
    const subtype = trainOptions.split;
    const gqa = await loadGqaSplit({ split: subtype, files: { questions: synthPaths.gqaQuestions(synthRoot, subtype), sceneGraphs: synthPaths.gqaSceneGraphs(synthRoot, subtype) }, imagesDir: join(synthPaths.imagesRoot(synthRoot), subtype) });
    for (const example of gqa.examples) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
    return graphs;
  },
  controls: vqaControls,
};

export const vqaAdapter = answerClassificationAdapter(vqaAnswers);

/**
 * The floor beside a split's score (metrics.json's `controls`): the per-question-type prior of
 * the training split, overall and per question type, and the model's own score per type, so
 * "beats the prior" is read off one file.
 */
export function vqaControls(train: LoadedSplit<VqaExample>, split: LoadedSplit<VqaExample>, predictions: ReadonlyMap<number, string>): Record<string, number> {
  const out: Record<string, number> = {};
  const prior = priorPredictions(split.examples, questionTypePrior(train.examples));
  const model = scoreVqa(split, predictions).official as { perQuestionType: Record<string, number> };
  const floor = scoreVqa(split, prior).official as { overall: number; perQuestionType: Record<string, number> };
  out['prior/overall'] = floor.overall;
  for (const [type, accuracy] of Object.entries(model.perQuestionType)) {
    out[`questionType/${type}`] = accuracy;
    out[`prior/questionType/${type}`] = floor.perQuestionType[type];
  }
  return out;
}
