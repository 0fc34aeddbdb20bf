import { existsSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { Command, Option } from 'commander';
import { writeFileAtomically } from '../../core/atomic-write.ts';
import { InputError } from '../../core/errors.ts';
import { gitCommit, softwareVersions } from '../../core/environment.ts';
import type { ScoreOptions, Task } from '../../core/types.ts';
import { VLBENCH_VERSION } from '../../core/version.ts';
import { buildBoard } from '../../leaderboard/board.ts';
import { addPredictions, type SplitCandidate } from '../../leaderboard/add-predictions.ts';
import { compareSeedGroups, formatComparison } from '../../leaderboard/compare.ts';
import { resolveComparedGroup } from '../../leaderboard/compared-groups.ts';
import type { RunExecution } from '../../leaderboard/run-record.ts';
import { parsePositiveInteger, scoringOptionsFromFlags } from '../flags.ts';
import { renderHtml } from '../../leaderboard/render-html.ts';
import { renderModelIndex, type ModelIndexDataset } from '../../leaderboard/model-index.ts';
import { renderCsv, renderJson, renderMarkdown, renderTable } from '../../leaderboard/render-text.ts';
import { DEFAULT_BOOTSTRAP_SEED, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES } from '../../leaderboard/statistics.ts';
import { exampleScores, listRuns, withLeaderboard, type LeaderboardStore, type StoredRun } from '../../leaderboard/store.ts';
import { leaderboardDbOption } from '../db-option.ts';
import { registerLeaderboardCopy } from './leaderboard-copy.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

/**
 * `vlbench leaderboard` (print or export the board), `vlbench leaderboard add` (score a
 * predictions file and record it) and `vlbench compare` (the CI regression gate).
 */
export type TaskLookup = (name: string) => Task | Promise<Task>;

export interface LeaderboardCommandOptions {
  /** How `leaderboard add` finds a task by name; defaults to the task registry. */
  lookupTask?: TaskLookup;
}

const FORMATS = ['table', 'csv', 'md', 'html', 'json', 'model-index'] as const;
type Format = (typeof FORMATS)[number];
const MAX_RESAMPLES = 1_000_000;

export function registerLeaderboard(program: Command, options: LeaderboardCommandOptions = {}): void {
  const lookupTask = options.lookupTask ?? lookupTaskInRegistry;

  // `leaderboard add` has its own --task, --db and --seed; the root program enables positional
  // options (harness/cli.ts) so that commander hands them to `add`, not to `leaderboard`.
  const leaderboard = program
    .command('leaderboard')
    .description(COMMAND_SUMMARIES.leaderboard.description)
    .enablePositionalOptions()
    .option('--task <name>', 'only runs of this task')
    .addOption(new Option('--format <format>', 'output format').choices(FORMATS).default('table'))
    .option('--out <file>', 'write to this file (atomically) instead of standard output')
    .addOption(leaderboardDbOption())
    .option('--resamples <n>', 'bootstrap resamples for per-run intervals', String(DEFAULT_RESAMPLES))
    .option('--seed <n>', 'bootstrap seed', String(DEFAULT_BOOTSTRAP_SEED))
    .option('--dataset <id>', 'model-index: the Hub dataset id the runs were scored on, e.g. lmms-lab/VQAv2 (default: the task name)')
    .option('--dataset-name <name>', 'model-index: a pretty name for the dataset')
    .option('--dataset-config <name>', 'model-index: the dataset configuration')
    .option('--dataset-revision <sha>', 'model-index: the dataset repository revision that was scored')
    .action(async (flags: { task?: string; format: Format; out?: string; db: string; resamples: string; seed: string } & DatasetFlags) => {
      const resamples = parseWholeNumber(flags.resamples, '--resamples', 1, MAX_RESAMPLES);
      const seed = parseWholeNumber(flags.seed, '--seed', 0, 2 ** 32 - 1);
      const output = await withLeaderboard(flags.db, { create: false }, async (store) => {
        const runs = await listRuns(store, { task: flags.task });
        const board = await buildBoard(runs, (runId) => exampleScores(store, runId), { resamples, seed, confidence: DEFAULT_CONFIDENCE });
        switch (flags.format) {
          case 'table':
            return renderTable(board);
          case 'csv':
            return renderCsv(board);
          case 'md':
            return renderMarkdown(board);
          case 'json':
            return renderJson(board);
          case 'html':
            return renderHtml(board, { generator: `vlbench ${VLBENCH_VERSION}` });
          case 'model-index':
            return renderModelIndex(board, { dataset: datasetFromFlags(flags) });
        }
      });
      if (flags.out !== undefined) {
        await writeFileAtomically(flags.out, output);
        process.stderr.write(`wrote ${flags.format} leaderboard to ${flags.out}\n`);
      } else {
        process.stdout.write(output);
      }
    });

  registerLeaderboardCopy(leaderboard);

  leaderboard
    .command('model-index')
    .description('write one run, or its seed group, as Hugging Face model-card `model-index` YAML (paste it into the model card\'s front matter)')
    .argument('<run>', 'run id or name (a name recorded for several seeds means its seed group, as in `vlbench compare`), or a run folder (every split it recorded)')
    .option('--task <name>', 'look the run name up among this task\'s runs only')
    .option('--seeds <list>', 'export exactly these seeds of the run\'s seed group, e.g. 0,1,2')
    .option('--out <file>', 'write to this file (atomically) instead of standard output')
    .option('--dataset <id>', 'the Hub dataset id the run was scored on, e.g. lmms-lab/VQAv2 (default: the task name)')
    .option('--dataset-name <name>', 'a pretty name for the dataset')
    .option('--dataset-config <name>', 'the dataset configuration')
    .option('--dataset-revision <sha>', 'the dataset repository revision that was scored')
    .option('--resamples <n>', 'bootstrap resamples for the interval', String(DEFAULT_RESAMPLES))
    .option('--seed <n>', 'bootstrap seed', String(DEFAULT_BOOTSTRAP_SEED))
    .addOption(leaderboardDbOption())
    .action(async (ref: string, flags: { task?: string; seeds?: string; out?: string; db: string; resamples: string; seed: string } & DatasetFlags) => {
      const resamples = parseWholeNumber(flags.resamples, '--resamples', 1, MAX_RESAMPLES);
      const seed = parseWholeNumber(flags.seed, '--seed', 0, 2 ** 32 - 1);
      const seeds = flags.seeds === undefined ? undefined : parseSeedList(flags.seeds);
      const output = await withLeaderboard(flags.db, { create: false }, async (store) => {
        const runs = existsSync(ref) && statSync(ref).isDirectory() ? await runsOfFolder(store, ref, seeds) : await runsOfGroup(store, ref, flags.task, seeds);
        const board = await buildBoard(runs, (runId) => exampleScores(store, runId), { resamples, seed, confidence: DEFAULT_CONFIDENCE });
        return renderModelIndex(board, { dataset: datasetFromFlags(flags) });
      });
      if (flags.out !== undefined) {
        await writeFileAtomically(flags.out, output);
        process.stderr.write(`wrote model-index to ${flags.out}\n`);
      } else {
        process.stdout.write(output);
      }
    });

  leaderboard
    .command('add')
    .description('score a predictions file in the task\'s official result format with the official metric, and record it as a run')
    .requiredOption('--task <name>', 'task name, e.g. vqa, vcr, retrieval')
    .requiredOption('--data <dir>', 'dataset folder, as `vlbench run` takes it: a SynthScenes folder, or a folder in the task\'s official layout (vqa, gqa, retrieval: or a Hugging Face snapshot or cache folder of lmms-lab/VQAv2, lmms-lab/GQA, lmms-lab/flickr30k)')
    .option('--revision <ref>', 'with a Hugging Face cache folder as --data: the snapshot to score against, a ref (main) or a commit; default refs/main')
    .option(
      '--split <name>',
      'split as `vlbench run` records it (SynthScenes: test/source; test picks the domain the predictions fit) or in the dataset\'s own terms (val2014); ' +
        'default: the one split whose examples the predictions fit',
    )
    .requiredOption('--predictions <file>', 'predictions in the task\'s official result format')
    .requiredOption('--name <name>', 'run name shown on the board and accepted by `vlbench compare`')
    .option('--model <name>', 'model name', 'external')
    .option('--method <spec>', 'method description', 'external predictions')
    .option('--seed <n>', 'the seed the predictions were made with, when known')
    .option('--legacy-normalization', 'vqa: score with the pre-2021 evaluator\'s normalisation (as LAVIS does); recorded, and never ranked with current-normalisation runs')
    .option('--folds <n>', 'retrieval: average over n consecutive folds of the images (COCO 1K = 5); recorded, and never ranked with runs of other fold counts')
    .option('--device <name>', 'the device the predictions were computed on (shown on the board; scores can drift across machines)')
    .option('--dtype <type>', 'numeric type the model ran in, e.g. float32, float16')
    .option('--batch-size <n>', 'examples per forward pass when the predictions were made')
    .addOption(leaderboardDbOption())
    .action(async (flags: AddFlags) => {
      const seed = flags.seed === undefined ? null : parseWholeNumber(flags.seed, '--seed', -(2 ** 31), 2 ** 32 - 1);
      if (flags.name.trim() === '') throw new InputError('expected a non-empty run name', { field: '--name' });
      const task = await lookupTask(flags.task);
      const scoring = scoringOptionsFromFlags(task, flags);
      const execution: RunExecution = {};
      if (flags.device !== undefined) execution.device = nonEmptyFlag(flags.device, '--device');
      if (flags.dtype !== undefined) execution.dtype = nonEmptyFlag(flags.dtype, '--dtype');
      if (flags.batchSize !== undefined) execution.batchSize = parsePositiveInteger('--batch-size', flags.batchSize);
      const splits = await splitCandidates(task, flags.data, flags.split, flags.revision);
      await withLeaderboard(flags.db, { create: true }, async (store) => {
        const record = await addPredictions(store, {
          task,
          dataDir: flags.data,
          splits,
          predictionsFile: flags.predictions,
          name: flags.name,
          model: flags.model,
          method: flags.method,
          seed,
          scoring,
          execution,
          versions: { ...softwareVersions() },
          gitCommit: gitCommit(),
        });
        process.stdout.write(`recorded run ${record.id} "${record.name}": ${record.task} ${record.split}, ${record.primaryMetric} ${record.metrics[record.primaryMetric].toFixed(2)}\n`);
      });
    });

  program
    .command('compare')
    .description(COMMAND_SUMMARIES.compare.description)
    .argument('<base>', 'base run id or name (a name recorded several times means its latest run, or its seed group when those runs cover several seeds)')
    .argument('<candidate>', 'candidate run id or name')
    .option('--seeds <list>', 'compare the seed groups of BASE and CANDIDATE on exactly these seeds, e.g. 0,1,2')
    .option('--task <name>', 'look run names up among this task\'s runs only')
    .option('--metric <name>', 'metric to compare (default: the primary metric; others have no per-example scores, so no interval)')
    .option('--max-drop <points>', 'tolerated drop, in metric points', '0')
    .addOption(leaderboardDbOption())
    .option('--resamples <n>', 'bootstrap resamples', String(DEFAULT_RESAMPLES))
    .option('--seed <n>', 'bootstrap seed', String(DEFAULT_BOOTSTRAP_SEED))
    .addOption(new Option('--format <format>', 'report format').choices(['text', 'json']).default('text'))
    .action(async (baseRef: string, candidateRef: string, flags: { task?: string; metric?: string; maxDrop: string; db: string; resamples: string; seed: string; seeds?: string; format: 'text' | 'json' }) => {
      const maxDrop = Number(flags.maxDrop);
      if (flags.maxDrop.trim() === '' || !Number.isFinite(maxDrop) || maxDrop < 0) throw new InputError(`expected 0 or more metric points, got ${JSON.stringify(flags.maxDrop)}`, { field: '--max-drop' });
      const resamples = parseWholeNumber(flags.resamples, '--resamples', 1, MAX_RESAMPLES);
      const seed = parseWholeNumber(flags.seed, '--seed', 0, 2 ** 32 - 1);
      const seeds = flags.seeds === undefined ? undefined : parseSeedList(flags.seeds);
      const comparison = await withLeaderboard(flags.db, { create: false }, async (store) => {
        const load = async (ref: string, role: 'base' | 'candidate') => {
          const { group, note } = await resolveComparedGroup(store, ref, role, { task: flags.task, seeds });
          if (note) process.stderr.write(`${note}\n`);
          return group;
        };
        return compareSeedGroups(await load(baseRef, 'base'), await load(candidateRef, 'candidate'), { metric: flags.metric, maxDrop, resamples, seed, confidence: DEFAULT_CONFIDENCE });
      });
      process.stdout.write(flags.format === 'json' ? JSON.stringify(comparison, null, 2) + '\n' : formatComparison(comparison));
      // main() returns process.exitCode: 1 fails the CI job on a regression.
      process.exitCode = comparison.exitCode;
    });
}

interface AddFlags {
  task: string;
  data: string;
  revision?: string;
  split?: string;
  predictions: string;
  name: string;
  model: string;
  method: string;
  seed?: string;
  db: string;
  legacyNormalization?: boolean;
  folds?: string;
  device?: string;
  dtype?: string;
  batchSize?: string;
}

/**
 * The scoring options of --legacy-normalization and --folds, as `vlbench score` and `vlbench run`
 * take them. Each means something to one task only; given to another it would be silently
 * ignored, so it is refused.
 */

/**
 * The splits `leaderboard add` may score, from --data and --split. A SynthScenes folder (it has
 * a manifest.json) gives its splits exactly as `vlbench run` loads and records them; any other
 * folder is the task's official layout, with --split in the dataset's own terms, or without it
 * every split the task knows (the predictions then pick the one they fit).
 */
async function splitCandidates(task: Task, dataDir: string, split: string | undefined, revision: string | undefined): Promise<SplitCandidate[]> {
  const root = resolve(dataDir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new InputError('expected a dataset folder', { file: dataDir, field: '--data' });
  // Loaded here, not at the top: printing the board never pays for the SynthScenes modules.
  const { synthPaths } = await import('../../tasks/synth/layout.ts');
  if (existsSync(synthPaths.manifest(root))) {
    const { readSynthManifest } = await import('../../tasks/synth/manifest.ts');
    const { synthSplitsNamed } = await import('../../tasks/synth/split-names.ts');
    return synthSplitsNamed(task.name, root, await readSynthManifest(root), split);
  }
  const names = split !== undefined ? [split] : task.splits;
  return names.map((name) => ({ label: name, load: { dataDir: root, split: name, ...(revision !== undefined ? { revision } : {}) } }));
}

/** The runs `model-index RUN` exports for a run id or name: the run, or its seed group. */
async function runsOfGroup(store: LeaderboardStore, ref: string, task: string | undefined, seeds: number[] | undefined): Promise<StoredRun[]> {
  const { group, note } = await resolveComparedGroup(store, ref, 'run', { task, seeds });
  if (note) process.stderr.write(`${note}\n`);
  const ids = new Set(group.runs.map((run) => run.record.id));
  return (await listRuns(store, { task: group.runs[0].record.task })).filter((run) => ids.has(run.record.id));
}

/** The records a run folder wrote: one per evaluation split, each with its per-example scores inside the folder. */
async function runsOfFolder(store: LeaderboardStore, folder: string, seeds: number[] | undefined): Promise<StoredRun[]> {
  if (seeds !== undefined) throw new InputError('--seeds picks seeds of a seed group; a run folder is one run', { field: '--seeds' });
  const inside = resolve(folder) + sep;
  const isInside = (path: string | null | undefined) => path != null && resolve(path).startsWith(inside);
  const runs = (await listRuns(store)).filter((run) => isInside(run.record.perExamplePath) || isInside(run.record.predictions?.path));
  if (runs.length === 0) throw new InputError('no run recorded in this leaderboard wrote into this folder (was it run with --no-record, or recorded in another --db?)', { file: folder });
  return runs;
}

interface DatasetFlags {
  dataset?: string;
  datasetName?: string;
  datasetConfig?: string;
  datasetRevision?: string;
}

function datasetFromFlags(flags: DatasetFlags): ModelIndexDataset {
  const dataset: ModelIndexDataset = {};
  if (flags.dataset !== undefined) dataset.type = nonEmptyFlag(flags.dataset, '--dataset');
  if (flags.datasetName !== undefined) dataset.name = nonEmptyFlag(flags.datasetName, '--dataset-name');
  if (flags.datasetConfig !== undefined) dataset.config = nonEmptyFlag(flags.datasetConfig, '--dataset-config');
  if (flags.datasetRevision !== undefined) dataset.revision = nonEmptyFlag(flags.datasetRevision, '--dataset-revision');
  return dataset;
}

function parseSeedList(text: string): number[] {
  const parts = text.split(',').map((part) => part.trim());
  if (parts.length === 0 || parts.some((part) => part === '')) throw new InputError(`expected comma-separated seeds, e.g. 0,1,2, got ${JSON.stringify(text)}`, { field: '--seeds' });
  return parts.map((part) => parseWholeNumber(part, '--seeds', -(2 ** 31), 2 ** 32 - 1));
}

function nonEmptyFlag(text: string, flag: string): string {
  if (text.trim() === '') throw new InputError('expected a non-empty value', { field: flag });
  return text.trim();
}

function parseWholeNumber(text: string, option: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InputError(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`, { field: option });
  }
  return value;
}


/** Loaded on first use, so printing the board never pays for loading every task adapter. */
async function lookupTaskInRegistry(name: string): Promise<Task> {
  const { getTask } = await import('../../tasks/registry.ts');
  return getTask(name);
}
