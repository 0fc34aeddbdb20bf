import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { InputError } from '../../core/errors.ts';
import { SYNTH_DOMAINS, SYNTH_SPLITS, synthPaths } from './layout.ts';

/** Bumped whenever the same seed and options would give different files. */
export const SYNTH_GENERATOR_VERSION = '1.4.0';

const splitCounts = z.object({
  images: z.int().nonnegative(),
  vqaQuestions: z.int().nonnegative(),
  gqaQuestions: z.int().nonnegative(),
  vcrItems: z.int().nonnegative(),
  captions: z.int().nonnegative(),
});

const domainCounts = z.object(Object.fromEntries(SYNTH_SPLITS.map((split) => [split, splitCounts])) as Record<(typeof SYNTH_SPLITS)[number], typeof splitCounts>);

export const synthManifestSchema = z.object({
  generator: z.literal('synthscenes'),
  generatorVersion: z.string().min(1),
  seed: z.int().nonnegative(),
  options: z.object({
    images: z.int().positive(),
    size: z.int().positive(),
    domains: z.array(z.enum(SYNTH_DOMAINS)).min(1),
  }),
  /** Per domain, then per split (only the generated domains appear). */
  counts: z.partialRecord(z.enum(SYNTH_DOMAINS), domainCounts),
  /** The simulated detector's boxes (detections/detector.json) against the true ones; absent before 1.3.0. */
  detector: z.object({ recall: z.number(), precision: z.number(), iouThreshold: z.number() }).optional(),
  /** Every file written, path relative to the folder with "/" separators → sha256 (hex) of its bytes. */
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
});

export type SynthManifest = z.infer<typeof synthManifestSchema>;
export type SynthSplitCounts = z.infer<typeof splitCounts>;

/** Reads and checks a SynthScenes folder's manifest.json; a folder without one is not a SynthScenes folder. */
export async function readSynthManifest(dir: string): Promise<SynthManifest> {
  const file = synthPaths.manifest(dir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new InputError('not a SynthScenes folder: it has no manifest.json (create one with "vlbench synth --out DIR")', { file: dir });
    }
    throw new InputError(`cannot read the manifest: ${code ?? String(error)}`, { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(`not valid JSON (${(error as Error).message})`, { file });
  }
  if (typeof json !== 'object' || json === null || (json as { generator?: unknown }).generator !== 'synthscenes') {
    throw new InputError('not a SynthScenes manifest: expected "generator": "synthscenes"', { file, field: 'generator' });
  }
  const parsed = synthManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`not a valid SynthScenes manifest: ${issue.message}`, { file, field: issue.path.map(String).join('.') || undefined });
  }
  return parsed.data;
}
