import type { Command } from 'commander';

/** Placeholder until the `score` command lands; registers nothing yet. */
export function registerScore(_program: Command): void {}
