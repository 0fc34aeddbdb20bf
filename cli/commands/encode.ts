import { Command, Option } from 'commander';
import { BACKEND_CHOICES, parseBackendChoice } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { ENCODER_ENGINES, type EncoderEngine } from '../../models/encoders/aligned-encoder.ts';
import { runEncode as encodeWithOptions, type EncodeOptions, type EncodeResult } from '../../harness/encode-run.ts';
import { parsePositiveInteger } from '../flags.ts';
import { COMMAND_SUMMARIES } from '../command-summaries.ts';

export interface EncodeFlags {
  model?: string;
  engine?: string;
  images?: string[];
  texts?: string;
  out?: string;
  normalize?: boolean;
  backend?: string;
  batch?: string;
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
    .description(COMMAND_SUMMARIES.encode.description)
    .option('--model <dir>', 'model folder in the Hugging Face layout (config.json, model.safetensors or onnx/, tokenizer.json, preprocessor_config.json); default: the bundled SynthScenes CLIP')
    .option('--engine <engine>', `${ENCODER_ENGINES.join(' | ')} (default: by folder contents)`)
    .option('--images <files...>', 'image files (JPEG, PNG, WebP)')
    .option('--texts <file>', 'UTF-8 text file, one text per line')
    .requiredOption('--out <file>', 'output JSON file (written atomically)')
    .option('--normalize', 'L2-normalise each embedding')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--batch <n>', 'images or texts per forward pass', '32')
    .action(async (flags: EncodeFlags) => {
      const result = await runEncode(flags, (line) => process.stdout.write(`${line}\n`));
      process.stdout.write(`wrote ${result.image_embeds.length} image and ${result.text_embeds.length} text embeddings to ${flags.out}\n`);
    });
}

/** Checks the flags of `vlbench encode` and turns them into typed options. */
export function encodeOptionsFromFlags(flags: EncodeFlags): EncodeOptions {
  if (!flags.out) throw new InputError('--out is required', { field: '--out' });
  return {
    model: flags.model,
    engine: flags.engine === undefined ? undefined : parseEngine(flags.engine),
    images: flags.images ?? [],
    texts: flags.texts,
    out: flags.out,
    normalize: flags.normalize === true,
    backend: parseBackendChoice(flags.backend ?? 'auto'),
    batchSize: parsePositiveInteger('--batch', flags.batch ?? '32'),
  };
}

/** `vlbench encode` from code, with the command's flags. */
export async function runEncode(flags: EncodeFlags, log: (line: string) => void = () => {}): Promise<EncodeResult> {
  return encodeWithOptions(encodeOptionsFromFlags(flags), log);
}

function parseEngine(value: string): EncoderEngine {
  if ((ENCODER_ENGINES as readonly string[]).includes(value)) return value as EncoderEngine;
  throw new InputError(`unknown engine "${value}"; expected one of ${ENCODER_ENGINES.join(', ')}`, { field: '--engine' });
}

