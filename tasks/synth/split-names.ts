import { InputError } from '../../core/errors.ts';
import type { LoadOptions } from '../../core/types.ts';
import { SYNTH_DOMAINS, SYNTH_SPLITS, synthSplitLabel, synthSubtype, type SynthDomain, type SynthSplit } from './layout.ts';
import type { SynthManifest } from './manifest.ts';
import { synthLoadOptions } from './run-splits.ts';

/** One split of one domain of a SynthScenes folder: the label the leaderboard records and how the task loads it. */
export interface SynthSplitChoice {
  /** "test/source", exactly as `vlbench run` records it. */
  label: string;
  load: LoadOptions;
}

/**
 * The SynthScenes splits a split name means, so that every command names them the way
 * `vlbench run` records them:
 * - "test/source" (the recorded label) or "test_source" (the data_subtype in the file names): that one;
 * - "test", "val" or "train": that split in every domain the folder has (a predictions file then
 *   picks the one it was made for);
 * - no name: every split of every domain.
 * Loading through `synthLoadOptions`, the same loader options a run uses, gives the same split
 * fingerprint, so a submission and the run that made it share one comparability key.
 */
export function synthSplitsNamed(task: string, root: string, manifest: SynthManifest, name?: string): SynthSplitChoice[] {
  const domains = SYNTH_DOMAINS.filter((domain) => manifest.options.domains.includes(domain));
  const choice = (split: SynthSplit, domain: SynthDomain): SynthSplitChoice => ({ label: synthSplitLabel(synthSubtype(split, domain)), load: synthLoadOptions(task, root, domain, split) });
  const every = SYNTH_SPLITS.flatMap((split) => domains.map((domain) => choice(split, domain)));
  if (name === undefined) return every;
  const wanted = name.trim();
  if ((SYNTH_SPLITS as readonly string[]).includes(wanted)) return domains.map((domain) => choice(wanted as SynthSplit, domain));
  const named = every.find((candidate) => candidate.label === wanted.replace('_', '/'));
  if (named) return [named];
  throw new InputError(
    `no split ${JSON.stringify(name)} in this SynthScenes folder; its splits are ${every.map((candidate) => candidate.label).join(', ')} (or ${SYNTH_SPLITS.join(', ')} for every domain)`,
    { file: root, field: '--split' },
  );
}
