import { Command, CommanderError, Help } from 'commander';
import { InputError } from '../core/errors.ts';
import { VLBENCH_VERSION } from '../core/version.ts';
import { COMMAND_MODULES } from './command-list.ts';
import { COMMAND_SUMMARIES } from './command-summaries.ts';
import type { ScoreFlags } from '../harness/score-files.ts';
import type { ScoreReport } from '../core/types.ts';

/**
 * The `vlbench` command. Each subcommand lives in cli/commands/<name>.ts and registers
 * itself here; errors a user can fix print as one line (commander's own included: its message
 * already names the option and the allowed values), never a stack trace.
 *
 * Only the module of the command that argv names is imported (commands load tfjs,
 * transformers.js, sharp and the stores); every other command is a stand-in with its --help
 * line from cli/command-summaries.ts, so `vlbench --help` and `--version` start at once.
 * `{ all: true }` registers every command for real (what the stand-ins are tested against).
 */
export async function buildProgram(argv: readonly string[] = [], options: { all?: boolean } = {}): Promise<Command> {
  const selected = selectedCommand(argv);
  const standIns = new Map<Command, string>();
  const program = new Command('vlbench')
    .description('Benchmark harness for vision-language models (VQA, GQA, VCR, image-text retrieval)')
    .version(VLBENCH_VERSION)
    // Subcommands with their own --task/--db/--seed (leaderboard add) must receive them.
    .enablePositionalOptions()
    .exitOverride()
    .configureHelp({
      // A stand-in has no options or arguments of its own: its term in --help is the real one.
      subcommandTerm(command) {
        return standIns.get(command) ?? Help.prototype.subcommandTerm.call(this, command);
      },
    });
  for (const module of COMMAND_MODULES) {
    if (options.all || (selected !== undefined && (module.commands as readonly string[]).includes(selected))) {
      (await module.load())(program);
      continue;
    }
    for (const name of module.commands) {
      const summary = COMMAND_SUMMARIES[name];
      const standIn = program.command(name).description(summary.description);
      standIns.set(standIn, `${name} [options]${summary.arguments ? ` ${summary.arguments}` : ''}`);
    }
  }
  return program;
}

/**
 * The command argv runs or asks help for: its first word that is not an option (the root
 * program's options, --help and --version, take no value), or the one after `help`.
 */
function selectedCommand(argv: readonly string[]): string | undefined {
  const words = argv.filter((word) => !word.startsWith('-'));
  return words[0] === 'help' ? words[1] : words[0];
}

export async function main(argv: string[]): Promise<number> {
  // In-process callers (tests, scripts) must not inherit the exit code of an earlier command.
  process.exitCode = undefined;
  try {
    const program = await buildProgram(argv);
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

/**
 * `vlbench score` from code: the same flags (camel-cased: `perQuestion` for --per-question),
 * the same checks and errors (InputError naming the file and field), and the full report,
 * whose `official` member is what the command prints. Loaded on first call, as the command is.
 */
export async function score(request: ScoreFlags): Promise<ScoreReport> {
  const { runScore } = await import('../harness/score-files.ts');
  return runScore(request);
}

export type { ScoreFlags as ScoreRequest };
