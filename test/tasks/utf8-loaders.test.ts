import test from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';
import { synthLoadOptions } from '../../tasks/synth/run-splits.ts';
import { getTask } from '../../tasks/registry.ts';

/**
 * Issue 30: text files are UTF-8 or refused, naming the file and the byte offset. Node decodes
 * an invalid byte as U+FFFD and reads on: a GQA question, a VCR answer or a caption would then
 * silently differ from the file.
 */
let data = '';
test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-utf8-')), 'synth');
  await generateSynthScenes({ outDir: data, images: 20, seed: 2, size: 32, domains: ['source'] });
});

/** Replaces the first "e" inside the file's first occurrence of `word` with the byte 0xff; returns its offset. */
async function corrupt(file: string, word: string): Promise<number> {
  const bytes = await readFile(file);
  const at = bytes.indexOf(word);
  if (at < 0) throw new Error(`${word} not in ${file}`);
  const offset = at + word.indexOf('e');
  bytes[offset] = 0xff;
  await writeFile(file, bytes);
  return offset;
}

for (const [task, fileOf, word] of [
  ['gqa', () => synthPaths.gqaQuestions(data, 'test_source'), 'there'],
  ['vcr', () => synthPaths.vcrAnnotations(data, 'test_source'), 'the'],
  ['retrieval', () => synthPaths.retrieval(data, 'source'), 'the'],
] as const) {
  test.serial(`${task}: a file with a byte that is not UTF-8 is refused naming the file and its offset`, async (t) => {
    const file = fileOf();
    const offset = await corrupt(file, word);
    const error = await t.throwsAsync(getTask(task).load(synthLoadOptions(task, data, 'source', 'test')));
    t.regex(error!.message, new RegExp(`not UTF-8: invalid byte sequence at byte offset ${offset} \\(0xff`));
    t.true(error!.message.includes(file.split('/').at(-1)!), error!.message);
  });
}
