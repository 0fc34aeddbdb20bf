import { resolve } from 'node:path';
import type { Command } from 'commander';
import { isPostgresLocation } from '../../leaderboard/store.ts';
import { mergeShards } from '../../harness/shards.ts';
import { leaderboardDbOption } from '../db-option.ts';
import { formatRunOutcome } from './run.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

interface MergeFlags {
  db: string;
  record: boolean;
  out?: string;
  data?: string;
  json?: boolean;
}

export function registerMergeShards(program: Command): void {
  program
    .command('merge-shards')
    .description(COMMAND_SUMMARIES['merge-shards'].description)
    .argument('<shard_dirs...>', 'the shard run folders, one per shard (any order)')
    .addOption(leaderboardDbOption())
    .option('--no-record', 'do not record the merged run in the leaderboard')
    .option('--out <dir>', 'folder for the merged run folder (default: beside the first shard)')
    .option('--data <dir>', 'the dataset folder, where it is not at the path the shards ran with')
    .option('--json', 'print the outcome as JSON')
    .action(async (dirs: string[], flags: MergeFlags) => {
      const db = flags.record ? (isPostgresLocation(flags.db) ? flags.db : resolve(flags.db)) : null;
      const outcome = await mergeShards(dirs, { db, runsDir: flags.out, dataDir: flags.data ? resolve(flags.data) : undefined });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ runDir: outcome.runDir, name: outcome.name, backend: outcome.backend, splits: outcome.splits.map((s) => ({ split: s.split, metrics: s.report.metrics, official: s.report.official, recordId: s.record?.id ?? null })), timings: outcome.timings }, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatRunOutcome(outcome)}\n`);
      }
    });
}
