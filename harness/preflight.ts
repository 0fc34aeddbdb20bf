import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../core/errors.ts';
import { isPostgresLocation, openLeaderboard } from '../leaderboard/store.ts';
import { TASK_LOSSES, type MethodSpec } from '../models/objectives/index.ts';
import { ADAPTERS } from './adapters/index.ts';

/**
 * Checks a command makes before any work (before a model loads, a split is read or a job is
 * enqueued): the servers it needs answer, the leaderboard is one, the folders it writes are
 * writable, the settings mean something for the task. Each failure is an InputError (exit 2, one
 * line), raised while nothing has been started, written or enqueued.
 */

/**
 * The leaderboard a command records into, checked before the work whose result it would hold: a
 * PostgreSQL server answers (with retries) and its database is a vlbench leaderboard or empty; an
 * existing file is a vlbench SQLite leaderboard (a CSV given as --db is refused, untouched); a file
 * still to be created lies in a folder that can be written. Nothing is created here but the
 * tables of an empty PostgreSQL database, which the command would create anyway.
 */
export async function checkLeaderboardUsable(location: string): Promise<void> {
  if (isPostgresLocation(location) || existsSync(location)) {
    // PostgreSQL: openLeaderboard retries a server that does not answer, for CONNECT_BUDGET_MS in all.
    const store = await openLeaderboard(location, { create: isPostgresLocation(location) });
    await store.close();
    return;
  }
  await checkWritableFolder(dirname(resolve(location)), '--db');
}

/**
 * A folder a command will create files in (or the nearest folder above it that exists, where it
 * will create the rest) is a folder and can be written: tried with a temporary folder, removed at
 * once, since permission bits do not tell (root, immutable folders, read-only mounts).
 */
export async function checkWritableFolder(folder: string, field: string): Promise<void> {
  let existing = resolve(folder);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) throw new InputError(`${existing} is a file, not a folder`, { file: folder, field });
  let probe: string;
  try {
    probe = await mkdtemp(join(existing, '.vlbench-write-check-'));
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const where = existing === resolve(folder) ? 'this folder' : `${existing}, where it would be created,`;
    throw new InputError(`cannot write here: ${where} is not writable (${code ?? message})`, { file: folder, field });
  }
  await rmdir(probe);
}

/**
 * The task loss each task trains with, as its adapter says (`TaskAdapter.taskLoss`: soft-score BCE
 * for answer classification, multiple-choice CE for VCR, InfoNCE for retrieval). Its settings
 * (`--set mc.labelSmoothing=…`) mean nothing to another task's run, which would ignore them silently.
 */
export const TASK_LOSS_OF_TASK: Readonly<Record<string, (typeof TASK_LOSSES)[number]>> = Object.fromEntries(ADAPTERS.map((adapter) => [adapter.task, adapter.taskLoss]));

/** Refuses `--set <loss>.<key>` for a task loss the run does not train (another task's, or any with zeroshot), by name. */
export function checkTaskLossSettings(task: string, method: Pick<MethodSpec, 'base' | 'spec'>, sets: Readonly<Record<string, string>>): void {
  const trained = method.base === 'zeroshot' ? undefined : TASK_LOSS_OF_TASK[task];
  // A task this table does not know yet: nothing to compare against (parseMethodSpec has checked the keys).
  if (method.base !== 'zeroshot' && trained === undefined) return;
  const foreign = Object.keys(sets)
    .filter((key) => (TASK_LOSSES as readonly string[]).includes(key.split('.')[0]) && key.split('.')[0] !== trained)
    .sort();
  if (foreign.length === 0) return;
  const why = trained === undefined ? `--method ${method.spec} trains nothing` : `${task} trains with the ${trained} loss`;
  throw new InputError(`setting ${foreign.join(', ')} given, but ${why}; it would be ignored`, { field: '--set' });
}
