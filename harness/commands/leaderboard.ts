import type { Command } from 'commander';

/** Placeholder until the `leaderboard` command lands; registers nothing yet. */
export function registerLeaderboard(_program: Command): void {}
