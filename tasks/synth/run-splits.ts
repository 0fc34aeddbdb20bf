import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadOptions } from '../../core/types.ts';
import { synthPaths, synthSplitLabel, synthSubtype, type SynthDomain, type SynthSplit } from './layout.ts';
import { getTask } from '../registry.ts';

// Where a task's official-format files sit inside a SynthScenes folder: each task says it
// (Task.synthScenes), so SynthScenes feeds a new task without an edit here; runs and
// `leaderboard add` read it.

/** The loader options that read one SynthScenes split of one domain through a task's official-format loader. */
export function synthLoadOptions(task: string, root: string, domain: SynthDomain, split: SynthSplit): LoadOptions {
  const subtype = synthSubtype(split, domain);
  const place = getTask(task).synthScenes?.({ root, split, domain, subtype });
  if (!place) throw new InputError(`task "${task}" has no SynthScenes data`);
  // The split label second, as runs have always recorded these options.
  const { split: name, ...files } = place;
  return { split: name, splitLabel: synthSplitLabel(subtype), ...files };
}

/** The unlabelled target-domain training images of a SynthScenes folder (their labels are never read). */
export async function synthTargetImages(root: string): Promise<string[]> {
  const dir = join(synthPaths.imagesRoot(root), synthSubtype('train', 'target'));
  return existsSync(dir) ? listImages(dir) : [];
}

/** The image files of a folder, sorted by name (a target domain's unlabelled images). */
export async function listImages(dir: string): Promise<string[]> {
  const folder = resolve(dir);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    throw new InputError('target image folder cannot be read', { file: folder });
  }
  const images = names.filter((name) => /\.(jpe?g|png|webp)$/i.test(name)).sort().map((name) => join(folder, name));
  if (images.length === 0) throw new InputError('target image folder holds no .jpg, .png or .webp files', { file: folder });
  return images;
}

