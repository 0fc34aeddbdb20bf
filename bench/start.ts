/**
 * How long `vlbench` takes to start: whole-process runs of `--help` and `--version`, compiled
 * (bin/vlbench.js, which runs dist/: what an installed package runs) and from the sources
 * through tsx's loader, beside `node -e 0` (node's own start). Each is run --runs times, the
 * cases interleaved; prints min and median wall time, median CPU time and median peak resident memory.
 * Build first: `npm run build`.
 *
 *   npx tsx bench/start.ts [--runs 10]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArguments } from './command-line.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values, refuse } = parseBenchArguments('npx tsx bench/start.ts [--runs N]', { runs: { type: 'string', default: '10' } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) refuse(`--runs must be a positive integer, got ${values.runs}`);
// The package's bin, which runs dist/cli/main.js.
const compiled = join(ROOT, 'bin', 'vlbench.js');
if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) refuse('dist/ is missing: run `npm run build` first');

const cases: { name: string; argv: string[] }[] = [
  { name: 'node -e 0', argv: ['-e', '0'] },
  { name: 'compiled --help', argv: [compiled, '--help'] },
  { name: 'compiled --version', argv: [compiled, '--version'] },
  { name: 'tsx --help', argv: ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), '--help'] },
  { name: 'tsx --version', argv: ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), '--version'] },
];

interface Sample {
  seconds: number;
  /** User + system CPU seconds: less sensitive than wall time to other load on the machine. */
  cpu: number | null;
  mib: number | null;
}

/** Wall seconds, CPU seconds and peak resident memory (MiB) of one whole process; the last two from /usr/bin/time when present. */
function once(argv: string[]): Sample {
  const timeTool = existsSync('/usr/bin/time');
  const start = process.hrtime.bigint();
  const result = timeTool
    ? spawnSync('/usr/bin/time', ['-f', '%U %S %M', process.execPath, ...argv], { cwd: ROOT, encoding: 'utf8' })
    : spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  const [user, system, kib] = timeTool ? (result.stderr.trim().split('\n').pop() ?? '').split(' ').map(Number) : [NaN, NaN, NaN];
  return { seconds, cpu: Number.isFinite(user + system) ? user + system : null, mib: Number.isFinite(kib) ? kib / 1024 : null };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const samples = new Map(cases.map((c) => [c.name, [] as Sample[]]));
for (const c of cases) once(c.argv); // warm the file cache: "cold" means a new process, not a cold disk
// Interleaved, so a burst of load elsewhere on the machine spreads over every case.
for (let run = 0; run < runs; run++) for (const c of cases) samples.get(c.name)!.push(once(c.argv));

process.stdout.write(`${runs} runs each, node ${process.version}\n`);
process.stdout.write(`${'case'.padEnd(20)} ${'min s'.padStart(7)} ${'median s'.padStart(9)} ${'median CPU s'.padStart(13)} ${'median MiB'.padStart(11)}\n`);
const medianOf = (values: (number | null)[], digits: number) => {
  const known = values.filter((x): x is number => x !== null);
  return known.length ? median(known).toFixed(digits) : '-';
};
for (const c of cases) {
  const s = samples.get(c.name)!;
  const wall = s.map((x) => x.seconds);
  process.stdout.write(
    `${c.name.padEnd(20)} ${Math.min(...wall).toFixed(3).padStart(7)} ${median(wall).toFixed(3).padStart(9)} ${medianOf(s.map((x) => x.cpu), 2).padStart(13)} ${medianOf(s.map((x) => x.mib), 0).padStart(11)}\n`,
  );
}
