import type { Command } from 'commander';

/** Placeholder until the `encode` command lands; registers nothing yet. */
export function registerEncode(_program: Command): void {}
