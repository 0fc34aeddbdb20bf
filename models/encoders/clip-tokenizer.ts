import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../../core/errors.ts';
import type { TokenBatch } from './clip.ts';

export type PaddingMode = 'max_length' | 'longest';

/**
 * The folder's tokenizer (tokenizer.json + tokenizer_config.json) through tokenizers.js, the
 * tokenizer library transformers.js itself runs (its PreTrainedTokenizer is this Tokenizer
 * plus the special tokens read from tokenizer_config.json, as here). Taken directly, text
 * encoding does not need transformers.js, whose ONNX Runtime is optional (package.json).
 * CLIP's truncation and padding are done here: Hugging Face's Python tokenizers truncate the
 * words and keep EOS last, while transformers.js cuts the finished sequence (EOS included),
 * which would move CLIP's pooled token; padding uses the pad token (CLIP's is EOS).
 */
export class ClipTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly maxLength: number,
    readonly padTokenId: number,
    readonly eosTokenId: number | undefined,
    readonly folder: string,
    /**
     * Every batch is padded to maxLength whatever padding is asked for: SigLIP pools the last
     * position and attends over padding, so its embeddings depend on the padded length and
     * its checkpoints were trained (and are run) at max_length.
     */
    readonly alwaysMaxLength = false,
  ) {}

  static async load(dir: string, maxLength: number, options: { alwaysMaxLength?: boolean } = {}): Promise<ClipTokenizer> {
    const folder = resolve(dir);
    const tokenizerFile = join(folder, 'tokenizer.json');
    const configFile = join(folder, 'tokenizer_config.json');
    if (!existsSync(tokenizerFile)) throw new InputError('tokenizer.json is missing from the model folder', { file: folder });
    if (!existsSync(configFile)) throw new InputError('tokenizer_config.json is missing from the model folder', { file: folder });
    const tokenizerJson = await readJsonObject(tokenizerFile);
    const config = await readJsonObject(configFile);
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (error) {
      throw new InputError(`cannot load the tokenizer: ${(error as Error).message.split('\n')[0]}`, { file: tokenizerFile });
    }
    const idOf = (...keys: string[]) => {
      const token = specialToken(config, configFile, keys);
      return token === undefined ? undefined : tokenizer.token_to_id(token);
    };
    const eos = idOf('eos_token');
    const pad = idOf('pad_token', 'eos_token') ?? eos;
    if (pad === undefined) throw new InputError('the tokenizer defines neither a pad token nor an EOS token to pad with', { file: configFile });
    return new ClipTokenizer(tokenizer, maxLength, pad, eos, folder, options.alwaysMaxLength ?? false);
  }

  /** Token ids of one text with the tokenizer's special tokens, before truncation. */
  encodeOne(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true }).ids;
  }

  /**
   * Tokenises a batch: truncated to `maxLength` keeping the final special token, padded to
   * `maxLength` ('max_length', what CLIP was trained with) or to the longest text.
   */
  encode(texts: readonly string[], padding: PaddingMode = 'max_length'): TokenBatch {
    const rows = texts.map((text) => {
      const ids = this.encodeOne(text);
      if (ids.length <= this.maxLength) return ids;
      const last = ids[ids.length - 1];
      return last === this.eosTokenId ? [...ids.slice(0, this.maxLength - 1), last] : ids.slice(0, this.maxLength);
    });
    const length = padding === 'max_length' || this.alwaysMaxLength ? this.maxLength : Math.max(1, ...rows.map((r) => r.length));
    const inputIds = new Int32Array(texts.length * length).fill(this.padTokenId);
    const attentionMask = new Int32Array(texts.length * length);
    rows.forEach((ids, row) => {
      inputIds.set(ids, row * length);
      attentionMask.fill(1, row * length, row * length + ids.length);
    });
    return { inputIds, attentionMask, batch: texts.length, length };
  }
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InputError(`not valid JSON: ${(error as Error).message}`, { file });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError('expected a JSON object', { file });
  return value as Record<string, unknown>;
}

/**
 * The first of `keys` that tokenizer_config.json sets, as a token string: written either as
 * the string itself or as an AddedToken object ({"__type": "AddedToken", "content": …}), the
 * two forms transformers.js reads.
 */
function specialToken(config: Record<string, unknown>, file: string, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const item = config[key];
    if (!item) continue;
    if (typeof item === 'string') return item;
    if (typeof item === 'object' && (item as { __type?: unknown }).__type === 'AddedToken' && typeof (item as { content?: unknown }).content === 'string') {
      return (item as { content: string }).content;
    }
    throw new InputError(`expected a token string or an AddedToken object, got ${JSON.stringify(item)}`, { file, field: key });
  }
  return undefined;
}
