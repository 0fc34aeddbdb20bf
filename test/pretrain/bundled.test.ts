import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { selectBackend } from '../../models/backends/select.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../../models/encoders/bundled.ts';

test.before(async () => {
  await selectBackend('wasm');
});

test('the bundled SynthScenes CLIP is a complete model folder with its recipe', async (t) => {
  const dir = bundledModelDir();
  t.true(isAbsolute(dir));
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'vlbench-recipe.json', 'README.md']) {
    t.true(existsSync(join(dir, file)), file);
  }
  const recipe = JSON.parse(await readFile(join(dir, 'vlbench-recipe.json'), 'utf8'));
  t.regex(recipe.command, /^vlbench pretrain /);
  t.regex(recipe.data.manifestSha256, /^[0-9a-f]{64}$/);
});

test('the bundled model loads by default and embeds images and texts, with at least 16 image patches for fusion heads', async (t) => {
  const encoder = await loadEncoder(bundledModelDir(), { backend: 'wasm' });
  try {
    const { vision } = encoder.config;
    const patches = (vision.image_size / vision.patch_size) ** 2;
    t.true(patches >= 16);
    const size = vision.image_size;
    const images = await encoder.encodeImages(new Float32Array(3 * size * size), [1, 3, size, size]);
    t.deepEqual(images.tokens.shape, [1, 1 + patches, vision.hidden_size]);
    t.deepEqual(images.embeds.shape, [1, encoder.embeddingDim]);
    const texts = await encoder.encodeTexts(['Two shapes: a small red circle and a large blue square.']);
    t.deepEqual(texts.embeds.shape, [1, encoder.embeddingDim]);
    // The word-level tokenizer knows every word of a SynthScenes caption: no unknown tokens.
    t.false([...texts.inputIds].includes(0));
    t.true([...images.embeds.data, ...texts.embeds.data].every(Number.isFinite));
  } finally {
    await encoder.dispose();
  }
});
