import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { temporaryFolders } from '../support/temporary-folders.ts';

/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), then
 * `npm install` of the tarball into an empty project, with no ONNXRUNTIME_NODE_INSTALL or
 * other install setting inherited from this run (a consumer's install must not depend on
 * them), reaching nothing but the npm registry npm is configured with. From there: the
 * `vlbench` binary, a JavaScript file importing the API, and a TypeScript file (and the JavaScript
 * examples) type-checked against the shipped declarations.
 */
const exec = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const temporaryDir = temporaryFolders(test);

/**
 * This process's environment without npm's per-run variables and the ONNX Runtime opt-out.
 * The Node.js headers' folder stays: it belongs to the machine, not to this project, and on
 * .ci/run's Node 22 and 24 it is what builds the native addons for the node that runs them.
 */
function consumerEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if ((/^npm_/i.test(key) && key.toLowerCase() !== 'npm_config_nodedir') || /^ONNXRUNTIME_NODE_INSTALL/.test(key) || key === 'INIT_CWD') continue;
    env[key] = value;
  }
  return env;
}

async function sh(file: string, args: string[], cwd: string, timeout = 15 * 60_000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await exec(file, args, { cwd, env: consumerEnvironment(), timeout, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const e = error as { message: string; stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${(e.stderr ?? '').slice(-4000)}`);
  }
}

test.serial('the packed tarball installs into an empty project and runs its CLI and its API from JavaScript and TypeScript', async (t) => {
  t.timeout(25 * 60_000);
  const packDir = await temporaryDir(join(tmpdir(), 'vlbench-pack-'));
  const consumer = await temporaryDir(join(tmpdir(), 'vlbench-consumer-'));

  const packed = JSON.parse((await sh('npm', ['pack', '--json', '--pack-destination', packDir], ROOT)).stdout) as { filename: string; files: { path: string }[] }[];
  const files = packed[0].files.map((file) => file.path);
  t.true(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('dist/cli/main.js'), 'the compiled API and CLI are in the tarball');
  t.true(files.includes('models/bundled/synthscenes-clip/model.safetensors'), 'the bundled model is in the tarball');
  t.false(files.some((file) => file.startsWith('test/') || file.startsWith('native/tfjs-blas/build/')), 'no tests and no build output of this machine');

  writeFileSync(join(consumer, 'package.json'), `${JSON.stringify({ name: 'vlbench-consumer', private: true, type: 'module' }, null, 2)}\n`);
  await sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(packDir, packed[0].filename)], consumer);
  const installed = join(consumer, 'node_modules', 'vlbench');
  // Present where onnxruntime-node's install could download its CUDA provider, left out where not.
  t.log(`optional ONNX engine (transformers.js): ${existsSync(join(consumer, 'node_modules', '@huggingface', 'transformers')) ? 'installed' : 'left out by npm'}`);
  t.true(existsSync(join(installed, 'dist', 'index.js')));
  // vlbench's own install script ran there: it built the BLAS addon or said why not.
  t.true(existsSync(join(installed, 'native', 'tfjs-blas', 'build', 'status.json')));

  const bin = join(consumer, 'node_modules', '.bin', 'vlbench');
  const help = (await sh(bin, ['--help'], consumer)).stdout;
  const sourceHelp = (await sh(process.execPath, ['--import', 'tsx', 'cli/main.ts', '--help'], ROOT)).stdout;
  t.is(help, sourceHelp, 'the installed binary prints the help the sources print');
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  t.is((await sh(bin, ['--version'], consumer)).stdout.trim(), version);

  // The CLI from the install: generate a benchmark, then score the example's predictions with it.
  const cliData = join(consumer, 'cli-data');
  await sh(bin, ['synth', '--out', cliData, '--images', '20', '--size', '64', '--domains', 'source'], consumer);
  t.true(existsSync(join(cliData, 'manifest.json')));

  // The JavaScript example of docs/api.md, importing 'vlbench' as a user's script does.
  copyFileSync(join(ROOT, 'docs', 'examples', 'score-predictions.js'), join(consumer, 'score-predictions.js'));
  const apiData = join(consumer, 'api-data');
  const lines = (await sh(process.execPath, ['score-predictions.js', apiData], consumer)).stdout.trim().split('\n').map((line) => JSON.parse(line));
  const [{ questions, official }, { refused }] = lines;
  t.true(questions > 0);
  t.is(typeof official.overall, 'number');
  t.true(official.overall >= 0 && official.overall <= 100);
  t.is(refused, join(apiData, 'missing.json'));
  // The generator is seeded: the CLI's folder and the API's hold the same questions, so
  // `vlbench score` on the example's predictions prints the report the API returned.
  const scored = await sh(bin, ['score', '--task', 'vqa', '--questions', join(cliData, 'vqa', 'v2_OpenEnded_synthscenes_test_source_questions.json'),
    '--annotations', join(cliData, 'vqa', 'v2_synthscenes_test_source_annotations.json'), '--predictions', join(apiData, 'yes-predictions.json')], consumer);
  t.deepEqual(JSON.parse(scored.stdout), official);

  // TypeScript users get the declarations: a typed call checks, a wrong one is refused.
  writeFileSync(join(consumer, 'typed.ts'), [
    "import { score, InputError, type ScoreReport } from 'vlbench';",
    "const report: Promise<ScoreReport> = score({ task: 'vqa', predictions: 'p.json' });",
    '// @ts-expect-error: task is a string',
    'void score({ task: 1 });',
    "const error: InputError = new InputError('bad', { file: 'f.json', field: 'answer' });",
    'void report; void error;',
    '',
  ].join('\n'));
  // The run-and-compare example of docs/api.md takes minutes to run: it is type-checked here.
  copyFileSync(join(ROOT, 'docs', 'examples', 'run-and-compare.js'), join(consumer, 'run-and-compare.js'));
  writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, allowJs: true, checkJs: true,
      skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
    },
    files: ['typed.ts', 'run-and-compare.js', 'score-predictions.js'],
  }));
  await sh(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', consumer], consumer);
});
