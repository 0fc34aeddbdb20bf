import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RUN_TASKS } from '../../harness/run.ts';
import { checkTaskLossSettings, TASK_LOSS_OF_TASK } from '../../harness/preflight.ts';
import { parseMethodSpec } from '../../models/objectives/index.ts';
import { generateSynthScenes } from '../../tasks/synth/index.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { freePort } from '../scaleout/servers.ts';

// `vlbench run` refuses bad input before any work (issue 30, "fail fast, fail clearly, lose
// nothing"): exit 2, one line, no model loaded (the backend line is never printed), no run folder,
// nothing recorded. Serial: the in-process CLI captures the process's stdout and stderr.

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let folder = '';
let data = '';
const immutable: string[] = [];

test.before(async () => {
  folder = await mkdtemp(join(tmpdir(), 'vlbench-refuse-'));
  data = join(folder, 'synth');
  await generateSynthScenes({ outDir: data, images: 16, seed: 5, size: 32 });
});
test.after.always(async () => {
  for (const dir of immutable) await promisify(execFile)('chattr', ['-i', dir]).catch(() => undefined);
  if (folder) await rm(folder, { recursive: true, force: true });
});

/** A run that would train (the data and model exist) unless something is refused first. */
const runArgs = (out: string, ...extra: string[]) => ['run', '--task', 'vqa', '--method', 'ft', '--data', data, '--model', fixtureModel, '--epochs', '1', '--backend', 'wasm', '--out', out, ...extra];

async function refused(t: import('ava').ExecutionContext, args: string[]): Promise<string> {
  const started = performance.now();
  const result = await vlbench(args);
  const seconds = (performance.now() - started) / 1000;
  t.is(result.code, 2, result.stderr);
  t.is(result.stdout, '');
  // One line: the error. The backend line a run prints before it loads the model never came.
  t.is(result.stderr.split('\n').filter((line) => line !== '').length, 1, result.stderr);
  t.true(seconds < 10, `refused after ${seconds.toFixed(1)} s`);
  return result.stderr;
}

async function folderContents(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
}

test.serial('run --db postgres://… with nothing listening exits 2 naming the URL, before the model loads, within 10 s; no run folder', async (t) => {
  const out = join(folder, 'runs-unreachable');
  const url = `postgres://vlbench@127.0.0.1:${await freePort()}/nothing`;
  const stderr = await refused(t, runArgs(out, '--db', url));
  t.regex(stderr, new RegExp(`^vlbench: error: ${url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot reach the leaderboard database: .*ECONNREFUSED`));
  t.deepEqual(await folderContents(out), [], 'nothing written: the run would otherwise have trained and lost its result at the record');
});

test.serial('run --db pointing at a CSV file exits 2 before training and leaves the file as it was', async (t) => {
  const out = join(folder, 'runs-csv');
  const csv = join(folder, 'results.csv');
  await writeFile(csv, 'name,accuracy\nbaseline,61.2\n');
  const stderr = await refused(t, runArgs(out, '--db', csv));
  t.regex(stderr, /results\.csv: not a SQLite database \(wrong header\); refusing to touch it/);
  t.is(await readFile(csv, 'utf8'), 'name,accuracy\nbaseline,61.2\n');
  t.deepEqual(await folderContents(out), []);
});

test.serial('run --set mc.labelSmoothing on VQA (a VCR loss setting) is refused by name, not silently ignored', async (t) => {
  const out = join(folder, 'runs-foreign-setting');
  const stderr = await refused(t, runArgs(out, '--no-record', '--set', 'mc.labelSmoothing=0.1'));
  t.is(stderr, 'vlbench: error: field "--set": setting mc.labelSmoothing given, but vqa trains with the bce loss; it would be ignored\n');
  t.deepEqual(await folderContents(out), []);
});

test('task loss settings are refused where the run does not train that loss, and accepted where it does', (t) => {
  t.notThrows(() => checkTaskLossSettings('vcr', parseMethodSpec('ft'), { 'mc.labelSmoothing': '0.1' }));
  t.notThrows(() => checkTaskLossSettings('retrieval', parseMethodSpec('ft'), { 'infonce.maxLogitScale': '50', lr: '0.01' }));
  t.throws(() => checkTaskLossSettings('gqa', parseMethodSpec('ft+adv'), { 'infonce.learnableScale': 'false', 'mc.labelSmoothing': '0.1' }), {
    message: 'field "--set": setting infonce.learnableScale, mc.labelSmoothing given, but gqa trains with the bce loss; it would be ignored',
  });
  t.throws(() => checkTaskLossSettings('retrieval', parseMethodSpec('zeroshot'), { 'infonce.maxLogitScale': '50' }), { message: /--method zeroshot trains nothing/ });
  // Every task a run can train says which loss it trains, so a new one cannot skip the check unnoticed.
  for (const task of RUN_TASKS) t.truthy(TASK_LOSS_OF_TASK[task], task);
});

test.serial('run --resume of a folder whose request.json is cut off: exit 2 naming the file (was exit 3, "internal error"), the folder untouched', async (t) => {
  const partial = join(folder, 'runs-resume', '20250101-000000-vqa-ft-s0-1.partial');
  await mkdir(partial, { recursive: true });
  const cutOff = JSON.stringify({ task: 'vqa', dataDir: data, method: 'ft', sets: {}, seed: 0 }).slice(0, 40);
  await writeFile(join(partial, 'request.json'), cutOff);
  const stderr = await refused(t, ['run', '--resume', partial, '--no-record']);
  t.regex(stderr, new RegExp(`^vlbench: error: ${join(partial, 'request.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not a readable run request \\(cut off or edited\\?\\): .*JSON`));
  t.deepEqual(await folderContents(partial), ['request.json']);
  t.is(await readFile(join(partial, 'request.json'), 'utf8'), cutOff);
});

/** A folder nobody here can write in: chmod for a user, `chattr +i` for root (whom permission bits do not stop); null where neither works. */
async function readOnlyFolder(dir: string): Promise<string | null> {
  await mkdir(dir, { recursive: true });
  if (process.getuid?.() === 0) {
    const done = await promisify(execFile)('chattr', ['+i', dir]).then(() => true, () => false);
    if (done) immutable.push(dir);
  } else {
    await promisify(execFile)('chmod', ['555', dir]);
  }
  const writable = await mkdir(join(dir, 'probe')).then(() => true, () => false);
  return writable ? null : dir;
}

test.serial('run --out in a folder that cannot be written: exit 2 saying so (was exit 3, an EPERM internal error), before the model loads', async (t) => {
  const readOnly = await readOnlyFolder(join(folder, 'read-only'));
  if (!readOnly) {
    t.log('no way to make a read-only folder here (chattr or chmod); not checked');
    t.pass();
    return;
  }
  const stderr = await refused(t, runArgs(join(readOnly, 'runs'), '--no-record'));
  t.regex(stderr, /^vlbench: error: .*read-only\/runs, field "--out": cannot write here: .*read-only, where it would be created, is not writable \((EPERM|EACCES|EROFS)\)\n$/);
  t.deepEqual(await folderContents(readOnly), []);
});
