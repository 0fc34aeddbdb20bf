import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const cli = ['--import', 'tsx', 'cli/main.ts'];

async function vlbench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node', [...cli, ...args], { cwd: new URL('../..', import.meta.url).pathname });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('env --json says which backend auto picks, and the versions', async (t) => {
  const { code, stdout } = await vlbench('env', '--json');
  t.is(code, 0);
  const env = JSON.parse(stdout);
  t.not(env.backend, 'cpu');
  t.is(typeof env.versions.tfjs, 'string');
  t.is(env.versions.node, process.versions.node);
});

test('an unknown option exits 2 with a one-line error and no stack trace', async (t) => {
  const { code, stderr } = await vlbench('env', '--bogus');
  t.is(code, 2);
  t.regex(stderr, /unknown option '--bogus'/);
  t.notRegex(stderr, /at .*\.ts:\d+/);
});

test('a bad option value exits 2 with a one-line error', async (t) => {
  const { code, stderr } = await vlbench('env', '--backend', 'gpu');
  t.is(code, 2);
  t.is(stderr.trim().split('\n').length, 1);
});

test('demo --epochs takes one number for every task or task=N pairs, and refuses anything else before any work', async (t) => {
  const { parseDemoEpochs } = await import('../../cli/commands/demo.ts');
  t.deepEqual(parseDemoEpochs('5'), { vqa: 5, vcr: 5, retrieval: 5 });
  t.deepEqual(parseDemoEpochs('vqa=40, vcr=3'), { vqa: 40, vcr: 3 });
  t.throws(() => parseDemoEpochs('gqa=3'), { message: /task=N/ });
  t.throws(() => parseDemoEpochs('vqa=0'), { message: /positive integer/ });
  const { code, stderr } = await vlbench('demo', '--out', 'tmp/never-made', '--methods', 'ft+bogus');
  t.is(code, 2);
  t.regex(stderr, /unknown objective "bogus"/);
  t.false(existsSync(new URL('../../tmp/never-made', import.meta.url)), 'no data generated for a run that cannot start');
});
