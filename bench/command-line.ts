/**
 * The command line of the bench scripts, parsed the way a user trying one expects: `--help` (or
 * `-h`) prints its usage and exits 0; an unknown flag, a flag without its value, or a value the
 * script refuses gets one line and exit 2, never node's stack trace. A thin layer on
 * node:util's parseArgs, which throws on all of those.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type FlagOptions = NonNullable<ParseArgsConfig['options']>;

export interface BenchCommandLine {
  /** `npx tsx bench/<script>.ts [flags]`, printed by --help and after every refusal. */
  usage: string;
  /** Prints `bench/<script>: message` and the usage, exits 2. */
  refuse(message: string): never;
}

export function parseBenchArguments<T extends FlagOptions>(usage: string, options: T): BenchCommandLine & { values: ReturnType<typeof parseArgs<{ options: T }>>['values'] } {
  const script = usage.match(/bench\/[\w-]+/)?.[0] ?? 'bench';
  const refuse = (message: string): never => {
    process.stderr.write(`${script}: ${message}\nusage: ${usage}\n`);
    process.exit(2);
  };
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  try {
    return { usage, refuse, values: parseArgs({ args, options, strict: true, allowPositionals: false }).values as ReturnType<typeof parseArgs<{ options: T }>>['values'] };
  } catch (error) {
    return refuse((error as Error).message);
  }
}
