import test from 'ava';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/program.ts';
import { readSynthManifest } from '../../tasks/synth/index.ts';

let scratch = '';
test.before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'synth-cli-'));
});
test.after.always(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Runs `vlbench <argv>` in-process and returns its exit code and output. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
    process.exitCode = undefined;
  }
}

test.serial('synth writes a benchmark and prints counts per domain and split', async (t) => {
  const out = join(scratch, 'bench');
  const { code, stdout, stderr } = await run(['synth', '--out', out, '--images', '12', '--seed', '4', '--size', '64']);
  t.is(code, 0, stderr);
  t.is(stderr, '');
  t.regex(stdout, /^SynthScenes .*seed 4, 64 px/);
  t.regex(stdout, /source\s+train\s+8\s/);
  t.regex(stdout, /target\s+test\s+2\s/);
  t.regex(stdout, /total\s+24\s/);
  t.regex(stdout, /24 images in [\d.]+ s \(\d+ images\/s\)/);
  const manifest = await readSynthManifest(out);
  t.deepEqual(manifest.options, { images: 12, size: 64, domains: ['source', 'target'] });

  const again = await run(['synth', '--out', out, '--images', '12', '--size', '64']);
  t.is(again.code, 2);
  t.regex(again.stderr, /^vlbench: error: .*bench: folder is not empty; pass --force to replace it\n$/);

  const forced = await run(['synth', '--out', out, '--images', '3', '--size', '32', '--domains', 'target', '--force']);
  t.is(forced.code, 0, forced.stderr);
  t.deepEqual((await readSynthManifest(out)).options, { images: 3, size: 32, domains: ['target'] });
});

test.serial('bad options exit with code 2 and a one-line message naming the option', async (t) => {
  const out = join(scratch, 'unused');
  for (const [argv, pattern] of [
    [['--images', '2'], /--images"?: expected a whole number from 3/],
    [['--images', '12x'], /--images"?: expected a whole number/],
    [['--seed', '-3'], /--seed"?: expected a whole number/],
    [['--size', '4096'], /--size"?: expected a whole number from 32 to 1024/],
    [['--domains', 'source,mars'], /--domains: expected a comma-separated list of source, target/],
    [['--domains', 'target,target'], /--domains/],
    [['--colour', 'red'], /unknown option '--colour'/],
  ] as const) {
    const { code, stderr } = await run(['synth', '--out', out, ...argv]);
    t.is(code, 2, argv.join(' '));
    t.regex(stderr, pattern);
    t.false(stderr.includes('    at '), 'no stack trace');
  }
  const missing = await run(['synth', '--images', '12']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /required option '--out <dir>'/);
  t.deepEqual(await readdir(scratch).then((names) => names.filter((name) => name.includes('unused'))), []);
});

test.serial('an --out that is a file, or a folder that is not SynthScenes, is refused even with --force', async (t) => {
  const file = join(scratch, 'a-file');
  await writeFile(file, 'x');
  const onFile = await run(['synth', '--out', file, '--images', '3']);
  t.is(onFile.code, 2);
  t.regex(onFile.stderr, /a-file: exists and is not a folder/);

  const folder = join(scratch, 'photos');
  await mkdir(folder);
  await writeFile(join(folder, 'holiday.jpg'), 'x');
  const forced = await run(['synth', '--out', folder, '--images', '3', '--force']);
  t.is(forced.code, 2);
  t.regex(forced.stderr, /not a SynthScenes folder.*refusing to replace it/);
  t.deepEqual(await readdir(folder), ['holiday.jpg']);
});
