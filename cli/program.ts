import { Command, CommanderError } from 'commander';
import { InputError } from '../core/errors.ts';
import { registerEnv } from './commands/env.ts';
import { registerSynth } from './commands/synth.ts';
import { registerScore } from './commands/score.ts';
import { registerEncode } from './commands/encode.ts';
import { registerPretrain } from './commands/pretrain.ts';
import { registerLeaderboard } from './commands/leaderboard.ts';
import { registerRun } from './commands/run.ts';
import { registerDemo } from './commands/demo.ts';
import { registerSweep } from './commands/sweep.ts';
import { registerWorker } from './commands/worker.ts';
import { registerMergeShards } from './commands/merge-shards.ts';
import { VLBENCH_VERSION } from '../core/version.ts';

/**
 * The `vlbench` command. Each subcommand lives in cli/commands/<name>.ts and registers
 * itself here; errors a user can fix print as one line (commander's own included: its message
 * already names the option and the allowed values), never a stack trace.
 */
export function buildProgram(): Command {
  const program = new Command('vlbench')
    .description('Benchmark harness for vision-language models (VQA, GQA, VCR, image-text retrieval)')
    .version(VLBENCH_VERSION)
    // Subcommands with their own --task/--db/--seed (leaderboard add) must receive them.
    .enablePositionalOptions()
    .exitOverride();
  for (const register of [registerEnv, registerSynth, registerScore, registerEncode, registerPretrain, registerRun, registerLeaderboard, registerDemo, registerSweep, registerWorker, registerMergeShards]) {
    register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // In-process callers (tests, scripts) must not inherit the exit code of an earlier command.
  process.exitCode = undefined;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (error) {
    return reportError(error);
  }
}

/** Exit codes: 0 done, 1 regression (compare), 2 bad input or not comparable, 3 a bug in vlbench. */
export const EXIT_INTERNAL_ERROR = 3;

function reportError(error: unknown): number {
  if (error instanceof CommanderError) {
    // commander has already printed its message (unknown option, missing argument, help).
    return error.exitCode === 0 ? 0 : 2;
  }
  if (error instanceof InputError) {
    process.stderr.write(`vlbench: error: ${error.message}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`vlbench: internal error: ${message}\n`);
  if (process.env.VLBENCH_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  else process.stderr.write('vlbench: set VLBENCH_DEBUG=1 for the stack trace, and please report it.\n');
  // Not 1: `vlbench compare` exits 1 for a regression, and a crash must not read as one.
  return EXIT_INTERNAL_ERROR;
}
