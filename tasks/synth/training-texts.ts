import type { VcrExample } from '../vcr/load.ts';
import type { RetrievalImage } from '../retrieval/karpathy.ts';
import { synthLoadOptions } from './run-splits.ts';
import { getTask } from '../registry.ts';

/**
 * Every text a run on a SynthScenes folder feeds the text encoder, from one domain's
 * training split: VQA and GQA questions, VCR questions, answers and rationales (tags
 * rendered as the VCR task renders them), and captions. A word-level tokenizer built from
 * captions alone would map the question words to <|unk|>.
 */
export async function synthTrainingTexts(root: string): Promise<string[]> {
  const texts: string[] = [];
  for (const task of ['vqa', 'gqa', 'vcr', 'retrieval'] as const) {
    const split = await getTask(task).load(synthLoadOptions(task, root, 'source', 'train'));
    if (task === 'vqa' || task === 'gqa') for (const e of split.examples as { question: string }[]) texts.push(e.question);
    else if (task === 'vcr') for (const e of split.examples as VcrExample[]) texts.push(e.question.text, ...e.answers.map((a) => a.text), ...e.rationales.map((r) => r.text));
    else for (const image of split.examples as RetrievalImage[]) texts.push(...image.captions.map((c) => c.text));
  }
  return texts;
}
