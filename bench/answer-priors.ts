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
import { parseArgs } from 'node:util';
import { readSynthManifest } from '../tasks/synth/index.ts';
import { synthLoadOptions } from '../tasks/synth/run-splits.ts';
import { loadVqaSplit, scoreVqa, type LoadedVqaSplit } from '../tasks/vqa/index.ts';
import type { SynthDomain } from '../tasks/synth/layout.ts';

const { values } = parseArgs({ options: { data: { type: 'string' }, split: { type: 'string', default: 'test' } } });
if (!values.data) throw new Error('usage: npx tsx bench/answer-priors.ts --data DIR [--split val|test]');
if (values.split !== 'val' && values.split !== 'test') throw new Error(`--split expects val or test, got ${values.split}`);
const evaluationSplit = values.split;
const root = values.data;
const manifest = await readSynthManifest(root);
const domains = manifest.options.domains as SynthDomain[];

/** question type → its most frequent training answer; ties go to the answer seen first, so the table is deterministic. */
function questionTypePrior(train: LoadedVqaSplit): Map<string, string> {
  const counts = new Map<string, Map<string, number>>();
  for (const example of train.examples) {
    const type = example.questionType ?? '';
    const answer = example.multipleChoiceAnswer ?? example.answers[0];
    const perType = counts.get(type) ?? new Map<string, number>();
    perType.set(answer, (perType.get(answer) ?? 0) + 1);
    counts.set(type, perType);
  }
  const prior = new Map<string, string>();
  for (const [type, perType] of counts) {
    let best = '';
    let bestCount = -1;
    for (const [answer, count] of perType) if (count > bestCount) [best, bestCount] = [answer, count];
    prior.set(type, best);
  }
  return prior;
}

/** Across every type: the fallback for a question type the training split never asked. */
function overallMostFrequent(prior: Map<string, string>, train: LoadedVqaSplit): string {
  const counts = new Map<string, number>();
  for (const example of train.examples) counts.set(example.multipleChoiceAnswer ?? '', (counts.get(example.multipleChoiceAnswer ?? '') ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? [...prior.values()][0];
}

for (const trainDomain of domains) {
  const train = await loadVqaSplit(synthLoadOptions('vqa', root, trainDomain, 'train'));
  const prior = questionTypePrior(train);
  const fallback = overallMostFrequent(prior, train);
  for (const evalDomain of domains) {
    const split = await loadVqaSplit(synthLoadOptions('vqa', root, evalDomain, evaluationSplit));
    const predictions = new Map(split.examples.map((example) => [example.questionId, prior.get(example.questionType ?? '') ?? fallback]));
    const report = scoreVqa(split, predictions);
    const official = report.official as { overall: number; perAnswerType: Record<string, number>; perQuestionType: Record<string, number> };
    const answerTypes = Object.entries(official.perAnswerType).map(([type, accuracy]) => `${type} ${accuracy.toFixed(2)}`).join(', ');
    const questionTypes = Object.entries(official.perQuestionType).map(([type, accuracy]) => `"${type}" ${accuracy.toFixed(2)}`).join(', ');
    console.log(`prior from train/${trainDomain} on ${evaluationSplit}/${evalDomain} (${split.examples.length} questions): overall ${official.overall.toFixed(2)}; ${answerTypes}`);
    console.log(`  per question type: ${questionTypes}`);
  }
}
