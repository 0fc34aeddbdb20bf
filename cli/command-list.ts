import type { Command } from 'commander';
import type { CommandName } from './command-summaries.ts';

/**
 * The top-level commands' modules, in the order `vlbench --help` lists their commands. This file
 * and cli/command-summaries.ts are all `vlbench --help` and `--version` read: a command's own
 * module (which loads tfjs, transformers.js, sharp, the stores) is imported only when that
 * command runs or its help is asked for.
 */
export type RegisterCommands = (program: Command) => void;

export interface CommandModule {
  /** The top-level commands the module registers, in their order in --help. */
  readonly commands: readonly CommandName[];
  readonly load: () => Promise<RegisterCommands>;
}

export const COMMAND_MODULES: readonly CommandModule[] = [
  { commands: ['env'], load: async () => (await import('./commands/env.ts')).registerEnv },
  { commands: ['synth'], load: async () => (await import('./commands/synth.ts')).registerSynth },
  { commands: ['score'], load: async () => (await import('./commands/score.ts')).registerScore },
  { commands: ['encode'], load: async () => (await import('./commands/encode.ts')).registerEncode },
  { commands: ['pretrain'], load: async () => (await import('./commands/pretrain.ts')).registerPretrain },
  { commands: ['run'], load: async () => (await import('./commands/run.ts')).registerRun },
  { commands: ['leaderboard', 'compare'], load: async () => (await import('./commands/leaderboard.ts')).registerLeaderboard },
  { commands: ['demo'], load: async () => (await import('./commands/demo.ts')).registerDemo },
  { commands: ['sweep'], load: async () => (await import('./commands/sweep.ts')).registerSweep },
  { commands: ['worker'], load: async () => (await import('./commands/worker.ts')).registerWorker },
  { commands: ['merge-shards'], load: async () => (await import('./commands/merge-shards.ts')).registerMergeShards },
];
