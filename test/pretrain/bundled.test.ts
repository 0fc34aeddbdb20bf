import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { SeededRandom } from '../../core/random.ts';
import { selectBackend } from '../../models/backends/select.ts';
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../../models/encoders/bundled.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import type { TfjsClipEncoder } from '../../models/encoders/clip-encoder.ts';
import { preprocessedBatches } from '../../models/image-pipeline.ts';
import { captionImageIndexOf, loadKarpathySplit, retrievalCaptions, scoreRetrieval } from '../../tasks/retrieval/index.ts';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';
import { temporaryFolders } from '../support/temporary-folders.ts';

const temporaryDir = temporaryFolders(test);

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

/** Rows of `embeds` [n, d] scaled to unit length, so that a dot product is the cosine. */
function unitRows(embeds: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => embeds.div(embeds.norm('euclidean', 1, true).add(1e-12)) as tf.Tensor2D);
}

test('the bundled model retrieves: zero-shot image→text R@1 on fresh SynthScenes source images is far above chance, and random weights are not', async (t) => {
  const root = await temporaryDir(join(tmpdir(), 'vlbench-bundled-'));
  const synth = join(root, 'synth');
  const encoder = (await loadEncoder(bundledModelDir(), { backend: 'wasm' })) as TfjsClipEncoder;
  const random = ClipModel.initialise(encoder.config, new SeededRandom(5));
  try {
    t.is(encoder.engine, 'tfjs', 'the bundled folder loads on the tfjs engine, whose model and tokenizer this test reads');
    // A seed the model was not pretrained on (its data used seed 1), at the model's own image size.
    await generateSynthScenes({ outDir: synth, images: 40, seed: 12345, size: encoder.config.vision.image_size, domains: ['source'] });
    const split = await loadKarpathySplit({ split: 'train', files: { annotations: synthPaths.retrieval(synth, 'source') }, imagesDir: synthPaths.imagesRoot(synth) });
    const images = split.examples.length;
    const captions = retrievalCaptions(split);
    t.true(images >= 20, `${images} images`);
    // Chance for image→text R@1: a random ranking puts one of image i's own captions first with
    // probability (its captions) / (all captions); averaged over images.
    const chance = (100 * split.examples.reduce((sum, image) => sum + image.captions.length / captions.length, 0)) / images;
    const size = encoder.config.vision.image_size;
    const pixels = new Float32Array(images * 3 * size * size);
    let filled = 0;
    for await (const batch of preprocessedBatches(split.examples.map((image) => image.path), encoder.preprocessing, { batchSize: 64 })) {
      pixels.set(batch.pixels, filled);
      filled += batch.pixels.length;
    }
    t.is(filled, pixels.length);
    const tokens = encoder.tokenizer.encode(captions.map((caption) => caption.text), 'longest');
    const recallAt1 = (model: ClipModel): number => {
      const similarities = tf.tidy(() => {
        const imageEmbeds = unitRows(model.imageForward(tf.tensor4d(pixels, [images, 3, size, size])).embeds as tf.Tensor2D);
        const textEmbeds = unitRows(model.textForward(tokens).embeds as tf.Tensor2D);
        return tf.matMul(imageEmbeds, textEmbeds, false, true).dataSync() as Float32Array;
      });
      return scoreRetrieval(similarities, images, captionImageIndexOf(split)).i2t.r1;
    };
    const bundled = recallAt1(encoder.model);
    const untrained = recallAt1(random);
    t.log(`${images} images, ${captions.length} captions: i2t R@1 bundled ${bundled.toFixed(1)}, random weights ${untrained.toFixed(1)}, chance ${chance.toFixed(1)}`);
    // The bundled model reaches 88% on 1,000 test images (its README); on a few dozen it should
    // rank its own caption first for most images. Half, and ten times chance, is far from luck.
    const threshold = Math.max(50, 10 * chance);
    t.true(bundled >= threshold, `bundled i2t R@1 ${bundled} below ${threshold} (chance ${chance.toFixed(2)})`);
    // The same check on random weights fails, so the check measures what pretraining learned.
    t.true(untrained < threshold, `random weights reach i2t R@1 ${untrained}`);
  } finally {
    random.dispose();
    await encoder.dispose();
  }
});
