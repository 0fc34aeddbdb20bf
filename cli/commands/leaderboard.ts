import { Command, Option } from 'commander';
import { writeFileAtomically } from '../../core/atomic-write.ts';
import { InputError } from '../../core/errors.ts';
import { gitCommit, softwareVersions } from '../../core/environment.ts';
import type { Task } from '../../core/types.ts';
import { VLBENCH_VERSION } from '../../core/version.ts';
import { addPredictions } from '../../leaderboard/add-predictions.ts';
import { buildBoard } from '../../leaderboard/board.ts';
import { compareRuns, formatComparison } from '../../leaderboard/compare.ts';
import { renderHtml } from '../../leaderboard/render-html.ts';
import { renderCsv, renderJson, renderMarkdown, renderTable } from '../../leaderboard/render-text.ts';
import { DEFAULT_BOOTSTRAP_SEED, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES } from '../../leaderboard/statistics.ts';
import { exampleScores, findRun, listRuns, withLeaderboard } from '../../leaderboard/store.ts';
import { leaderboardDbOption } from '../db-option.ts';

/**
 * `vlbench leaderboard` (print or export the board), `vlbench leaderboard add` (score a
 * predictions file and record it) and `vlbench compare` (the CI regression gate).
 */
export type TaskLookup = (name: string) => Task | Promise<Task>;

export interface LeaderboardCommandOptions {
  /** How `leaderboard add` finds a task by name; defaults to the task registry. */
  lookupTask?: TaskLookup;
}

const FORMATS = ['table', 'csv', 'md', 'html', 'json'] as const;
type Format = (typeof FORMATS)[number];
const MAX_RESAMPLES = 1_000_000;

export function registerLeaderboard(program: Command, options: LeaderboardCommandOptions = {}): void {
  const lookupTask = options.lookupTask ?? lookupTaskInRegistry;

  // `leaderboard add` has its own --task, --db and --seed; the root program enables positional
  // options (harness/cli.ts) so that commander hands them to `add`, not to `leaderboard`.
  const leaderboard = program
    .command('leaderboard')
    .description('print or export the leaderboard: one ranked table per comparability key (task, task version, split, split fingerprint, metric version)')
    .enablePositionalOptions()
    .option('--task <name>', 'only runs of this task')
    .addOption(new Option('--format <format>', 'output format').choices(FORMATS).default('table'))
    .option('--out <file>', 'write to this file (atomically) instead of standard output')
    .addOption(leaderboardDbOption())
    .option('--resamples <n>', 'bootstrap resamples for per-run intervals', String(DEFAULT_RESAMPLES))
    .option('--seed <n>', 'bootstrap seed', String(DEFAULT_BOOTSTRAP_SEED))
    .action(async (flags: { task?: string; format: Format; out?: string; db: string; resamples: string; seed: string }) => {
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
        }
      });
      if (flags.out !== undefined) {
        await writeFileAtomically(flags.out, output);
        process.stderr.write(`wrote ${flags.format} leaderboard to ${flags.out}\n`);
      } else {
        process.stdout.write(output);
      }
    });

  leaderboard
    .command('add')
    .description('score a predictions file in the task\'s official result format with the official metric, and record it as a run')
    .requiredOption('--task <name>', 'task name, e.g. vqa, vcr, retrieval')
    .requiredOption('--data <dir>', 'dataset folder in the task\'s official layout')
    .option('--split <name>', 'split in the dataset\'s own terms (default: the task\'s first split)')
    .requiredOption('--predictions <file>', 'predictions in the task\'s official result format')
    .requiredOption('--name <name>', 'run name shown on the board and accepted by `vlbench compare`')
    .option('--model <name>', 'model name', 'external')
    .option('--method <spec>', 'method description', 'external predictions')
    .option('--seed <n>', 'the seed the predictions were made with, when known')
    .addOption(leaderboardDbOption())
    .action(async (flags: { task: string; data: string; split?: string; predictions: string; name: string; model: string; method: string; seed?: string; db: string }) => {
      const seed = flags.seed === undefined ? null : parseWholeNumber(flags.seed, '--seed', -(2 ** 31), 2 ** 32 - 1);
      if (flags.name.trim() === '') throw new InputError('expected a non-empty run name', { field: '--name' });
      const task = await lookupTask(flags.task);
      await withLeaderboard(flags.db, { create: true }, async (store) => {
        const record = await addPredictions(store, {
          task,
          dataDir: flags.data,
          split: flags.split,
          predictionsFile: flags.predictions,
          name: flags.name,
          model: flags.model,
          method: flags.method,
          seed,
          versions: { ...softwareVersions() },
          gitCommit: gitCommit(),
        });
        process.stdout.write(`recorded run ${record.id} "${record.name}": ${record.task} ${record.split}, ${record.primaryMetric} ${record.metrics[record.primaryMetric].toFixed(2)}\n`);
      });
    });

  program
    .command('compare')
    .description(
      'regression gate: paired bootstrap of CANDIDATE − BASE over matched examples. Exit 0: no significant drop beyond --max-drop; ' +
        '1: regression (the upper end of the 95% interval of the difference is below −max-drop); 2: not comparable or bad input',
    )
    .argument('<base>', 'base run id or name (a name recorded several times means its latest run)')
    .argument('<candidate>', 'candidate run id or name')
    .option('--task <name>', 'look run names up among this task\'s runs only')
    .option('--metric <name>', 'metric to compare (default: the primary metric; others have no per-example scores, so no interval)')
    .option('--max-drop <points>', 'tolerated drop, in metric points', '0')
    .addOption(leaderboardDbOption())
    .option('--resamples <n>', 'bootstrap resamples', String(DEFAULT_RESAMPLES))
    .option('--seed <n>', 'bootstrap seed', String(DEFAULT_BOOTSTRAP_SEED))
    .addOption(new Option('--format <format>', 'report format').choices(['text', 'json']).default('text'))
    .action(async (baseRef: string, candidateRef: string, flags: { task?: string; metric?: string; maxDrop: string; db: string; resamples: string; seed: string; format: 'text' | 'json' }) => {
      const maxDrop = Number(flags.maxDrop);
      if (flags.maxDrop.trim() === '' || !Number.isFinite(maxDrop) || maxDrop < 0) throw new InputError(`expected 0 or more metric points, got ${JSON.stringify(flags.maxDrop)}`, { field: '--max-drop' });
      const resamples = parseWholeNumber(flags.resamples, '--resamples', 1, MAX_RESAMPLES);
      const seed = parseWholeNumber(flags.seed, '--seed', 0, 2 ** 32 - 1);
      const comparison = await withLeaderboard(flags.db, { create: false }, async (store) => {
        const load = async (ref: string, role: string) => {
          const { run, matchedByName } = await findRun(store, ref, { task: flags.task });
          if (matchedByName > 1) {
            process.stderr.write(`note: ${role} name "${ref}" matches ${matchedByName} runs${flags.task ? '' : ' (narrow with --task, or pass a run id)'}; using the latest, ${run.record.id}\n`);
          }
          return { record: run.record, perExample: run.exampleCount > 0 ? await exampleScores(store, run.record.id) : null };
        };
        return compareRuns(await load(baseRef, 'base'), await load(candidateRef, 'candidate'), { metric: flags.metric, maxDrop, resamples, seed, confidence: DEFAULT_CONFIDENCE });
      });
      process.stdout.write(flags.format === 'json' ? JSON.stringify(comparison, null, 2) + '\n' : formatComparison(comparison));
      // main() returns process.exitCode: 1 fails the CI job on a regression.
      process.exitCode = comparison.exitCode;
    });
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
