import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../../core/errors.ts';
import { ENCODER_ENGINES, type AlignedEncoder, type EncoderEngine, type LoadEncoderOptions } from './aligned-encoder.ts';
export type { LoadEncoderOptions } from './aligned-encoder.ts';

// The one place that knows every engine: aligned-encoder.ts holds the interface the engines
// implement, so the engines import it and this module imports them (no cycle).

/** Loads the encoder a model folder holds. */
export async function loadEncoder(dir: string, options: LoadEncoderOptions = {}): Promise<AlignedEncoder> {
  const folder = resolve(dir);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new InputError('model folder does not exist', { file: folder });
  const engine = options.engine ?? (await detectEngine(folder));
  if (engine === 'tfjs') {
    const { TfjsClipEncoder } = await import('./clip-encoder.ts');
    return TfjsClipEncoder.load(folder, options);
  }
  if (engine === 'onnx') {
    if (options.freeze !== undefined && options.freeze !== 'frozen') throw new InputError('the ONNX engine is inference only; use --engine tfjs to fine-tune', { file: folder, field: 'freeze' });
    return (await importOnnxEngine()).OnnxClipEncoder.load(folder);
  }
  throw new InputError(`unknown engine "${String(engine)}"; expected one of ${ENCODER_ENGINES.join(', ')}`, { field: '--engine' });
}

export async function detectEngine(folder: string): Promise<EncoderEngine> {
  if (existsSync(join(folder, 'model.safetensors'))) return 'tfjs';
  if (existsSync(join(folder, 'onnx', 'vision_model.onnx')) || existsSync(join(folder, 'onnx', 'text_model.onnx'))) return 'onnx';
  const files = await readdir(folder);
  const pickled = files.filter((f) => /\.(bin|pt|pth|ckpt|pkl)$/.test(f));
  if (pickled.length) {
    throw new InputError(`only ${pickled.join(', ')} found: vlbench never unpickles checkpoints (that can execute code); convert to safetensors (model.safetensors) first`, { file: folder });
  }
  throw new InputError('no model.safetensors (tfjs engine) and no onnx/vision_model.onnx or onnx/text_model.onnx (ONNX engine) in the model folder', { file: folder });
}


/**
 * The ONNX engine's module. It runs on transformers.js, an optional dependency (package.json):
 * its onnxruntime-node downloads a CUDA provider at install time, and where that download
 * cannot happen (an offline machine) npm leaves transformers.js out instead of failing the
 * whole install; then only this engine is missing, and the error says how to add it.
 */
async function importOnnxEngine(): Promise<typeof import('./onnx-clip.ts')> {
  try {
    return await import('./onnx-clip.ts');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && /@huggingface\/transformers|onnxruntime-node/.test((error as Error).message);
    if (!missing) throw error;
    throw new InputError(
      'the ONNX engine needs @huggingface/transformers, an optional dependency that is not installed here; ' +
        'install it with `ONNXRUNTIME_NODE_INSTALL=skip npm install @huggingface/transformers` (the variable skips onnxruntime-node\'s CUDA download), or use --engine tfjs',
      { field: '--engine' },
    );
  }
}
