import test from 'ava';
import { mkdtemp, readdir, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../../models/backends/select.ts';
import { extractTextFeatures } from '../../models/features.ts';
import { type AlignedEncoder } from '../../models/encoders/aligned-encoder.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let encoder: AlignedEncoder;

test.before(async () => {
  await selectBackend('wasm');
  encoder = await loadEncoder(fixtureModel, { backend: 'wasm' });
});
test.after.always(async () => {
  await encoder?.dispose();
});

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const texts = ['a red circle', 'What color is the large square to the left of the small star?', 'a', 'a red circle', 'two blue stars and a green hexagon'];

test('text features: length-sorted batches padded to their longest equal one text at a time, cut to the longest text', async (t) => {
  const table = await extractTextFeatures(encoder, texts, { batchSize: 2 });
  t.is(table.size, 4, 'each distinct text once');
  for (const text of new Set(texts)) {
    const alone = await encoder.encodeTexts([text], { padding: 'longest' });
    const length = alone.tokens.shape[1];
    t.true(length <= table.tokenCount);
    const row = table.row(text);
    const dim = table.tokenDim;
    // Equal up to float rounding: a batch of 2 and a batch of 1 run different kernel shapes.
    t.true(maxDifference(table.tokens.subarray(row * table.tokenCount * dim, row * table.tokenCount * dim + length * dim), alone.tokens.data) < 1e-5, text);
    t.true(maxDifference(table.embeds.subarray(row * table.embedDim, (row + 1) * table.embedDim), alone.embeds.data) < 1e-5, text);
    t.is(table.longestText([text]), length);
  }
});

test('text features come back from the disk cache unchanged, and a damaged cache file is encoded again', async (t) => {
  const cacheRoot = await mkdtemp(join(tmpdir(), 'vlbench-text-cache-'));
  const first = await extractTextFeatures(encoder, texts, { cacheRoot });
  const [file] = await readdir(join(cacheRoot, 'text-features'));
  t.truthy(file);
  const cached = await extractTextFeatures(encoder, texts, { cacheRoot });
  t.deepEqual([...cached.tokens], [...first.tokens]);
  t.deepEqual([...cached.embeds], [...first.embeds]);
  t.deepEqual(cached.gatherMasks(texts), first.gatherMasks(texts));
  await truncate(join(cacheRoot, 'text-features', file), 100);
  const again = await extractTextFeatures(encoder, texts, { cacheRoot });
  t.deepEqual([...again.embeds], [...first.embeds]);
  const other = await extractTextFeatures(encoder, ['another text'], { cacheRoot });
  t.is(other.size, 1, 'another text set has its own entry');
});
