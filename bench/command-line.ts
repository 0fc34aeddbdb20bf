/**
 * The command line of the bench scripts, parsed the way a user trying one expects: `--help` (or
 * `-h`) prints its usage and exits 0; an unknown flag, a flag without its value, or a value the
 * script refuses gets one line and exit 2, never node's stack trace. A thin layer on
 * node:util's parseArgs, which throws on all of those. Every bench script parses through here.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type FlagOptions = NonNullable<ParseArgsConfig['options']>;

export interface BenchCommandLine {
  /** `npx tsx bench/<script>.ts [flags]`, printed by --help and after every refusal. */
  usage: string;
  /** Prints `bench/<script>: message` and the usage, exits 2. */
  refuse(message: string): never;
  /** A whole number ≥ `min` (default 1) given to `flag`, or a refusal naming the flag and the value. */
  integer(flag: string, text: string, min?: number): number;
  /** Arguments that are not flags, where the script takes them (`positionals: true`). */
  positionals: string[];
}

export function parseBenchArguments<T extends FlagOptions>(usage: string, options: T, { positionals = false }: { positionals?: boolean } = {}): BenchCommandLine & { values: ReturnType<typeof parseArgs<{ options: T }>>['values'] } {
  const script = usage.match(/bench\/[\w-]+/)?.[0] ?? 'bench';
  const refuse = (message: string): never => {
    process.stderr.write(`${script}: ${message}\nusage: ${usage}\n`);
    process.exit(2);
  };
  const integer = (flag: string, text: string, min = 1): number => {
    const value = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
    return Number.isSafeInteger(value) && value >= min ? value : refuse(`${flag} expects a whole number ≥ ${min}, got ${JSON.stringify(text)}`);
  };
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  try {
    const parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals });
    return { usage, refuse, integer, positionals: parsed.positionals, values: parsed.values as ReturnType<typeof parseArgs<{ options: T }>>['values'] };
  } catch (error) {
    return refuse((error as Error).message);
  }
}
