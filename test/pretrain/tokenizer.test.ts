import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { END_TOKEN, START_TOKEN, UNKNOWN_TOKEN, wordLevelPieces, wordLevelVocabulary, writeWordLevelTokenizer } from '../../models/encoders/word-level-tokenizer.ts';
import { pretrainClipConfig } from '../../models/pretrain.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import { SeededRandom } from '../../core/random.ts';
import { selectBackend } from '../../models/backends/select.ts';

const folders: string[] = [];
test.after.always(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

async function tokenizerFolder(texts: string[], maxLength: number) {
  const dir = await mkdtemp(join(tmpdir(), 'vlbench-wordlevel-'));
  folders.push(dir);
  const vocabulary = wordLevelVocabulary(texts);
  await writeWordLevelTokenizer(dir, vocabulary, maxLength);
  return { dir, vocabulary, tokenizer: await ClipTokenizer.load(dir, maxLength) };
}

test('pieces follow the Whitespace pre-tokenizer after lowercasing', (t) => {
  t.deepEqual(wordLevelPieces('A large Red circle, and: two;'), ['a', 'large', 'red', 'circle', ',', 'and', ':', 'two', ';']);
});

test('the vocabulary is sorted with unknown first and start/end last, whatever the text order', (t) => {
  const a = wordLevelVocabulary(['b a.', 'c']);
  const b = wordLevelVocabulary(['c', 'b a.']);
  t.deepEqual(a, b);
  t.deepEqual(a.vocab, { [UNKNOWN_TOKEN]: 0, '.': 1, a: 2, b: 3, c: 4, [START_TOKEN]: 5, [END_TOKEN]: 6 });
  t.is(a.size, 7);
  t.is(a.endId, 6);
});

test('transformers.js reads the tokenizer: exact ids, start and end tokens, unknown words, EOS padding', async (t) => {
  const { tokenizer, vocabulary, dir } = await tokenizerFolder(['A small red circle, and a large blue square.'], 8);
  const id = (word: string) => vocabulary.vocab[word];
  t.deepEqual(tokenizer.encodeOne('A small RED circle, zebra.'), [vocabulary.startId, id('a'), id('small'), id('red'), id('circle'), id(','), vocabulary.unknownId, id('.'), vocabulary.endId]);
  t.is(tokenizer.padTokenId, vocabulary.endId);
  t.is(tokenizer.eosTokenId, vocabulary.endId);
  const batch = tokenizer.encode(['a red circle', 'a small red circle, and a large blue square.']);
  t.is(batch.length, 8);
  const end = vocabulary.endId;
  t.deepEqual([...batch.inputIds.subarray(0, 8)], [vocabulary.startId, id('a'), id('red'), id('circle'), end, end, end, end]);
  t.deepEqual([...batch.attentionMask.subarray(0, 8)], [1, 1, 1, 1, 1, 0, 0, 0]);
  // Truncated to 8, keeping the end token last.
  t.deepEqual([...batch.inputIds.subarray(8, 16)], [vocabulary.startId, id('a'), id('small'), id('red'), id('circle'), id(','), id('and'), end]);
  const config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'));
  t.is(config.pad_token, END_TOKEN);
});

test('ClipModel pools at the end token the tokenizer writes (config ids agree with the tokenizer)', async (t) => {
  await selectBackend('wasm');
  const { tokenizer, vocabulary } = await tokenizerFolder(['a red circle and a blue square'], 48);
  const config = pretrainClipConfig('tiny', vocabulary);
  t.is(config.text.eos_token_id, vocabulary.endId);
  t.is(config.text.bos_token_id, vocabulary.startId);
  t.is(config.text.vocab_size, vocabulary.size);
  const model = ClipModel.initialise(config, new SeededRandom(0));
  try {
    const batch = tokenizer.encode(['a red circle', 'a red circle and a blue square'], 'max_length');
    t.deepEqual([...model.eosPositions(batch)], [4, 8]);
  } finally {
    model.dispose();
  }
});
