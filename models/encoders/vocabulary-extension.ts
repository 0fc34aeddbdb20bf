import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../core/errors.ts';
import type { SeededRandom } from '../../core/random.ts';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.ts';
import { wordLevelPieces } from './word-level-tokenizer.ts';

const TOKEN_EMBEDDING = 'text_model.embeddings.token_embedding.weight';

/**
 * Adds the words of `texts` that a word-level model's tokenizer lacks: each gets the next
 * free id and a new token-embedding row drawn as CLIP initialises embeddings (N(0, 0.02²)).
 * Existing ids and weights are untouched, so everything the model learned stays.
 *
 * Why: a CLIP pretrained on captions has never seen question words ("how", "many", "what",
 * "?"); its tokenizer maps them all to <|unk|>, so a frozen text encoder cannot tell two
 * questions apart. With their own (untrained) embeddings the words stay distinguishable,
 * and the fine-tuned heads learn what they mean.
 */
export async function extendWordLevelVocabulary(fromDir: string, toDir: string, texts: Iterable<string>, random: SeededRandom): Promise<{ added: string[] }> {
  const tokenizerFile = join(fromDir, 'tokenizer.json');
  const tokenizer = JSON.parse(await readFile(tokenizerFile, 'utf8'));
  if (tokenizer?.model?.type !== 'WordLevel') throw new InputError('only word-level tokenizers can be extended (this model uses another kind)', { file: tokenizerFile, field: 'model.type' });
  const vocab: Record<string, number> = tokenizer.model.vocab;
  const missing = new Set<string>();
  for (const text of texts) for (const piece of wordLevelPieces(text)) if (!(piece in vocab)) missing.add(piece);
  const added = [...missing].sort();
  const configFile = join(fromDir, 'config.json');
  const config = JSON.parse(await readFile(configFile, 'utf8'));
  const oldSize: number = config.text_config.vocab_size;
  const weights = await readSafetensors(join(fromDir, 'model.safetensors'));
  const embedding = weights.entry(TOKEN_EMBEDDING);
  if (!embedding || embedding.shape[0] !== oldSize) throw new InputError(`${TOKEN_EMBEDDING} does not have vocab_size ${oldSize} rows`, { file: join(fromDir, 'model.safetensors') });
  const width = embedding.shape[1];
  added.forEach((word, i) => (vocab[word] = oldSize + i));
  config.text_config.vocab_size = oldSize + added.length;
  const tensors: [string, TensorToWrite][] = weights.names.map((name) => {
    const data = weights.float32(name);
    if (name !== TOKEN_EMBEDDING) return [name, { shape: weights.entry(name)!.shape, data }];
    const grown = new Float32Array((oldSize + added.length) * width);
    grown.set(data);
    for (let i = oldSize * width; i < grown.length; i++) grown[i] = random.normal() * 0.02;
    return [name, { shape: [oldSize + added.length, width], data: grown }];
  });
  const dtype = embedding.dtype === 'F16' ? 'F16' : 'F32';
  const partial = `${toDir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  await writeSafetensors(join(partial, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
  await writeFile(join(partial, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await writeFile(join(partial, 'tokenizer.json'), `${JSON.stringify(tokenizer, null, 2)}\n`);
  // Everything else in the folder (tokenizer and preprocessor configs, recipes, README) comes along unchanged.
  for (const entry of await readdir(fromDir, { withFileTypes: true })) {
    if (entry.isFile() && !['model.safetensors', 'config.json', 'tokenizer.json'].includes(entry.name)) await copyFile(join(fromDir, entry.name), join(partial, entry.name));
  }
  await rm(toDir, { recursive: true, force: true });
  await rename(partial, toDir);
  return { added };
}
