import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const cli = ['--import', 'tsx', 'cli/main.ts'];

async function vlbench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return vlbenchWithEnvironment(process.env, ...args);
}

async function vlbenchWithEnvironment(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node', [...cli, ...args], { cwd: new URL('../..', import.meta.url).pathname, env });
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
  // Where images are resampled: natively where native/tfjs-blas is built, else why not.
  t.is(typeof env.imageResampling.native, 'boolean');
  t.is(typeof env.imageResampling.reason, 'string');
});

test('env names the OpenBLAS core type and where it came from: inherited as it is, forced, or chosen from the CPU flags when unset', async (t) => {
  // Each child gets its own explicit environment; this process's OPENBLAS_CORETYPE is never changed.
  const { OPENBLAS_CORETYPE: _inherited, VLBENCH_OPENBLAS_CORETYPE: _forced, ...base } = process.env;
  const openblas = async (env: NodeJS.ProcessEnv) => {
    const { code, stdout, stderr } = await vlbenchWithEnvironment(env, 'env', '--json', '--backend', 'cpu');
    t.is(code, 0, stderr);
    return JSON.parse(stdout).openblas as { coreType?: string; source: string; inherited?: string; from: string; loaded: boolean };
  };
  const [inherited, forced, unset] = await Promise.all([
    openblas({ ...base, OPENBLAS_CORETYPE: 'Sandybridge' }),
    openblas({ ...base, OPENBLAS_CORETYPE: 'Sandybridge', VLBENCH_OPENBLAS_CORETYPE: 'Nehalem' }),
    openblas(base),
  ]);
  t.is(inherited.source, 'inherited');
  t.is(inherited.coreType?.toLowerCase(), 'sandybridge', inherited.loaded ? 'OpenBLAS runs the inherited kernels' : 'the inherited value stands');
  t.regex(inherited.from, /^inherited from OPENBLAS_CORETYPE/);
  t.is(forced.source, 'forced');
  t.is(forced.coreType?.toLowerCase(), 'nehalem');
  t.is(forced.inherited, 'Sandybridge');
  t.regex(forced.from, /^forced by VLBENCH_OPENBLAS_CORETYPE/);
  t.true(['cpu flags', 'OpenBLAS detection'].includes(unset.source), unset.source);
  const { stdout } = await vlbenchWithEnvironment({ ...base, OPENBLAS_CORETYPE: 'Sandybridge' }, 'env', '--backend', 'cpu');
  t.regex(stdout, /^ {2}core type {6}\w+ \(inherited from OPENBLAS_CORETYPE.*\)$/m);
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
