import { InputError } from '../core/errors.ts';
import type { ScoreOptions, Task } from '../core/types.ts';
import { scoringOptionsFor } from '../harness/score-files.ts';

/**
 * The one set of flag parsers every command uses: commander hands options over as strings,
 * and a bad value must name the flag, the value and what was expected rather than become NaN.
 */

/** A whole number in [min, max] ("3", not "3.0", "3e0" or " "). */
export function parseWholeNumber(flag: string, text: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const trimmed = text.trim();
  const value = /^-?\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InputError(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`, { field: flag });
  }
  return value;
}

/** A whole number ≥ 1 (core/settings.ts: the same parser serves harness/). */
export { parsePositiveInteger } from '../core/settings.ts';

/** A run or generator seed: 0 … 2³² − 1, the range the seeded generator takes. */
export function parseSeed(flag: string, text: string): number {
  return parseWholeNumber(flag, text, 0, 2 ** 32 - 1);
}

/** A finite number > 0 (or ≥ 0 with allowZero). */
export function parsePositiveNumber(flag: string, text: string, { allowZero = false } = {}): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InputError(`expected a ${allowZero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(text)}`, { field: flag });
  }
  return value;
}

/**
 * Turns repeated `--set key=value` options into a record. A key given twice is refused
 * rather than letting the last one win unnoticed.
 */
export function parseSetOptions(values: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of values) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InputError(`expected key=value, got ${JSON.stringify(item)}`, { field: '--set' });
    const key = item.slice(0, eq).trim();
    if (key === '') throw new InputError(`expected key=value, got ${JSON.stringify(item)}`, { field: '--set' });
    if (Object.hasOwn(result, key)) throw new InputError(`"${key}" is set twice`, { field: '--set' });
    result[key] = item.slice(eq + 1);
  }
  return result;
}

/** `--legacy-normalization` and `--folds` as ScoreOptions, refused by flag where the task's metric does not take them (harness/score-files.ts). */
export const scoringOptionsFromFlags: (task: Task, flags: { legacyNormalization?: boolean; folds?: string }) => ScoreOptions = scoringOptionsFor;

/**
 * `--shard k/n`: shard k of n, numbered from 1 like jest's and playwright's --shard (1/3, 2/3,
 * 3/3). A 0 is refused rather than read as the first shard, so a 0-based habit (0/3 … 2/3)
 * fails at once instead of silently leaving one slice unpredicted.
 */
export function parseShard(flag: string, text: string): { number: number; count: number } {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!match) throw new InputError(`expected k/n (shard k of n, from 1: 1/3, 2/3, 3/3), got ${JSON.stringify(text)}`, { field: flag });
  const [number, count] = [Number(match[1]), Number(match[2])];
  if (count < 1) throw new InputError(`expected at least 1 shard, got ${JSON.stringify(text)}`, { field: flag });
  if (number === 0) throw new InputError(`shards are numbered from 1 (1/${count} … ${count}/${count}), got ${JSON.stringify(text)}`, { field: flag });
  if (number > count) throw new InputError(`shard ${number} of ${count} does not exist: shards are numbered 1/${count} … ${count}/${count}`, { field: flag });
  return { number, count };
}
