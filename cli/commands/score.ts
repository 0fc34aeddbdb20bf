import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../core/errors.ts';
import { getTask, knownTaskNames } from '../../tasks/registry.ts';
import type { LoadOptions, ScoreOptions, ScoreReport } from '../../core/types.ts';
import { pythonRound } from '../../tasks/vqa/index.ts';
import { writeFileAtomically } from '../../core/atomic-write.ts';
import { parsePositiveInteger, scoringOptionsFromFlags } from '../flags.ts';
import { limitSplit } from '../../harness/run-data.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

/** `vlbench score`'s flags, camel-cased: what `score()` takes from code. */
export interface ScoreFlags {
  task?: string;
  questions?: string;
  annotations?: string;
  choices?: string;
  sceneGraphs?: string;
  split?: string;
  dataDir?: string;
  imagesDir?: string;
  predictions?: string;
  similarities?: string;
  perQuestion?: string;
  legacyNormalization?: boolean;
  folds?: string;
  /** Score only the first N examples of the split, in file order (the predictions cover exactly those). */
  limit?: string;
}


/**
 * `vlbench score`: scores a predictions file with a task's official metric and prints the
 * official report as one JSON object on stdout.
 *
 *   vlbench score --task vqa --questions Q.json --annotations A.json --predictions P.json [--per-question OUT.json] [--legacy-normalization]
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
    .option('--data-dir <dir>', 'dataset folder, to find the files by split name instead of naming them')
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

/** The work of `vlbench score`, callable from code: returns the full report (official layout in `official`). */
export async function runScore(flags: ScoreFlags): Promise<ScoreReport> {
  const task = getTask(flags.task ?? '');
  const scoreOptions: ScoreOptions = scoringOptionsFromFlags(task, flags);
  if (flags.predictions !== undefined && flags.similarities !== undefined) {
    throw new InputError('give the predictions with --predictions or with --similarities, not both', { file: '--similarities' });
  }
  const predictionsFile = flags.predictions ?? flags.similarities;
  if (predictionsFile === undefined) throw new InputError('required: the predictions file (for retrieval, --similarities)', { file: '--predictions' });
  const files: Record<string, string> = {};
  for (const [key, option] of [['questions', '--questions'], ['annotations', '--annotations'], ['choices', '--choices'], ['sceneGraphs', '--scene-graphs']] as const) {
    const file = flags[key];
    if (file === undefined) continue;
    await requireFileOrChunks(file, option);
    files[key] = file;
  }
  await requireFile(predictionsFile, flags.predictions !== undefined ? '--predictions' : '--similarities');
  if (flags.dataDir !== undefined) await requireFolder(flags.dataDir, '--data-dir');
  if (Object.keys(files).length === 0 && flags.dataDir === undefined) {
    throw new InputError('name the annotation files (--questions / --annotations) or the dataset folder (--data-dir with --split)', { file: '--annotations' });
  }
  if (flags.perQuestion !== undefined) await requireFolder(dirname(flags.perQuestion), '--per-question');

  const loadOptions: LoadOptions = { split: flags.split ?? '', files };
  if (flags.dataDir !== undefined) loadOptions.dataDir = flags.dataDir;
  if (flags.imagesDir !== undefined) loadOptions.imagesDir = flags.imagesDir;
  const limit = flags.limit === undefined ? undefined : parsePositiveInteger('--limit', flags.limit);
  const split = limitSplit(await task.load(loadOptions), limit);
  let predictions: unknown;
  try {
    predictions = await task.readPredictions(split, predictionsFile);
  } catch (error) {
    // The task's own check says which ids are extra or missing; say why the split is short.
    if (error instanceof InputError && split.limit !== undefined) error.message += ` (--limit ${split.limit}: the predictions must cover exactly the first ${split.limit} examples of the split)`;
    throw error;
  }
  const report = task.score(split, predictions, scoreOptions);
  if (flags.perQuestion !== undefined) {
    // The official per-question dictionary (evalQA): round(100·acc, 2), keyed by question id, in
    // scoring order (a JavaScript object would move integer-like keys into numeric order).
    const entries = report.perExample.map(({ id, score }) => `${JSON.stringify(id)}:${JSON.stringify(pythonRound(score, 2))}`);
    await writeFileAtomically(flags.perQuestion, `{${entries.join(',')}}\n`);
  }
  return report;
}

async function requireFile(file: string, option: string): Promise<void> {
  let isFile = false;
  try {
    isFile = (await stat(file)).isFile();
  } catch {
    throw new InputError(`${option}: no such file`, { file });
  }
  if (!isFile) throw new InputError(`${option}: not a file`, { file });
}

/** A file, or a folder of chunks (GQA's `<name>/<name>_N.json`, named as the folder or as `<name>.json`). */
async function requireFileOrChunks(path: string, option: string): Promise<void> {
  for (const candidate of [path, path.replace(/\.json$/, '')]) {
    try {
      const info = await stat(candidate);
      if (info.isFile() || info.isDirectory()) return;
    } catch {
      // try the next form
    }
  }
  throw new InputError(`${option}: no such file (nor a folder of chunks)`, { file: path });
}

async function requireFolder(folder: string, option: string): Promise<void> {
  let isFolder = false;
  try {
    isFolder = (await stat(folder)).isDirectory();
  } catch {
    throw new InputError(`${option}: no such folder`, { file: folder });
  }
  if (!isFolder) throw new InputError(`${option}: not a folder`, { file: folder });
}
