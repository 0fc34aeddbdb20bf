import { join } from 'node:path';
import { loadGqaSplit, type GqaSceneGraph } from '../../tasks/gqa/index.ts';
import { synthPaths } from '../../tasks/synth/index.ts';
import type { VqaExample } from '../../tasks/vqa/load.ts';
import { priorPredictions, questionTypePrior } from '../../tasks/vqa/priors.ts';
import { scoreVqa } from '../../tasks/vqa/score.ts';
import { buildAnswerVocabulary } from '../../tasks/vqa/vocabulary.ts';
import type { LoadedSplit } from '../../core/types.ts';
import { ANSWER_DEFAULTS, answerClassificationAdapter, graphByImageFile, softAnswerTargets, type AnswerTask } from './answer-classification.ts';
import type { DemoRecipe, TaskAdapter } from './adapter.ts';

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

/**
 * VQA in the demo: `ft` alone, on a folder of its own with more questions: the relational head
 * needs thousands of questions and tens of epochs to pass its floors (gate A: 63 at 5,000
 * questions, 82 at 10,000), and VQA's `ft+mmd` took 654 s of the 952-s demo (its target rows
 * triple a step) while answering every question with its type's prior; bench/vqa-table.ts and
 * bench/methods.ts compare the methods on VQA. Its adapter's 40 epochs (ANSWER_DEFAULTS), over
 * the simulated detector's object boxes. No tuned run: VQA's object tokens come from crops
 * through the frozen encoder, which a tuned block does not change. 400 images a domain: 70% of
 * them train, up to 10 questions each (SynthScenes 1.4.0), about 2,800 training questions. 600
 * images of 1.4.0 at 40 epochs would double VQA's 264 s of training, past the demo's 10 minutes;
 * at 20 epochs they stayed at the prior in every question type but colour (docs/results.md).
 */
export const VQA_DEMO: DemoRecipe = { methods: ['ft'], takesMethods: true, epochs: ANSWER_DEFAULTS.epochs, tunedFt: false, ownFolder: { images: 400, regions: 'detector' } };

export const vqaAdapter: TaskAdapter = { ...answerClassificationAdapter(vqaAnswers), demo: VQA_DEMO };

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
