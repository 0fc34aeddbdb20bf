import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { InputError } from '../../core/errors.ts';
import type { TokenBatch } from './clip.ts';

/**
 * Loads transformers.js for local files only: a model folder is read from disk and nothing
 * is ever fetched (there is no network here, and a benchmark must not change under a user
 * because a hub file changed).
 */
export function useLocalFilesOnly(): void {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.useBrowserCache = false;
}

export type PaddingMode = 'max_length' | 'longest';

/**
 * The folder's tokenizer (tokenizer.json + tokenizer_config.json) through transformers.js,
 * with CLIP's truncation and padding done here: Hugging Face's Python tokenizers truncate the
 * words and keep EOS last, while transformers.js cuts the finished sequence (EOS included),
 * which would move CLIP's pooled token; padding uses the pad token (CLIP's is EOS).
 */
export class ClipTokenizer {
  private constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    readonly maxLength: number,
    readonly padTokenId: number,
    readonly eosTokenId: number | undefined,
    readonly folder: string,
  ) {}

  static async load(dir: string, maxLength: number): Promise<ClipTokenizer> {
    const folder = resolve(dir);
    if (!existsSync(join(folder, 'tokenizer.json'))) throw new InputError('tokenizer.json is missing from the model folder', { file: folder });
    useLocalFilesOnly();
    let tokenizer: PreTrainedTokenizer;
    try {
      tokenizer = await AutoTokenizer.from_pretrained(folder, { local_files_only: true });
    } catch (error) {
      throw new InputError(`cannot load the tokenizer: ${(error as Error).message.split('\n')[0]}`, { file: join(folder, 'tokenizer.json') });
    }
    const eos = tokenizer.eos_token_id ?? undefined;
    const pad = tokenizer.pad_token_id ?? eos;
    if (pad === undefined) throw new InputError('the tokenizer defines neither a pad token nor an EOS token to pad with', { file: join(folder, 'tokenizer_config.json') });
    return new ClipTokenizer(tokenizer, maxLength, pad, eos, folder);
  }

  /** Token ids of one text with the tokenizer's special tokens, before truncation. */
  encodeOne(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true });
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
    const length = padding === 'max_length' ? this.maxLength : Math.max(1, ...rows.map((r) => r.length));
    const inputIds = new Int32Array(texts.length * length).fill(this.padTokenId);
    const attentionMask = new Int32Array(texts.length * length);
    rows.forEach((ids, row) => {
      inputIds.set(ids, row * length);
      attentionMask.fill(1, row * length, row * length + ids.length);
    });
    return { inputIds, attentionMask, batch: texts.length, length };
  }
}
