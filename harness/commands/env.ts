import type { Command } from 'commander';

export function registerEnv(_program: Command): void {}
