import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClipModel } from '../models/encoders/clip.ts';
import { fingerprintModelFolder } from '../models/encoders/aligned-encoder.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';

/** The files of a model folder that are not weights or config: they travel unchanged with a tuned encoder. */
const COMPANION_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'preprocessor_config.json'];

/**
 * Writes a fine-tuned encoder as a Hugging Face model folder: config.json and
 * model.safetensors (every parameter, the frozen ones too, so the folder stands alone) and
 * the base folder's tokenizer and preprocessor files. Returns the folder's fingerprint, the
 * same sha256 `vlbench run --model` and `vlbench encode --model` compute when they load it.
 */
export async function saveTunedEncoder(model: ClipModel, baseDir: string, outDir: string, metadata: Record<string, string>): Promise<{ fingerprint: string }> {
  await mkdir(outDir, { recursive: true });
  await model.save(outDir, metadata);
  for (const name of COMPANION_FILES) {
    const file = join(baseDir, name);
    if (existsSync(file)) await writeFileAtomically(join(outDir, name), await readFile(file));
  }
  return { fingerprint: await fingerprintModelFolder(outDir, 'tfjs') };
}
