import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { LoadOptions } from '../../core/types.ts';
import { synthPaths, synthSplitLabel, synthSubtype, type SynthDomain, type SynthSplit } from './index.ts';

// Where each task's official-format files sit inside a SynthScenes folder: the generator
// writes them, so the generator's side knows the layout; runs and `leaderboard add` read it.

/** The loader options that read one SynthScenes split of one domain through a task's official-format loader. */
export function synthLoadOptions(task: string, root: string, domain: SynthDomain, split: SynthSplit): LoadOptions {
  const subtype = synthSubtype(split, domain);
  const splitLabel = synthSplitLabel(subtype);
  switch (task) {
    case 'vqa':
      return { split: subtype, splitLabel, files: { questions: synthPaths.vqaQuestions(root, subtype), annotations: synthPaths.vqaAnnotations(root, subtype) }, imagesDir: synthPaths.imagesRoot(root) };
    case 'gqa':
      return { split: subtype, splitLabel, files: { questions: synthPaths.gqaQuestions(root, subtype), sceneGraphs: synthPaths.gqaSceneGraphs(root, subtype) }, imagesDir: join(synthPaths.imagesRoot(root), subtype) };
    case 'vcr':
      return { split: subtype, splitLabel, dataDir: synthPaths.vcrDir(root), files: { annotations: synthPaths.vcrAnnotations(root, subtype) } };
    case 'retrieval':
      return { split, splitLabel, files: { annotations: synthPaths.retrieval(root, domain) }, imagesDir: synthPaths.imagesRoot(root) };
    default:
      throw new InputError(`task "${task}" has no SynthScenes data`);
  }
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

