import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { readImageBytes } from '../core/image-bytes.ts';
import { IMAGE_PIPELINE_VERSION, type ImagePreprocessing } from './image-pipeline.ts';

/**
 * An on-disk cache of a frozen encoder's image features, so a second method on the same
 * data does not encode the images again. The key is what determines the features: the
 * encoder's fingerprint (weights + config), the preprocessing and the pipeline's version, the
 * kind of feature, and the image's bytes (not its path: a renamed file hits, an edited file misses).
 */
export class FeatureCache {
  readonly dir: string;
  hits = 0;
  misses = 0;

  constructor(root: string, encoderFingerprint: string, preprocessing: ImagePreprocessing, kind: string) {
    const key = createHash('sha256').update(JSON.stringify({ encoderFingerprint, preprocessing, pipeline: IMAGE_PIPELINE_VERSION, kind })).digest('hex').slice(0, 24);
    this.dir = join(root, key);
  }

  static async contentKey(imageFile: string): Promise<string> {
    return createHash('sha256').update(await readImageBytes(imageFile)).digest('hex');
  }

  private fileFor(contentKey: string): string {
    return join(this.dir, contentKey.slice(0, 2), `${contentKey}.f32`);
  }

  /** The cached features of an image, or undefined; a truncated entry counts as a miss and is removed. */
  async get(contentKey: string, expectedLength: number): Promise<Float32Array | undefined> {
    const file = this.fileFor(contentKey);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      this.misses += 1;
      return undefined;
    }
    if (bytes.byteLength !== expectedLength * 4) {
      await rm(file, { force: true });
      this.misses += 1;
      return undefined;
    }
    this.hits += 1;
    const out = new Float32Array(expectedLength);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }

  async put(contentKey: string, features: Float32Array): Promise<void> {
    await writeFileAtomically(this.fileFor(contentKey), new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
  }
}
