import { z } from 'zod';
import { InputError } from './errors.ts';

/**
 * Every `--set key=value` arrives as a string. Whoever owns a setting (an objective, the training
 * loop, the fusion, encoder tuning) declares, per key and beside its default, a zod schema that
 * turns the string into a typed value, a phrase saying what it expects, and one line of
 * documentation; a bad value then names the key, the value and the expectation in one line, and
 * `--help` and docs/cli.md's settings table are generated from the same declarations.
 */
export interface SettingField<T> {
  schema: z.ZodType<T>;
  /** What a valid value looks like, e.g. "a number > 0". */
  expects: string;
  /** One line of documentation, shown with the defaults. */
  doc: string;
}

export type SettingFields<S> = { [K in keyof S]: SettingField<S[K]> };

/**
 * A whole number ≥ 1 given as a flag's text ("3", not "3.0", "3e0" or " "): the one parser of
 * count-like flags, for the CLI (cli/flags.ts) and for what harness/ takes as flag text (score's
 * --folds and --limit). A bad value names the flag and the value.
 */
export function parsePositiveInteger(flag: string, text: string | number): number {
  const trimmed = String(text).trim();
  const value = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(value) || value < 1) throw new InputError(`expected a positive integer, got ${JSON.stringify(String(text))}`, { field: flag });
  return value;
}

/** A finite number from a string; the empty string is refused rather than read as 0. */
export function numberSetting(check: (n: z.ZodNumber) => z.ZodNumber = (n) => n): z.ZodType<number> {
  return z.string().trim().min(1).transform(Number).pipe(check(z.number().finite()));
}

export function integerSetting(min: number, max = Number.MAX_SAFE_INTEGER): z.ZodType<number> {
  return numberSetting((n) => n.int().min(min).max(max));
}

export function booleanSetting(): z.ZodType<boolean> {
  return z.enum(['true', 'false']).transform((value) => value === 'true');
}

export function choiceSetting<const T extends readonly [string, ...string[]]>(choices: T): z.ZodType<T[number]> {
  return z.enum(choices) as unknown as z.ZodType<T[number]>;
}

/** A comma-separated list of positive numbers, e.g. "0.125,0.25,0.5,1,2". */
export function positiveListSetting(): z.ZodType<number[]> {
  return z
    .string()
    .trim()
    .min(1)
    .transform((value) => value.split(',').map((part) => (part.trim() === '' ? Number.NaN : Number(part))))
    .pipe(z.array(z.number().finite().positive()).min(1));
}

/**
 * Applies string overrides to an objective's defaults. Unknown keys are refused with the
 * list of known ones: a typo must never fall back silently to the default.
 */
export function parseSettings<S extends object>(
  objective: string,
  fields: SettingFields<S>,
  defaults: S,
  given: Readonly<Record<string, string>>,
): S {
  const known = Object.keys(fields);
  const result: S = { ...defaults };
  for (const [key, value] of Object.entries(given)) {
    if (!Object.hasOwn(fields, key)) {
      const choices = known.length ? `known keys: ${known.join(', ')}` : 'it has no settings';
      throw new InputError(`unknown setting "${key}" for objective ${objective} (${choices})`, { field: `--set ${objective}.${key}` });
    }
    const field = (fields as Record<string, SettingField<unknown>>)[key];
    const parsed = field.schema.safeParse(value);
    if (!parsed.success) {
      throw new InputError(`expected ${field.expects}, got ${JSON.stringify(value)}`, { field: `--set ${objective}.${key}` });
    }
    (result as Record<string, unknown>)[key] = parsed.data;
  }
  return result;
}

/**
 * The keys of `given` that `fields` declares, parsed, and only those: for settings whose default
 * is decided later (a task's own, or "auto"), so "not given" must stay visible. An undeclared
 * key is refused by `unknownKey`; a bad value names `--set <prefix><key>`.
 */
export function parseGivenSettings<S extends object>(fields: SettingFields<S>, given: Readonly<Record<string, string>>, unknownKey: (key: string) => Error, prefix = ''): Partial<S> {
  const result: Partial<S> = {};
  for (const [key, value] of Object.entries(given)) {
    if (!Object.hasOwn(fields, key)) throw unknownKey(key);
    const field = (fields as Record<string, SettingField<unknown>>)[key];
    const parsed = field.schema.safeParse(value);
    if (!parsed.success) throw new InputError(`expected ${field.expects}, got ${JSON.stringify(value)}`, { field: `--set ${prefix}${key}` });
    (result as Record<string, unknown>)[key] = parsed.data;
  }
  return result;
}

/** One documented `--set` key: what `--help` and docs/cli.md's settings table show. */
export interface SettingRow {
  key: string;
  default: unknown;
  /** What a valid value looks like (documentSettings fills it; a caller's own rows may leave it out). */
  expects?: string;
  doc: string;
}

/** Defaults with their documentation, for `--help` and the run record. */
export function documentSettings<S extends object>(fields: SettingFields<S>, defaults: S): SettingRow[] {
  return Object.keys(fields).map((key) => ({
    key,
    default: (defaults as Record<string, unknown>)[key],
    expects: (fields as Record<string, SettingField<unknown>>)[key].expects,
    doc: (fields as Record<string, SettingField<unknown>>)[key].doc,
  }));
}
