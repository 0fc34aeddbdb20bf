import type { Command } from 'commander';
import { InputError } from '../../core/errors.ts';
import { copyRuns } from '../../leaderboard/copy.ts';
import { withLeaderboard } from '../../leaderboard/store.ts';

/**
 * `vlbench leaderboard copy --from A --to B`: moves runs between stores (a laptop's SQLite
 * file into the team's PostgreSQL, or back) without duplicates; every record and per-example
 * score is kept.
 */
export function registerLeaderboardCopy(leaderboard: Command): void {
  leaderboard
    .command('copy')
    .description('copy every run (records and per-example scores) from one leaderboard to another, SQLite path or postgres:// URL; runs already in the target (same id) are skipped')
    .requiredOption('--from <location>', 'source leaderboard: a SQLite path or a postgres:// URL')
    .requiredOption('--to <location>', 'target leaderboard (created when missing)')
    .option('--task <name>', 'only runs of this task')
    .action(async (flags: { from: string; to: string; task?: string }) => {
      if (flags.from === flags.to) throw new InputError('--from and --to name the same leaderboard', { field: '--to' });
      const result = await withLeaderboard(flags.from, { create: false }, (from) => withLeaderboard(flags.to, { create: true }, (to) => copyRuns(from, to, { task: flags.task })));
      process.stdout.write(`copied ${result.copied.length} runs (${result.exampleRows} per-example scores); ${result.skipped.length} already there\n`);
    });
}
