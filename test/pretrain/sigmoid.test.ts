import test from 'ava';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { pretrainOptionsFromFlags } from '../../cli/commands/pretrain.ts';
import { runPretrain } from '../../harness/pretrain-run.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { wordLevelVocabulary, writeWordLevelTokenizer } from '../../models/encoders/word-level-tokenizer.ts';
import { sigmoidLoss } from '../../models/objectives/sigmoid-pairs.ts';
import { loadPretrainingPairs, pretrainClip, pretrainClipConfig, pretrainLogitBias, pretrainPreprocessing } from '../../models/pretrain.ts';
import { SeededRandom } from '../../core/random.ts';
import { loadKarpathySplit } from '../../tasks/retrieval/index.ts';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';

let root: string;
let data: string;

test.before(async () => {
  await selectBackend('wasm');
  root = await mkdtemp(join(tmpdir(), 'vlbench-pretrain-sigmoid-'));
  data = join(root, 'synth');
  await generateSynthScenes({ outDir: data, images: 24, seed: 3, size: 48, domains: ['source'] });
});

test.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

test('pretraining a tiny CLIP with the sigmoid loss lowers it and learns the bias', async (t) => {
  const split = await loadKarpathySplit({ split: 'train', files: { annotations: synthPaths.retrieval(data, 'source') }, imagesDir: synthPaths.imagesRoot(data) });
  const captions = split.examples.map((image) => image.captions.map((c) => c.text));
  const dir = join(root, 'tokenizer');
  await mkdir(dir, { recursive: true });
  const vocabulary = wordLevelVocabulary(captions.flat());
  const config = pretrainClipConfig('tiny', vocabulary, 'sigmoid');
  t.is(config.logitScaleInit, Math.log(10));
  await writeWordLevelTokenizer(dir, vocabulary, config.text.max_position_embeddings);
  const tokenizer = await ClipTokenizer.load(dir, config.text.max_position_embeddings);
  const pairs = await loadPretrainingPairs(split.examples.map((image, i) => ({ path: image.path, captions: captions[i] })), pretrainPreprocessing(config.vision.image_size));
  const model = ClipModel.initialise(config, new SeededRandom(1));
  const bias = pretrainLogitBias(model);
  const fullBatchLoss = () =>
    tf.tidy(() => {
      const pixels = tf.tensor4d(pairs.pixels, [captions.length, 3, pairs.imageSize, pairs.imageSize]);
      const tokens = tokenizer.encode(captions.map((list) => list[0]), 'longest');
      return sigmoidLoss(model.imageForward(pixels).embeds, model.textForward(tokens).embeds, model.logitScale, bias).dataSync()[0];
    });
  try {
    t.is(bias.dataSync()[0], -10);
    const before = fullBatchLoss();
    const result = await pretrainClip(model, tokenizer, pairs, { epochs: 8, batchSize: 6, learningRate: 3e-3, seed: 2, checkpointEvery: 0 }, {}, { loss: 'sigmoid', logitBias: bias });
    const after = fullBatchLoss();
    t.is(result.steps, 8 * 3);
    t.true(after < before - 0.3, `loss ${before} → ${after}`);
    t.not(bias.dataSync()[0], -10, 'the bias is learnt');
    t.true(result.curve.every((p) => Number.isFinite(p.loss)));
  } finally {
    bias.dispose();
    model.dispose();
  }
});

test('vlbench pretrain --loss sigmoid records the loss and the learnt bias; an unknown loss is refused', async (t) => {
  const out = join(root, 'model-sigmoid');
  const { recipe } = await runPretrain(
    pretrainOptionsFromFlags({ data, out, config: 'tiny', epochs: '1', batch: '6', seed: '5', lr: '0.002', checkpointEvery: '2', backend: 'wasm', loss: 'sigmoid' }),
    () => {},
    [],
  );
  t.is(recipe.loss, 'sigmoid');
  t.is(typeof recipe.logitBias, 'number');
  t.not(recipe.logitBias, -10);
  t.true(Number.isFinite(recipe.finalLoss));
  const saved = JSON.parse(await readFile(join(out, 'vlbench-recipe.json'), 'utf8')) as { loss: string };
  t.is(saved.loss, 'sigmoid');
  t.throws(() => pretrainOptionsFromFlags({ data, out: join(root, 'x'), loss: 'hinge' }), { instanceOf: InputError, message: /unknown loss "hinge"/ });
});
