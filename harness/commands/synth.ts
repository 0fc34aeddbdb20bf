import type { Command } from 'commander';

/** Placeholder until the `synth` command lands; registers nothing yet. */
export function registerSynth(_program: Command): void {}
