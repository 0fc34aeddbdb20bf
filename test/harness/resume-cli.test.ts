import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';

// Resume, tested so that it can fail: the predictions depend on the training (asserted), the
// first run is killed with SIGKILL through the CLI after a checkpoint, `vlbench run --resume`
// finishes it, and its predictions equal an uninterrupted run's bit for bit.

const root = new URL('../..', import.meta.url).pathname;
const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
const cli = ['--import', 'tsx', 'cli/main.ts'];
let data = '';

test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-resume-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 4, size: 32 });
});

const runArgs = (out: string, epochs: number) => [
  'run', '--task', 'retrieval', '--method', 'ft', '--data', data, '--model', fixtureModel, '--seed', '2', '--epochs', String(epochs),
  '--set', 'batch=4', '--set', 'checkpoint_every=5', '--set', 'lr=0.01', '--backend', 'wasm', '--out', out, '--no-record',
];

async function vlbench(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await promisify(execFile)('node', [...cli, ...args], { cwd: root });
    return { code: 0, stderr: '' };
  } catch (error) {
    return { code: (error as { code: number }).code, stderr: (error as { stderr: string }).stderr };
  }
}

/** Starts a run and kills it with SIGKILL as soon as its first checkpoint is on disk. */
async function killAfterFirstCheckpoint(out: string, epochs: number): Promise<string> {
  const child = spawn('node', [...cli, ...runArgs(out, epochs)], { cwd: root, stdio: 'ignore' });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  for (;;) {
    const partial = existsSync(out) ? (await readdir(out)).find((name) => name.endsWith('.partial')) : undefined;
    if (partial && existsSync(join(out, partial, 'checkpoint', 'checkpoint.json'))) {
      child.kill('SIGKILL');
      await exited;
      return join(out, partial);
    }
    if (child.exitCode !== null) throw new Error('the run finished before it could be killed: give it more epochs');
    await new Promise((wait) => setTimeout(wait, 5));
  }
}

const predictionFiles = async (runDir: string) => (await readdir(join(runDir, 'predictions'))).sort();

test('a run killed with SIGKILL after a checkpoint resumes through the CLI to bit-identical predictions', async (t) => {
  const epochs = 30;
  const straightOut = await mkdtemp(join(tmpdir(), 'vlbench-straight-'));
  t.is((await vlbench(runArgs(straightOut, epochs))).code, 0);
  const [straight] = (await readdir(straightOut)).filter((name) => !name.startsWith('.'));

  // The predictions depend on the training: the untrained (zero-shot) similarities differ.
  const zeroShotOut = await mkdtemp(join(tmpdir(), 'vlbench-zeroshot-'));
  t.is((await vlbench(['run', '--task', 'retrieval', '--method', 'zeroshot', '--data', data, '--model', fixtureModel, '--backend', 'wasm', '--out', zeroShotOut, '--no-record'])).code, 0);
  const [zeroShot] = (await readdir(zeroShotOut)).filter((name) => !name.startsWith('.'));
  const files = await predictionFiles(join(straightOut, straight));
  t.deepEqual(files, ['test_source.npy', 'test_target.npy']);
  for (const file of files) {
    t.notDeepEqual(await readFile(join(straightOut, straight, 'predictions', file)), await readFile(join(zeroShotOut, zeroShot, 'predictions', file)), `${file} depends on training`);
  }

  const killedOut = await mkdtemp(join(tmpdir(), 'vlbench-killed-'));
  const partial = await killAfterFirstCheckpoint(killedOut, epochs);
  const checkpoint = JSON.parse(await readFile(join(partial, 'checkpoint', 'checkpoint.json'), 'utf8')) as { step: number };
  t.true(checkpoint.step > 0 && checkpoint.step < (epochs * 14) / 4, `killed mid-training at step ${checkpoint.step}`);

  const resumed = await vlbench(['run', '--resume', partial]);
  t.is(resumed.code, 0, resumed.stderr);
  const finalDir = partial.replace(/\.partial$/, '');
  t.false(existsSync(partial));
  for (const file of files) {
    t.deepEqual(await readFile(join(finalDir, 'predictions', file)), await readFile(join(straightOut, straight, 'predictions', file)), file);
  }
});

test('resuming with a changed setting is refused, naming the setting', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'vlbench-resume-changed-'));
  const request: RunRequest = { task: 'vqa', dataDir: data, modelDir: fixtureModel, method: 'ft', sets: { batch: '4', checkpoint_every: '2' }, seed: 1, epochs: 2, backend: 'wasm' };
  await t.throwsAsync(executeRun(request, { db: null, runsDir: out, interruptAfterStep: 3, log: () => undefined }), { message: /interrupted after step 3/ });
  const partial = (await readdir(out)).find((name) => name.endsWith('.partial'))!;
  const resumeDir = join(out, partial);
  await t.throwsAsync(executeRun({ ...request, sets: { ...request.sets, lr: '0.01' } }, { db: null, runsDir: out, resumeDir, log: () => undefined }), {
    message: /changed: --set lr \(default → 0\.01\)/,
  });
  await t.throwsAsync(executeRun({ ...request, method: 'ft+mmd' }, { db: null, runsDir: out, resumeDir, log: () => undefined }), { message: /changed: method \("ft" → "ft\+mmd"\)/ });
  // How often checkpoints are written does not change the result: accepted.
  const outcome = await executeRun({ ...request, sets: { ...request.sets, checkpoint_every: '1' } }, { db: null, runsDir: out, resumeDir, log: () => undefined });
  t.is(outcome.training!.resumedFromStep, 2);
});
