import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InputError } from '../core/errors.ts';
import { parsePositiveInteger } from '../core/settings.ts';
import { getTask, listTasks } from '../tasks/registry.ts';
import type { LoadOptions, ScoreOptions, ScoreReport, Task } from '../core/types.ts';
import { pythonRound } from '../tasks/vqa/index.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { limitSplit } from './run-data.ts';

/**
 * Scoring a predictions file with a task's official metric, from files named as `vlbench score`
 * names them: the command, the API's `score()`, bench/score.ts and the tests all call this, so
 * the CLI stays a wrapper that parses flags and prints.
 */

/** `vlbench score`'s flags, camel-cased: what `score()` takes from code. `folds` may come as the flag's text. */
export interface ScoreFlags {
  task?: string;
  questions?: string;
  annotations?: string;
  choices?: string;
  sceneGraphs?: string;
  split?: string;
  dataDir?: string;
  /** With a Hugging Face cache folder as dataDir: the snapshot (ref or commit); default refs/main. */
  revision?: string;
  imagesDir?: string;
  predictions?: string;
  similarities?: string;
  perQuestion?: string;
  legacyNormalization?: boolean;
  folds?: string | number;
  /** Score only the first N examples of the split, in file order (the predictions cover exactly those). */
  limit?: string | number;
}


/** The flag of each scoring option, for errors. */
export const SCORE_OPTION_FLAGS: Record<keyof ScoreOptions, string> = { legacyNormalization: '--legacy-normalization', folds: '--folds' };

/**
 * `--legacy-normalization` and `--folds` as ScoreOptions. Each means something to the tasks that
 * declare it (Task.scoreOptions) only; given to another it would be silently ignored, so it is refused.
 */
export function scoringOptionsFor(task: Task, flags: { legacyNormalization?: boolean; folds?: string | number }): ScoreOptions {
  const options: ScoreOptions = {};
  const refuseUnless = (key: keyof ScoreOptions) => {
    if (!(task.scoreOptions ?? []).includes(key)) {
      const takers = listTasks().filter((other) => other.scoreOptions?.includes(key)).map((other) => other.name);
      throw new InputError(`${SCORE_OPTION_FLAGS[key]} applies to ${takers.join(' and ')} only, not to ${task.name}`, { field: SCORE_OPTION_FLAGS[key] });
    }
  };
  if (flags.legacyNormalization) {
    refuseUnless('legacyNormalization');
    options.legacyNormalization = true;
  }
  if (flags.folds !== undefined) {
    refuseUnless('folds');
    options.folds = parsePositiveInteger('--folds', flags.folds);
  }
  return options;
}

/** The work of `vlbench score`, callable from code: returns the full report (official layout in `official`). */
export async function runScore(flags: ScoreFlags): Promise<ScoreReport> {
  const task = getTask(flags.task ?? '');
  const scoreOptions: ScoreOptions = scoringOptionsFor(task, flags);
  const limit = flags.limit === undefined ? undefined : parsePositiveInteger('--limit', flags.limit);
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
  if (flags.revision !== undefined) loadOptions.revision = flags.revision;
  if (flags.imagesDir !== undefined) loadOptions.imagesDir = flags.imagesDir;
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
