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
    const { OnnxClipEncoder } = await import('./onnx-clip.ts');
    return OnnxClipEncoder.load(folder);
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

