import { isUtf8 } from 'node:buffer';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { InputError } from '../core/errors.ts';
import { checkUtf8, decodeUtf8, firstInvalidUtf8Offset } from '../core/utf8.ts';
import { describeBackend, type BackendChoice, type SelectedBackend } from '../models/backends/select.ts';
import { preprocessedBatches } from '../models/image-pipeline.ts';
import type { EncoderEngine, HostTensor } from '../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';

// The work of `vlbench encode`: embeds images and texts with an aligned encoder and writes
// {"image_embeds": [[...]], "text_embeds": [[...]]} (one row per image in argument order and
// per line of the texts file), projected features before L2 normalisation unless `normalize`,
// as Hugging Face's get_image_features / get_text_features return them.

export interface EncodeOptions {
  /** Model folder (default: the bundled SynthScenes CLIP). */
  model?: string;
  /** Overrides the engine chosen by folder contents. */
  engine?: EncoderEngine;
  images: string[];
  /** UTF-8 file, one text per line. */
  texts?: string;
  out: string;
  normalize: boolean;
  backend: BackendChoice;
  batchSize: number;
}

export interface EncodeResult {
  image_embeds: number[][];
  text_embeds: number[][];
  engine: EncoderEngine;
  backend: string;
  fingerprint: string;
  normalized: boolean;
}

/** Embeds and writes the JSON file atomically; `log` receives the backend line. */
export async function runEncode(options: EncodeOptions, log: (line: string) => void = () => {}): Promise<EncodeResult> {
  const model = options.model ?? bundledModelDir();
  const { engine, backend, batchSize } = options;
  const images = options.images.map((file) => resolve(file));
  if (images.length === 0 && options.texts === undefined) throw new InputError('nothing to encode: give --images and/or --texts', { field: '--images' });
  for (const file of images) {
    if (!existsSync(file) || !statSync(file).isFile()) throw new InputError('image file does not exist', { file });
  }
  const texts = options.texts === undefined ? [] : await readTexts(options.texts);
  const outDir = dirname(resolve(options.out));
  if (!existsSync(outDir)) throw new InputError('the output folder does not exist', { file: outDir, field: '--out' });

  const encoder = await loadEncoder(model, { engine, backend });
  try {
    // The backend the encoder selected as it loaded, not a second selection.
    log('selectedBackend' in encoder ? describeBackend(encoder.selectedBackend as SelectedBackend) : 'backend: onnxruntime (ONNX Runtime through @huggingface/transformers, fp32)');
    const imageRows: number[][] = [];
    if (images.length) {
      for await (const batch of preprocessedBatches(images, encoder.preprocessing, { batchSize })) {
        imageRows.push(...toRows(await encoder.embedImages(batch.pixels, batch.shape), options.normalize));
      }
    }
    const textRows: number[][] = [];
    for (let start = 0; start < texts.length; start += batchSize) {
      textRows.push(...toRows(await encoder.embedTexts(texts.slice(start, start + batchSize)), options.normalize));
    }
    const result: EncodeResult = {
      image_embeds: imageRows,
      text_embeds: textRows,
      engine: encoder.engine,
      backend: encoder.backend,
      fingerprint: encoder.fingerprint,
      normalized: options.normalize,
    };
    await writeFileAtomically(resolve(options.out), JSON.stringify(result) + '\n');
    return result;
  } finally {
    await encoder.dispose();
  }
}

/** One text per line; a final newline ends the last line, it does not add an empty text. */
async function readTexts(file: string): Promise<string[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new InputError(`cannot read texts: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
  // Not UTF-8 is refused, naming the line and the byte offset: a replaced byte would be embedded as another text.
  if (!isUtf8(bytes)) {
    const lineBreaks = bytes.subarray(0, firstInvalidUtf8Offset(bytes)).filter((byte) => byte === 0x0a).length;
    checkUtf8(bytes, { file, record: `line ${lineBreaks + 1}` });
  }
  const content = decodeUtf8(bytes, { file });
  const lines = content.replace(/\r?\n$/, '').split(/\r?\n/);
  if (content.length === 0) throw new InputError('the texts file is empty', { file });
  lines.forEach((line, index) => {
    // An empty line would still produce an embedding (of BOS+EOS) and shift nothing visibly: refuse it.
    if (line.trim() === '') throw new InputError('empty line: expected one text per line', { file, record: `line ${index + 1}` });
  });
  return lines;
}

function toRows(tensor: HostTensor, normalize: boolean): number[][] {
  const [rows, dim] = tensor.shape;
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const row = Array.from(tensor.data.subarray(r * dim, (r + 1) * dim));
    if (normalize) {
      const norm = Math.sqrt(row.reduce((sum, v) => sum + v * v, 0));
      // HF / torch F.normalize divide by max(norm, 1e-12): a zero vector stays zero instead of NaN.
      const scale = 1 / Math.max(norm, 1e-12);
      for (let i = 0; i < dim; i++) row[i] *= scale;
    }
    out.push(row);
  }
  return out;
}

