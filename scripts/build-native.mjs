#!/usr/bin/env node
// Builds native/tfjs-blas (BLAS kernels for the tfjs wasm backend, and vlbench_image.node, the
// image pipeline's resampling, which needs no BLAS) with node-gyp, as npm ships it. Run by `npm install` and by hand. It never fails: where the addon does not build
// (no compiler, no OpenBLAS headers, not Linux), vlbench runs on plain wasm, and the reason
// is left in native/tfjs-blas/build/status.json for `vlbench env` to report with its fix.
//
//   node scripts/build-native.mjs        (VLBENCH_SKIP_NATIVE=1 skips the build)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const addonDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'tfjs-blas');
const statusFile = join(addonDir, 'build', 'status.json');
const FIX = 'apt-get install -y libopenblas-dev';

function finish(ok, reason, log = '', fix = FIX) {
  mkdirSync(dirname(statusFile), { recursive: true });
  const image = imageStatus();
  const status = { ok, reason, fix: ok ? null : fix, image, node: process.version, builtAt: new Date().toISOString(), log: log.slice(-4000) };
  writeFileSync(statusFile, `${JSON.stringify(status, null, 2)}\n`);
  console.log(ok ? `vlbench: BLAS kernels for tfjs wasm built (${reason})` : `vlbench: BLAS kernels not built, vlbench will use plain wasm: ${reason}. To build them: ${fix} && node scripts/build-native.mjs`);
  console.log(image.ok ? `vlbench: native image resampling built (${image.reason})` : `vlbench: native image resampling not built, images are resampled in JavaScript (the same pixels, slower): ${image.reason}`);
  process.exit(0);
}

/** Whether vlbench_image.node (needing only a compiler, built alone where the BLAS target fails) was built and loads. */
function imageStatus() {
  const file = join(addonDir, 'build', 'Release', 'vlbench_image.node');
  if (!existsSync(file)) return { ok: false, reason: 'not built' };
  const check = spawnSync(process.execPath, ['-e', `if (typeof require(${JSON.stringify(file)}).resampleCrop !== 'function') process.exit(1)`], { encoding: 'utf8', timeout: 60_000 });
  if (check.status !== 0) return { ok: false, reason: `built, but it does not load: ${(check.stderr || '').split('\n').find((l) => l.trim()) ?? 'no resampleCrop'}` };
  return { ok: true, reason: 'native/tfjs-blas/build/Release/vlbench_image.node' };
}

/** The node-gyp that npm ships: npm names it while running install scripts, else it sits beside npm. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((file) => file && existsSync(file));
}

/** Why a failed build failed, in words a user can act on, and the install line that fixes it. */
function explain(log) {
  if (/cblas\.h.*No such file|fatal error: cblas\.h/.test(log)) return ['the OpenBLAS headers (cblas.h) are not installed', FIX];
  if (/cannot find -lopenblas/i.test(log)) return ['the OpenBLAS library (libopenblas) is not installed', FIX];
  if (/Could not find any Python/i.test(log)) return ['node-gyp needs Python 3, which is not installed', 'apt-get install -y python3'];
  if (/make: not found|not found: make|spawn make ENOENT/i.test(log)) return ['make is not installed', 'apt-get install -y build-essential'];
  if (/\b(cc|gcc|g\+\+|c\+\+): (command )?not found|spawn (cc|gcc) ENOENT/i.test(log)) return ['no C compiler is installed', 'apt-get install -y build-essential'];
  if (/node_api\.h.*No such file|gyp ERR!.*(download|tarball|ENOTFOUND|EAI_AGAIN)/is.test(log)) {
    return ["node-gyp found no Node.js headers (offline, point npm's nodedir at a folder holding include/node, e.g. `npm config set nodedir /usr`)", FIX];
  }
  const last = log.split('\n').reverse().find((line) => /error/i.test(line));
  return [`node-gyp failed${last ? `: ${last.trim().slice(0, 200)}` : ''}`, FIX];
}

function explainWithLog(log) {
  const [reason, fix] = explain(log);
  return [reason, log, fix];
}

if (process.env.VLBENCH_SKIP_NATIVE === '1') finish(false, 'skipped (VLBENCH_SKIP_NATIVE=1)');
if (process.platform !== 'linux') finish(false, `only built on Linux (this is ${process.platform})`);
const gyp = nodeGyp();
if (!gyp) finish(false, 'npm\'s node-gyp was not found next to this node');

const args = [gyp, 'rebuild', '--directory', addonDir];
// Offline, node-gyp can only use headers already on disk: npm passes its nodedir through the
// environment; otherwise use the headers installed with this node, when there are some.
const installedHeaders = resolve(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(installedHeaders, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${installedHeaders}`);
const build = spawnSync(process.execPath, args, { cwd: addonDir, encoding: 'utf8', timeout: 180_000 });
const log = `${build.stdout ?? ''}\n${build.stderr ?? ''}`;
if (build.error) finish(false, `node-gyp did not run: ${build.error.message}`, log);
if (build.status !== 0) {
  // The image addon needs no OpenBLAS: where the BLAS target failed, build it alone.
  if (existsSync(join(addonDir, 'build', 'Makefile'))) spawnSync('make', ['-C', join(addonDir, 'build'), 'vlbench_image', 'BUILDTYPE=Release'], { encoding: 'utf8', timeout: 180_000 });
  finish(false, ...explainWithLog(log));
}

// Built is not enough: the library must load (libopenblas present at run time, same ABI).
const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(addonDir, 'build', 'Release', 'tfjs_blas.node'))}).configure(1)`], { encoding: 'utf8', timeout: 60_000 });
if (check.status !== 0) finish(false, `built, but it does not load: ${(check.stderr || '').split('\n').find((l) => l.trim()) ?? 'unknown error'}`, log + check.stderr);
finish(true, 'native/tfjs-blas/build/Release/tfjs_blas.node');
