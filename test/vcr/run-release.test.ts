import test from 'ava';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/program.ts';
import { runScore } from '../../harness/score-files.ts';
import { vcrTask } from '../../tasks/vcr/index.ts';

/**
 * `vlbench run` on VCR in the release layout (test/fixtures/vcr-release: vcr1annots/ beside
 * vcr1images/). --data is the folder both zips unpack into; --train-split and --split name
 * vcr1annots/<split>.jsonl.
 */
const release = join(import.meta.dirname, '..', 'fixtures', 'vcr-release');
const dir = mkdtempSync(join(tmpdir(), 'vlbench-vcr-run-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function runArgs(data: string, out: string): string[] {
  return ['run', '--task', 'vcr', '--data', data, '--train-split', 'train', '--split', 'val', '--method', 'ft', '--epochs', '1',
    '--backend', 'wasm', '--out', out, '--db', join(dir, 'leaderboard.sqlite'), '--json'];
}

/** Runs the CLI in process, keeping what it writes to stdout and stderr. */
async function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const written = { stdout: '', stderr: '' };
  const original = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
  process.stdout.write = ((chunk: string | Uint8Array) => ((written.stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((written.stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, ...written };
  } finally {
    process.stdout.write = original.stdout;
    process.stderr.write = original.stderr;
  }
}

test.serial('vlbench run trains and predicts on the release layout; its predictions score the same from the annotations alone', async (t) => {
  const out = join(dir, 'runs');
  const { code, stderr } = await runCli(runArgs(release, out));
  t.is(code, 0, stderr);
  const [runFolder] = readdirSync(out).filter((name) => !name.startsWith('.') && !name.endsWith('.partial'));
  const scored = JSON.parse(readFileSync(join(out, runFolder, 'scores', 'val.json'), 'utf8')) as { split: string; official: unknown };
  t.is(scored.split, 'val');

  // A submitter with only vcr1annots/ scores the run's CSV to the same numbers, on the same split fingerprint.
  const labelsOnly = join(dir, 'labels-only');
  mkdirSync(join(labelsOnly, 'vcr1annots'), { recursive: true });
  cpSync(join(release, 'vcr1annots', 'val.jsonl'), join(labelsOnly, 'vcr1annots', 'val.jsonl'));
  const report = await runScore({ task: 'vcr', annotations: join(labelsOnly, 'vcr1annots', 'val.jsonl'), predictions: join(out, runFolder, 'predictions', 'val.csv') });
  t.deepEqual(report.official, scored.official);
  const full = await vcrTask.load({ split: 'val', dataDir: release });
  const annotationsOnly = await vcrTask.load({ split: 'val', dataDir: labelsOnly });
  t.is(annotationsOnly.fingerprint, full.fingerprint);
});

// The VCR adapter calls checkVcrImageData on every split before any image is encoded (vcrAdapter.imagesOf).
test.serial('vlbench run on the annotations alone stops before training with exit 2, saying what is missing', async (t) => {
  const labelsOnly = join(dir, 'annotations-only');
  mkdirSync(join(labelsOnly, 'vcr1annots'), { recursive: true });
  for (const split of ['train', 'val']) cpSync(join(release, 'vcr1annots', `${split}.jsonl`), join(labelsOnly, 'vcr1annots', `${split}.jsonl`));
  const { code, stderr } = await runCli(runArgs(labelsOnly, join(dir, 'runs-annotations-only')));
  t.is(code, 2);
  t.regex(stderr, /vcr1annots\/train\.jsonl, record "train-0": VCR split "train": 4 of 4 examples have no metadata json/);
  t.regex(stderr, /Training and prediction need every image and its metadata json \(boxes\) under vcr1images\//);
});
