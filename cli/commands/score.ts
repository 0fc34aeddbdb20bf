import type { Command } from 'commander';
import { knownTaskNames } from '../../tasks/registry.ts';
import { runScore, type ScoreFlags } from '../../harness/score-files.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

export type { ScoreFlags };

/**
 * `vlbench score`: scores a predictions file with a task's official metric and prints the
 * official report as one JSON object on stdout.
 *
 *   vlbench score --task vqa --questions Q.json --annotations A.json --predictions P.json [--per-question OUT.json] [--legacy-normalization]
 *   vlbench score --task vqa --data-dir ~/.cache/huggingface/hub/datasets--lmms-lab--VQAv2 [--revision REF] --split validation --predictions P.json
 *   vlbench score --task gqa --data-dir ~/.cache/huggingface/hub/datasets--lmms-lab--GQA [--revision REF] --split testdev --predictions P.json
 *   vlbench score --task gqa --questions Q.json --predictions P.json [--choices C.json]
 *   vlbench score --task vcr --annotations val.jsonl --predictions P.csv
 *   vlbench score --task retrieval --annotations dataset.json --split test --similarities S.npy [--folds 5]
 *
 * It only maps flags onto the generic Task interface (load → readPredictions → score), so a new
 * task scores here without changes. Without --split the split comes from the files.
 */
export function registerScore(program: Command): void {
  program
    .command('score')
    .description(COMMAND_SUMMARIES.score.description)
    .requiredOption('--task <name>', `task to score (${knownTaskNames().join(', ')}, …)`)
    .option('--questions <file>', 'questions file (vqa, gqa)')
    .option('--annotations <file>', 'annotations file (vqa, vcr, retrieval)')
    .option('--choices <file>', 'GQA choices file: adds validity and plausibility')
    .option('--scene-graphs <file>', 'GQA scene graphs file')
    .option('--split <name>', 'split name (retrieval: test, val, train, train+restval); otherwise taken from the files')
    .option('--data-dir <dir>', 'dataset folder, to find the files by split name instead of naming them; vqa, gqa, retrieval: also a Hugging Face dataset snapshot of lmms-lab/VQAv2, lmms-lab/GQA or lmms-lab/flickr30k (parquet) or its datasets--lmms-lab--… cache folder')
    .option('--revision <ref>', 'with a Hugging Face cache folder: the snapshot to score, a ref (main) or a commit; default refs/main')
    .option('--images-dir <dir>', 'images folder, where it is not the dataset folder')
    .option('--predictions <file>', 'predictions in the official result format of the task')
    .option('--similarities <file>', 'retrieval: .npy similarity matrix, images × captions')
    .option('--per-question <file>', 'also write {id: score} per question, rounded as the official evaluator does')
    .option('--legacy-normalization', 'vqa: pre-2021 evaluator (prediction always normalised), as LAVIS uses')
    .option('--folds <n>', 'retrieval: average over n folds (COCO 1K = 5)')
    .option('--limit <n>', 'score only the first n examples of the split, in file order (a smoke run\'s predictions cover exactly those)')
    .action(async (flags: ScoreFlags) => {
      const { official } = await runScore(flags);
      process.stdout.write(`${JSON.stringify(official)}\n`);
    });
}

