import type { Command } from 'commander';

/** Placeholder until the `pretrain` command lands; registers nothing yet. */
export function registerPretrain(_program: Command): void {}
