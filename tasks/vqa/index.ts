import type { Task } from '../../core/types.ts';
import { VQA_TASK_VERSION, loadVqaSplit, type VqaExample } from './load.ts';
import { checkVqaPredictions, readVqaPredictions, writeVqaResults } from './predictions.ts';
import { scoreVqa, type VqaPredictions } from './score.ts';
import { synthPaths } from '../synth/layout.ts';

export { cleanWhitespace, normalizeVqaAnswer, processDigitArticle, processPunctuation } from './normalize.ts';
export {
  AnswerProcessingCache,
  computeVqaAccuracy,
  pythonRound,
  vqaQuestionAccuracy,
  vqaSoftScore,
  type VqaAccuracyResult,
  type VqaNormalizationMode,
  type VqaOfficialAccuracy,
  type VqaScoredQuestion,
} from './accuracy.ts';
export { VQA_ANSWERS_PER_QUESTION, VQA_TASK_VERSION, loadVqaSplit, type LoadedVqaSplit, type VqaExample, type VqaSplitInfo } from './load.ts';
export { checkVqaPredictions, readVqaPredictions, writeVqaResults } from './predictions.ts';
export { VQA_METRIC_VERSION, scoreVqa, type VqaPredictions } from './score.ts';
export { buildAnswerVocabulary } from './vocabulary.ts';
export { fingerprintSplit } from '../split-files.ts';

/** VQA v2 (and any split in its layout: abstract scenes, SynthScenes): official accuracy, EvalAI result JSON. */
export const vqaTask: Task<VqaExample, VqaPredictions> = {
  name: 'vqa',
  scoreOptions: ['legacyNormalization'],
  version: VQA_TASK_VERSION,
  description: 'VQA v2 open-ended: official accuracy (current evaluator, or the pre-2021 legacy normalisation); EvalAI result JSON',
  splits: ['train2014', 'val2014', 'test-dev2015', 'test2015'],
  load: loadVqaSplit,
  readPredictions: readVqaPredictions,
  score: scoreVqa,
  async writeSubmission(split, predictions, file) {
    checkVqaPredictions(split, predictions, file);
    await writeVqaResults(split, predictions, file);
  },
  synthScenes: ({ root, subtype }) => ({ split: subtype, files: { questions: synthPaths.vqaQuestions(root, subtype), annotations: synthPaths.vqaAnnotations(root, subtype) }, imagesDir: synthPaths.imagesRoot(root) }),
};
