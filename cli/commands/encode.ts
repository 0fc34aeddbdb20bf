import { existsSync, statSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { describeBackend, parseBackendChoice, selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { preprocessedBatches } from '../../models/image-pipeline.ts';
import { ENCODER_ENGINES, type EncoderEngine, type HostTensor } from '../../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../../models/encoders/bundled.ts';

interface EncodeFlags {
  model?: string;
  engine?: string;
  images?: string[];
  texts?: string;
  out?: string;
  normalize?: boolean;
  backend?: string;
  batch?: string;
}

export interface EncodeResult {
  image_embeds: number[][];
  text_embeds: number[][];
  engine: EncoderEngine;
  backend: string;
  fingerprint: string;
  normalized: boolean;
}

/**
 * `vlbench encode`: embeds images and texts with an aligned encoder and writes
 * {"image_embeds": [[...]], "text_embeds": [[...]]} (one row per image in argument order and
 * per line of the texts file), projected features before L2 normalisation unless --normalize,
 * as Hugging Face's get_image_features / get_text_features return them.
 *
 *   vlbench encode --model DIR [--engine tfjs|onnx] [--images FILE...] [--texts FILE] --out OUT.json [--normalize] [--backend B]
 */
export function registerEncode(program: Command): void {
  program
    .command('encode')
    .description('embed images and/or texts with a CLIP-family model folder; writes JSON')
    .option('--model <dir>', 'model folder in the Hugging Face layout (config.json, model.safetensors or onnx/, tokenizer.json, preprocessor_config.json); default: the bundled SynthScenes CLIP')
    .option('--engine <engine>', `${ENCODER_ENGINES.join(' | ')} (default: by folder contents)`)
    .option('--images <files...>', 'image files (JPEG, PNG, WebP)')
    .option('--texts <file>', 'UTF-8 text file, one text per line')
    .requiredOption('--out <file>', 'output JSON file (written atomically)')
    .option('--normalize', 'L2-normalise each embedding')
    .option('--backend <name>', 'tfjs backend: auto | tensorflow | wasm | cpu', 'auto')
    .option('--batch <n>', 'images or texts per forward pass', '32')
    .action(async (flags: EncodeFlags) => {
      const result = await runEncode(flags, (line) => process.stdout.write(`${line}\n`));
      process.stdout.write(`wrote ${result.image_embeds.length} image and ${result.text_embeds.length} text embeddings to ${flags.out}\n`);
    });
}

/** The work of `vlbench encode`, callable from code; `log` receives the backend line. */
export async function runEncode(flags: EncodeFlags, log: (line: string) => void = () => {}): Promise<EncodeResult> {
  const { out } = flags;
  const model = flags.model ?? bundledModelDir();
  if (!out) throw new InputError('--out is required', { field: '--out' });
  const engine = flags.engine === undefined ? undefined : parseEngine(flags.engine);
  const backend = parseBackendChoice(flags.backend ?? 'auto');
  const batchSize = Number(flags.batch ?? '32');
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`expected a positive integer, got ${JSON.stringify(flags.batch)}`, { field: '--batch' });
  const images = (flags.images ?? []).map((file) => resolve(file));
  if (images.length === 0 && flags.texts === undefined) throw new InputError('nothing to encode: give --images and/or --texts', { field: '--images' });
  for (const file of images) {
    if (!existsSync(file) || !statSync(file).isFile()) throw new InputError('image file does not exist', { file });
  }
  const texts = flags.texts === undefined ? [] : await readTexts(flags.texts);
  const outDir = dirname(resolve(out));
  if (!existsSync(outDir)) throw new InputError('the output folder does not exist', { file: outDir, field: '--out' });

  const encoder = await loadEncoder(model, { engine, backend });
  try {
    log(encoder.engine === 'tfjs' ? describeBackend(await selectBackend(backend)) : 'backend: onnxruntime (ONNX Runtime through @huggingface/transformers, fp32)');
    const imageRows: number[][] = [];
    if (images.length) {
      for await (const batch of preprocessedBatches(images, encoder.preprocessing, { batchSize })) {
        imageRows.push(...toRows(await encoder.embedImages(batch.pixels, batch.shape), flags.normalize === true));
      }
    }
    const textRows: number[][] = [];
    for (let start = 0; start < texts.length; start += batchSize) {
      textRows.push(...toRows(await encoder.embedTexts(texts.slice(start, start + batchSize)), flags.normalize === true));
    }
    const result: EncodeResult = {
      image_embeds: imageRows,
      text_embeds: textRows,
      engine: encoder.engine,
      backend: encoder.backend,
      fingerprint: encoder.fingerprint,
      normalized: flags.normalize === true,
    };
    await writeJsonAtomically(resolve(out), result);
    return result;
  } finally {
    await encoder.dispose();
  }
}

function parseEngine(value: string): EncoderEngine {
  if ((ENCODER_ENGINES as readonly string[]).includes(value)) return value as EncoderEngine;
  throw new InputError(`unknown engine "${value}"; expected one of ${ENCODER_ENGINES.join(', ')}`, { field: '--engine' });
}

/** One text per line; a final newline ends the last line, it does not add an empty text. */
async function readTexts(file: string): Promise<string[]> {
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read texts: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { file });
  }
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

async function writeJsonAtomically(file: string, value: unknown): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, JSON.stringify(value) + '\n');
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
