import test from 'ava';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TASK_NAMES } from '../../tasks/registry.ts';

// The floors of ../shared/DESIGN.md, kept by a test: core/ at the bottom; tasks/, models/ and
// leaderboard/ on it and never on each other; harness/ above them; cli/ on top, imported only by
// the CLI entry points. A floor may import its own folder and anything below it.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCE_FOLDERS = ['core', 'tasks', 'models', 'leaderboard', 'harness', 'cli'] as const;
type Floor = (typeof SOURCE_FOLDERS)[number];
const MAY_IMPORT: Record<Floor, readonly Floor[]> = {
  core: ['core'],
  tasks: ['core', 'tasks'],
  models: ['core', 'models'],
  leaderboard: ['core', 'leaderboard'],
  harness: ['core', 'tasks', 'models', 'leaderboard', 'harness'],
  cli: ['core', 'tasks', 'models', 'leaderboard', 'harness', 'cli'],
};

function sourceFiles(folder: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(folder)) {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) found.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) found.push(path);
  }
  return found;
}

/** Relative import specifiers of a file: static, re-exports, type-only and dynamic imports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers: string[] = [];
  const pattern = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|^import\s+['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const match of text.matchAll(pattern)) specifiers.push(match[1] ?? match[2] ?? match[3]);
  return specifiers;
}

function floorOf(path: string): Floor | undefined {
  const top = relative(ROOT, path).split('/')[0];
  return (SOURCE_FOLDERS as readonly string[]).includes(top) ? (top as Floor) : undefined;
}

const graph = new Map<string, string[]>();
for (const folder of SOURCE_FOLDERS) {
  for (const file of sourceFiles(join(ROOT, folder))) {
    graph.set(file, importsOf(file).map((specifier) => resolve(dirname(file), specifier)));
  }
}
const rel = (path: string) => relative(ROOT, path);

test('each floor imports only itself and the floors below it', (t) => {
  const violations: string[] = [];
  for (const [file, targets] of graph) {
    const from = floorOf(file)!;
    for (const target of targets) {
      const to = floorOf(target);
      if (to === undefined) {
        // index.ts at the root is the package's public face; nothing inside may lean on it.
        violations.push(`${rel(file)} imports ${rel(target)}, outside the floors`);
      } else if (!MAY_IMPORT[from].includes(to)) {
        violations.push(`${rel(file)} (${from}/) imports ${rel(target)} (${to}/)`);
      }
    }
  }
  t.deepEqual(violations, []);
});

test('only the CLI entry points import cli/', (t) => {
  const entryPoints = new Set(['cli/main.ts']);
  const offenders: string[] = [];
  for (const [file, targets] of graph) {
    if (floorOf(file) === 'cli') continue;
    for (const target of targets) if (floorOf(target) === 'cli' && !entryPoints.has(rel(target))) offenders.push(`${rel(file)} imports ${rel(target)}`);
  }
  t.deepEqual(offenders, []);
});

test('there is no import cycle', (t) => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const target of graph.get(file) ?? []) {
      if (!graph.has(target)) continue;
      if (state.get(target) === 'open') cycles.push([...stack.slice(stack.indexOf(target)), target].map(rel).join(' → '));
      else if (!state.has(target)) visit(target);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  t.deepEqual(cycles, []);
});

test('every import names a file that exists', (t) => {
  const missing: string[] = [];
  for (const [file, targets] of graph) for (const target of targets) if (!graph.has(target) && !target.endsWith('.json')) {
    try {
      statSync(target);
    } catch {
      missing.push(`${rel(file)} imports ${rel(target)}`);
    }
  }
  t.deepEqual(missing, []);
});

test('the package entry (index.ts) reaches cli/ only through the program', (t) => {
  const entry = join(ROOT, 'index.ts');
  const offenders = importsOf(entry)
    .map((specifier) => resolve(ROOT, specifier))
    .filter((target) => floorOf(target) === 'cli' && rel(target) !== 'cli/program.ts')
    .map(rel);
  t.deepEqual(offenders, []);
});

test('files a user keeps are written through the one atomic writer (core/atomic-write.ts)', (t) => {
  // A hand-rolled temp file + rename is how earlier code left temp files behind on failure.
  const offenders: string[] = [];
  for (const file of graph.keys()) {
    if (rel(file) === 'core/atomic-write.ts') continue;
    const text = readFileSync(file, 'utf8');
    if (/\.tmp[`'"]/.test(text) && /\brename\(/.test(text)) offenders.push(rel(file));
  }
  t.deepEqual(offenders, []);
});

// Inside tasks/, the files that serve every task: each task says where SynthScenes keeps its files (Task.synthScenes).
const TASK_NEUTRAL_IN_TASKS = new Set(['tasks/registry.ts', 'tasks/split-files.ts', 'tasks/synth/run-splits.ts']);

/** A comparison with, or a `case` of, one of `tasks` as a string literal: how code branches on a task name. */
function taskBranch(tasks: readonly string[]): RegExp {
  const names = tasks.map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  return new RegExp(`(?:===|!==)\\s*['"\`](?:${names})['"\`]|['"\`](?:${names})['"\`]\\s*(?:===|!==)|case\\s+['"\`](?:${names})['"\`]`);
}

test('outside tasks/ no code branches on a task name; in harness/adapters/ only a task\'s own adapter may name it', (t) => {
  // Everything else asks the task or its adapter (the demo too: its recipe per task is the
  // adapter's): a new dataset then needs no edit outside its own files (the shared
  // answer-classification core is the adapter of no task).
  const adapterTask = (path: string) => /^harness\/adapters\/([\w-]+)\.ts$/.exec(path)?.[1];
  const offenders: string[] = [];
  for (const path of [...graph.keys()].map(rel)) {
    if ((path.startsWith('tasks/') && !TASK_NEUTRAL_IN_TASKS.has(path))) continue;
    const own = adapterTask(path);
    const forbidden = TASK_NAMES.filter((name) => name !== own);
    if (taskBranch(forbidden).test(readFileSync(join(ROOT, path), 'utf8'))) offenders.push(path);
  }
  t.deepEqual(offenders, []);
});

test('the task-name check catches a branch in the shared answer-classification core', (t) => {
  const forbidden = TASK_NAMES;
  for (const branch of ["if (task === 'gqa') {", "case 'vcr':", "'vqa' !== kind", 'kind === "retrieval"']) t.true(taskBranch(forbidden).test(branch), branch);
  t.false(taskBranch(forbidden).test("task: 'vqaish',"));
  // Its own file may name its task; another task's file may not.
  t.false(taskBranch(TASK_NAMES.filter((name) => name !== 'vqa')).test("if (task === 'vqa')"));
  t.true(taskBranch(TASK_NAMES.filter((name) => name !== 'gqa')).test("if (task === 'vqa')"));
});
