import { InputError } from '../core/errors.ts';
import type { ComparedGroup, ComparedRun } from './compare.ts';
import { seedGroupKey } from './run-record.ts';
import { exampleScores, findRun, listRuns, type LeaderboardStore, type StoredRun } from './store.ts';

/**
 * What `vlbench compare` compares on each side: one run, or a seed group.
 *
 * - A run id is that run, unless `seeds` is given.
 * - A name is its latest run (a CI pipeline records "main" on every merge), unless the runs of
 *   that name in the latest run's seed group (same comparability key, model, method,
 *   hyperparameters, backend) cover several seeds: then it is the group, with the latest run of
 *   each seed. `vlbench run` names every seed of a configuration alike, so `compare ft ft+mmd`
 *   after a 3-seed sweep compares the two 3-seed groups.
 * - `seeds` picks exactly those seeds from the group (a seed missing is an error that lists
 *   the seeds there are).
 */
export interface ResolveOptions {
  task?: string;
  seeds?: readonly number[];
}

export interface ResolvedGroup {
  group: ComparedGroup;
  /** What the lookup decided, for stderr: which run of several, or which seeds. */
  note: string | null;
}

export async function resolveComparedGroup(store: LeaderboardStore, ref: string, role: 'base' | 'candidate' | 'run', options: ResolveOptions = {}): Promise<ResolvedGroup> {
  const { run: anchor, matchedByName } = await findRun(store, ref, { task: options.task });
  const byName = matchedByName > 0;
  if (!byName && options.seeds === undefined) return { group: { name: anchor.record.name, runs: [await comparedRun(store, anchor)] }, note: null };

  const key = seedGroupKey(anchor.record);
  const latestPerSeed = new Map<number | null, StoredRun>();
  for (const run of await listRuns(store, { task: anchor.record.task })) {
    if (run.record.name !== anchor.record.name || seedGroupKey(run.record) !== key) continue;
    const held = latestPerSeed.get(run.record.seed);
    // listRuns is in recording order; the later of two equal times is the later recorded.
    if (!held || run.record.createdAt >= held.record.createdAt) latestPerSeed.set(run.record.seed, run);
  }
  const available = [...latestPerSeed.keys()].filter((seed): seed is number => seed !== null).sort((a, b) => a - b);

  let members: StoredRun[];
  if (options.seeds !== undefined) {
    const missing = options.seeds.filter((seed) => !latestPerSeed.has(seed));
    if (missing.length > 0) {
      throw new InputError(`${role} "${ref}" has no run with seed ${missing.join(', ')} in its seed group (seeds there: ${available.join(', ') || 'none'})`, { field: '--seeds', record: ref });
    }
    members = [...new Set(options.seeds)].map((seed) => latestPerSeed.get(seed)!);
  } else if (available.length >= 2) {
    members = available.map((seed) => latestPerSeed.get(seed)!);
  } else {
    const note = matchedByName > 1 ? `note: ${role} name "${ref}" matches ${matchedByName} runs${options.task ? '' : ' (narrow with --task, or pass a run id)'}; using the latest, ${anchor.record.id}` : null;
    return { group: { name: anchor.record.name, runs: [await comparedRun(store, anchor)] }, note };
  }
  const runs: ComparedRun[] = [];
  for (const member of members) runs.push(await comparedRun(store, member));
  const seeds = members.map((member) => member.record.seed).join(', ');
  return { group: { name: anchor.record.name, runs }, note: `note: ${role} "${ref}" is a seed group of ${members.length} runs (seeds ${seeds}) on ${anchor.record.task} ${anchor.record.split}` };
}

async function comparedRun(store: LeaderboardStore, run: StoredRun): Promise<ComparedRun> {
  return { record: run.record, perExample: run.exampleCount > 0 ? await exampleScores(store, run.record.id) : null };
}
