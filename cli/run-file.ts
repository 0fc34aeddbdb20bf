import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../core/errors.ts';

/**
 * `--config FILE`: a run file (YAML, or JSON, which YAML reads) that spells a command's flags,
 * as lm-evaluation-harness's and lmms-eval's --config do. Its keys are the flags' names without
 * the dashes (`max-train: 100`, or `maxTrain`; `record: false` for --no-record), and `set` is a
 * mapping of --set keys (`set: { encoder.train_blocks: 1 }`) or a list of `key=value`. A flag on
 * the command line wins over the file; a --set key given on both wins from the command line. A
 * key that is not a flag of the command is refused by name. Relative paths in the file are
 * relative to the file's folder, so a run file means the same run from any working directory.
 *
 * The values land where commander puts the flags' own, so the command builds its request
 * exactly as from flags, and the run folder records that resolved request.
 */
export async function applyRunFile(command: Command, file: string, pathKeys: readonly string[]): Promise<void> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new InputError('--config: no such file', { file: path });
  }
  let content: unknown;
  try {
    content = parseYaml(text);
  } catch (error) {
    throw new InputError(`not a YAML or JSON run file: ${(error as Error).message.split('\n')[0]}`, { file: path });
  }
  if (typeof content !== 'object' || content === null || Array.isArray(content)) throw new InputError('expected a mapping of flag names to values', { file: path });

  for (const [key, value] of Object.entries(content)) {
    const option = command.options.find((candidate) => candidate.attributeName() === key || candidate.long === `--${key}` || candidate.long === `--no-${key}`);
    if (!option || key === 'config') {
      throw new InputError(`"${key}" is not a flag of vlbench ${command.name()} (run \`vlbench ${command.name()} --help\`)`, { file: path, field: key });
    }
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (option.variadic) {
      const fromFile = variadicValues(value, path, key);
      // --set: the file's keys first, so that the command line's replace them key by key.
      const fromCli = source === 'cli' ? (command.getOptionValue(name) as string[]) : [];
      const cliKeys = new Set(fromCli.map((item) => item.slice(0, item.indexOf('='))));
      command.setOptionValueWithSource(name, [...fromFile.filter((item) => !cliKeys.has(item.slice(0, item.indexOf('=')))), ...fromCli], source === 'cli' ? 'cli' : 'config');
      continue;
    }
    if (source === 'cli') continue;
    command.setOptionValueWithSource(name, optionValue(option, value, path, key, pathKeys.includes(name) ? dirname(path) : undefined), 'config');
  }
}

function optionValue(option: Option, value: unknown, file: string, key: string, relativeTo: string | undefined): string | boolean {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof value !== 'boolean') throw new InputError(`expected true or false, got ${JSON.stringify(value)}`, { file, field: key });
    // `record: false` is --no-record: the attribute the negated flag sets.
    return value;
  }
  if (typeof value !== 'string' && typeof value !== 'number') throw new InputError(`expected a string or a number, got ${JSON.stringify(value)}`, { file, field: key });
  const text = String(value);
  if (option.argChoices && !option.argChoices.includes(text)) throw new InputError(`expected one of ${option.argChoices.join(', ')}, got ${JSON.stringify(text)}`, { file, field: key });
  // Paths are the file's: relative to its folder (a postgres:// URL is not a path).
  if (relativeTo !== undefined && !isAbsolute(text) && !/^[a-z]+:\/\//i.test(text)) return resolve(relativeTo, text);
  return text;
}

function variadicValues(value: unknown, file: string, key: string): string[] {
  if (Array.isArray(value)) {
    return value.map((item) => {
      if (typeof item !== 'string' || !item.includes('=')) throw new InputError(`expected key=value, got ${JSON.stringify(item)}`, { file, field: key });
      return item;
    });
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).map(([setKey, setValue]) => {
      if (typeof setValue === 'object' && setValue !== null) throw new InputError(`expected a value, got ${JSON.stringify(setValue)}`, { file, field: `${key}.${setKey}` });
      return `${setKey}=${String(setValue)}`;
    });
  }
  throw new InputError(`expected a mapping of keys to values or a list of key=value, got ${JSON.stringify(value)}`, { file, field: key });
}
