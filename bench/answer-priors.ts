/**
 * The floor every VQA model on a SynthScenes folder should clear: answer each question with the
 * most frequent `multiple_choice_answer` of its question type in the training split (the
 * "per Q-type prior" baseline of Antol et al. 2015, VQA, table 2), scored with the official
 * accuracy. It reads no image, so a trained model at or below it on a split has learned nothing
 * from the pictures there; issue 12's oracle comparisons mean little until the models clear it.
 *
 *   npx tsx bench/answer-priors.ts --data DIR [--split val|test]
 *
 * Prints, for each training domain's prior and each evaluation split, the overall accuracy, the
 * answer types and the question types (the evaluator's own breakdown).
 */
import { parseBenchArguments } from './command-line.ts';
import { readSynthManifest } from '../tasks/synth/index.ts';
import { synthLoadOptions } from '../tasks/synth/run-splits.ts';
import { loadVqaSplit, scoreVqa } from '../tasks/vqa/index.ts';
import { priorPredictions, questionTypePrior } from '../tasks/vqa/priors.ts';
import type { SynthDomain } from '../tasks/synth/layout.ts';

const { values, refuse } = parseBenchArguments('npx tsx bench/answer-priors.ts --data DIR [--split val|test]', { data: { type: 'string' }, split: { type: 'string', default: 'test' } });
const evaluationSplit = values.split === 'val' || values.split === 'test' ? values.split : refuse(`--split expects val or test, got ${values.split}`);
const root = values.data ?? refuse('--data is required');
const manifest = await readSynthManifest(root);
const domains = manifest.options.domains as SynthDomain[];

for (const trainDomain of domains) {
  const train = await loadVqaSplit(synthLoadOptions('vqa', root, trainDomain, 'train'));
  const prior = questionTypePrior(train.examples);
  for (const evalDomain of domains) {
    const split = await loadVqaSplit(synthLoadOptions('vqa', root, evalDomain, evaluationSplit));
    const predictions = priorPredictions(split.examples, prior);
    const report = scoreVqa(split, predictions);
    const official = report.official as { overall: number; perAnswerType: Record<string, number>; perQuestionType: Record<string, number> };
    const answerTypes = Object.entries(official.perAnswerType).map(([type, accuracy]) => `${type} ${accuracy.toFixed(2)}`).join(', ');
    const questionTypes = Object.entries(official.perQuestionType).map(([type, accuracy]) => `"${type}" ${accuracy.toFixed(2)}`).join(', ');
    console.log(`prior from train/${trainDomain} on ${evaluationSplit}/${evalDomain} (${split.examples.length} questions): overall ${official.overall.toFixed(2)}; ${answerTypes}`);
    console.log(`  per question type: ${questionTypes}`);
  }
}
