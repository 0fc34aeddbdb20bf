import test from 'ava';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

// `vlbench run --config FILE`: the file spells the flags, the command line overrides it, and
// the run folder records the same request as the same run spelled in flags.

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
const temporaryDir = temporaryFolders(test);
let root = '';
let data = '';

test.before(async () => {
  root = await temporaryDir(join(tmpdir(), 'vlbench-run-file-'));
  data = join(root, 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

/** The one run folder under `out`: its recorded request and metrics. */
async function recorded(out: string): Promise<{ request: unknown; metrics: unknown }> {
  const folders = (await readdir(out)).filter((name) => !name.startsWith('.'));
  if (folders.length !== 1) throw new Error(`expected one run folder in ${out}, found ${folders.join(', ')}`);
  const read = async (file: string) => JSON.parse(await readFile(join(out, folders[0], file), 'utf8'));
  return { request: await read('request.json'), metrics: await read('metrics.json') };
}

test.serial('a run file with flags overriding it records the same run as the same request in flags', async (t) => {
  const flagsOut = join(root, 'runs-flags');
  const byFlags = await vlbench([
    'run', '--task', 'retrieval', '--method', 'ft', '--data', data, '--model', fixtureModel, '--seed', '1', '--epochs', '1',
    '--set', 'batch=4', '--set', 'lr=0.01', '--backend', 'wasm', '--out', flagsOut, '--db', join(root, 'flags.sqlite'),
  ]);
  t.is(byFlags.code, 0, byFlags.stderr);

  // The file sits in its own folder and names the data relative to it; its seed and lr are overridden.
  const folder = join(root, 'experiments');
  await mkdir(folder);
  const file = join(folder, 'run.yaml');
  await writeFile(file, [
    'task: retrieval',
    'method: ft',
    `data: ${relative(folder, data)}`,
    `model: ${fixtureModel}`,
    'seed: 7',
    'epochs: 1',
    'set:',
    '  batch: 4',
    '  lr: 0.5',
    'backend: wasm',
    'out: ../runs-file',
    '',
  ].join('\n'));
  const byFile = await vlbench(['run', '--config', file, '--seed', '1', '--set', 'lr=0.01', '--db', join(root, 'file.sqlite')]);
  t.is(byFile.code, 0, byFile.stderr);

  const [fromFlags, fromFile] = [await recorded(flagsOut), await recorded(join(root, 'runs-file'))];
  t.deepEqual(fromFile.request, fromFlags.request);
  t.deepEqual(fromFile.metrics, fromFlags.metrics);
  t.is((fromFile.request as { seed: number }).seed, 1, 'the command line\'s --seed won over the file\'s');
});

test.serial('a run file\'s unknown key is refused by name, before any work', async (t) => {
  const file = join(root, 'typo.yaml');
  await writeFile(file, `task: retrieval\nmethod: ft\ndata: ${data}\nepoch: 2\n`);
  const { code, stderr } = await vlbench(['run', '--config', file, '--no-record', '--out', join(root, 'runs-typo')]);
  t.is(code, 2);
  t.regex(stderr, /typo\.yaml, field "epoch": "epoch" is not a flag of vlbench run/);
  const wrongType = join(root, 'wrong-type.yaml');
  await writeFile(wrongType, `task: retrieval\nmethod: ft\ndata: ${data}\nbackend: gpu-please\n`);
  const refused = await vlbench(['run', '--config', wrongType, '--no-record']);
  t.is(refused.code, 2);
  t.regex(refused.stderr, /field "backend": expected one of auto, /);
});
