import { join } from 'node:path';
import { writeFileAtomically } from '../../core/atomic-write.ts';

/**
 * A word-level tokenizer in Hugging Face's `tokenizer.json` format, for a small closed
 * vocabulary such as SynthScenes captions. CLIP's 49k BPE would waste almost all of a tiny
 * model's embedding table on words that never occur; a word per token also keeps the
 * captions short enough for a 48-token context.
 *
 * The layout follows CLIP's conventions so ClipModel and ClipTokenizer treat it like a real
 * CLIP tokenizer: every text becomes <|startoftext|> words <|endoftext|> (a TemplateProcessing
 * post-processor), padding uses <|endoftext|>, and <|endoftext|> has the largest id. The
 * config's eos_token_id is that id (not the legacy 2), so ClipModel pools at the first
 * <|endoftext|>, which is the end of the words.
 */

export const START_TOKEN = '<|startoftext|>';
export const END_TOKEN = '<|endoftext|>';
export const UNKNOWN_TOKEN = '<|unk|>';

export interface WordLevelVocabulary {
  /** Token → id: UNKNOWN_TOKEN 0, the words sorted, then START_TOKEN, END_TOKEN. */
  vocab: Record<string, number>;
  unknownId: number;
  startId: number;
  endId: number;
  size: number;
}

/**
 * Splits text the way the tokenizer's normalizer and pre-tokenizer do: lowercase, then runs
 * of word characters and runs of other non-space characters (HF's `Whitespace`
 * pre-tokenizer, `\w+|[^\w\s]+`). Used to collect the vocabulary from training captions.
 */
export function wordLevelPieces(text: string): string[] {
  return text.toLowerCase().match(/\w+|[^\w\s]+/g) ?? [];
}

/** The vocabulary of a set of texts (sorted, so the same texts give the same ids in any order). */
export function wordLevelVocabulary(texts: Iterable<string>): WordLevelVocabulary {
  const words = new Set<string>();
  for (const text of texts) for (const piece of wordLevelPieces(text)) words.add(piece);
  for (const special of [START_TOKEN, END_TOKEN, UNKNOWN_TOKEN]) words.delete(special);
  const ordered = [UNKNOWN_TOKEN, ...[...words].sort(), START_TOKEN, END_TOKEN];
  const vocab = Object.fromEntries(ordered.map((token, id) => [token, id]));
  return { vocab, unknownId: 0, startId: ordered.length - 2, endId: ordered.length - 1, size: ordered.length };
}

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** The `tokenizer.json` object (tokenizers' serialisation format). */
export function wordLevelTokenizerJson(vocabulary: WordLevelVocabulary): Record<string, unknown> {
  const { vocab, unknownId, startId, endId } = vocabulary;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(unknownId, UNKNOWN_TOKEN), addedToken(startId, START_TOKEN), addedToken(endId, END_TOKEN)],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: START_TOKEN, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: END_TOKEN, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: START_TOKEN, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: END_TOKEN, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: END_TOKEN, type_id: 1 } },
      ],
      special_tokens: {
        [START_TOKEN]: { id: START_TOKEN, ids: [startId], tokens: [START_TOKEN] },
        [END_TOKEN]: { id: END_TOKEN, ids: [endId], tokens: [END_TOKEN] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordLevel', vocab, unk_token: UNKNOWN_TOKEN },
  };
}

/** The `tokenizer_config.json` object: the special tokens by role, CLIP's padding with EOS. */
export function wordLevelTokenizerConfig(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: START_TOKEN,
    eos_token: END_TOKEN,
    pad_token: END_TOKEN,
    unk_token: UNKNOWN_TOKEN,
    model_max_length: maxLength,
    do_lower_case: true,
    clean_up_tokenization_spaces: true,
  };
}

/** The text_config token ids that must agree with the tokenizer. */
export function wordLevelTextConfig(vocabulary: WordLevelVocabulary): { vocab_size: number; bos_token_id: number; eos_token_id: number; pad_token_id: number } {
  return { vocab_size: vocabulary.size, bos_token_id: vocabulary.startId, eos_token_id: vocabulary.endId, pad_token_id: vocabulary.endId };
}

/** Writes tokenizer.json and tokenizer_config.json into a model folder (each through a temporary file). */
export async function writeWordLevelTokenizer(dir: string, vocabulary: WordLevelVocabulary, maxLength: number): Promise<void> {
  const files: Array<[string, unknown]> = [
    ['tokenizer.json', wordLevelTokenizerJson(vocabulary)],
    ['tokenizer_config.json', wordLevelTokenizerConfig(maxLength)],
  ];
  for (const [name, json] of files) {
    await writeFileAtomically(join(dir, name), JSON.stringify(json, null, 2) + '\n');
  }
}
