import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { buildProgram } from '../../cli/program.ts';
import { COMMAND_MODULES } from '../../cli/command-list.ts';
import { COMMAND_SUMMARIES } from '../../cli/command-summaries.ts';
import { tmpdir } from 'node:os';
import { temporaryFolders } from '../support/temporary-folders.ts';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const temporaryDir = temporaryFolders(test);

/** The help commander prints for argv, from a program built for argv (stand-ins) or with every command loaded. */
async function helpText(argv: string[], all: boolean): Promise<string> {
  const program = await buildProgram(argv, { all });
  let command: Command = program;
  for (const word of argv) command = command.commands.find((sub) => sub.name() === word) ?? command;
  return command.helpInformation();
}

test('vlbench --help lists every command as it did when every command was loaded', async (t) => {
  t.is(await helpText([], false), await helpText([], true));
  // Widths change the wrapping; the stand-ins must wrap as the real commands do.
  const narrow = async (all: boolean) => (await buildProgram([], { all })).configureOutput({ getOutHelpWidth: () => 60 }).helpInformation();
  t.is(await narrow(false), await narrow(true));
});

test('each command\'s --help is its own module\'s, loaded on demand', async (t) => {
  for (const module of COMMAND_MODULES) {
    for (const name of module.commands) {
      const lazy = await helpText([name], false);
      t.is(lazy, await helpText([name], true), name);
      t.true(lazy.includes(COMMAND_SUMMARIES[name].description.slice(0, 40)), name);
    }
  }
});

test('the command list names every command the modules register, in --help order', async (t) => {
  const program = await buildProgram([], { all: true });
  t.deepEqual(program.commands.map((command) => command.name()), Object.keys(COMMAND_SUMMARIES));
  t.deepEqual(COMMAND_MODULES.flatMap((module) => module.commands), Object.keys(COMMAND_SUMMARIES));
});

test('vlbench --help and --version load no heavy library (tfjs, transformers.js, sharp, the stores, the queue)', async (t) => {
  const dir = await temporaryDir(join(tmpdir(), 'vlbench-start-'));
  for (const flag of ['--help', '--version']) {
    const record = join(dir, `imports${flag}.txt`);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--import', join(ROOT, 'test/package/fixtures/record-imports.mjs'), 'cli/main.ts', flag], {
      cwd: ROOT,
      env: { ...process.env, VLBENCH_RECORD_IMPORTS: record },
    });
    t.true(stdout.length > 0);
    const urls = readFileSync(record, 'utf8').split('\n').filter(Boolean);
    t.true(urls.some((url) => url.endsWith('/cli/program.ts')), 'the recording saw the program load');
    const heavy = urls.filter((url) => /node_modules\/(@tensorflow|@huggingface|onnxruntime|sharp|better-sqlite3|pg|bullmq|ioredis|webgpu)\//.test(url));
    t.deepEqual(heavy, [], flag);
  }
});
