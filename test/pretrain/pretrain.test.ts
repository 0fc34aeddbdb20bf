import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backends/select.ts';
import { InputError } from '../../core/errors.ts';
import { pretrainOptionsFromFlags, type PretrainFlags } from '../../cli/commands/pretrain.ts';
import { runPretrain as runPretrainWithOptions, type PretrainRecipe } from '../../harness/pretrain-run.ts';

/** The flags as `vlbench pretrain` parses them, then the run (flag errors reject like run errors). */
async function runPretrain(flags: PretrainFlags, ...rest: Parameters<typeof runPretrainWithOptions> extends [unknown, ...infer R] ? R : never) {
  return runPretrainWithOptions(pretrainOptionsFromFlags(flags), ...rest);
}
import { loadEncoder } from '../../models/encoders/load-encoder.ts';
import { ClipModel } from '../../models/encoders/clip.ts';
import { ClipTokenizer } from '../../models/encoders/clip-tokenizer.ts';
import { readSafetensors } from '../../models/encoders/safetensors.ts';
import { wordLevelVocabulary, writeWordLevelTokenizer } from '../../models/encoders/word-level-tokenizer.ts';
import { infoNceLoss } from '../../models/objectives/info-nce.ts';
import { loadPretrainingPairs, pretrainClip, pretrainClipConfig, pretrainPreprocessing, withTransposeFreeMatMulGradient } from '../../models/pretrain.ts';
import { SeededRandom } from '../../core/random.ts';
import { loadKarpathySplit } from '../../tasks/retrieval/index.ts';
import { generateSynthScenes, synthPaths } from '../../tasks/synth/index.ts';

let root: string;
let data: string;

test.before(async () => {
  await selectBackend('wasm');
  root = await mkdtemp(join(tmpdir(), 'vlbench-pretrain-'));
  data = join(root, 'synth');
  // 24 images per domain: 16 train scenes, small images so decoding is instant.
  await generateSynthScenes({ outDir: data, images: 24, seed: 3, size: 48, domains: ['source'] });
});

test.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

const tinyFlags = (out: string, extra: Record<string, string | boolean> = {}) => ({
  data,
  out,
  config: 'tiny',
  epochs: '2',
  batch: '6',
  seed: '5',
  lr: '0.002',
  checkpointEvery: '2',
  backend: 'wasm',
  ...extra,
});

async function trainPairs() {
  const split = await loadKarpathySplit({ split: 'train', files: { annotations: synthPaths.retrieval(data, 'source') }, imagesDir: synthPaths.imagesRoot(data) });
  const captions = split.examples.map((image) => image.captions.map((c) => c.text));
  return { split, captions };
}

test('pretraining a tiny CLIP on a tiny SynthScenes split lowers the InfoNCE loss', async (t) => {
  const { split, captions } = await trainPairs();
  const dir = join(root, 'loss-tokenizer');
  await mkdir(dir, { recursive: true });
  const vocabulary = wordLevelVocabulary(captions.flat());
  const config = pretrainClipConfig('tiny', vocabulary);
  await writeWordLevelTokenizer(dir, vocabulary, config.text.max_position_embeddings);
  const tokenizer = await ClipTokenizer.load(dir, config.text.max_position_embeddings);
  const pairs = await loadPretrainingPairs(
    split.examples.map((image, i) => ({ path: image.path, captions: captions[i] })),
    pretrainPreprocessing(config.vision.image_size),
  );
  const model = ClipModel.initialise(config, new SeededRandom(1));
  // Loss of every image against its first caption: fixed, so before and after compare.
  const fullBatchLoss = () =>
    tf.tidy(() => {
      const pixels = tf.tensor4d(pairs.pixels, [captions.length, 3, pairs.imageSize, pairs.imageSize]);
      const tokens = tokenizer.encode(captions.map((list) => list[0]), 'longest');
      return infoNceLoss(model.imageForward(pixels).embeds, model.textForward(tokens).embeds, model.logitScale as tf.Scalar).dataSync()[0];
    });
  try {
    const before = fullBatchLoss();
    const result = await pretrainClip(model, tokenizer, pairs, { epochs: 8, batchSize: 6, learningRate: 3e-3, seed: 2, checkpointEvery: 0 });
    const after = fullBatchLoss();
    t.is(result.steps, 8 * 3);
    t.true(after < before - 0.3, `loss ${before} → ${after}`);
    // The learnable scale moved and stays within CLIP's cap.
    const scale = Math.exp(model.logitScale.dataSync()[0]);
    t.true(scale <= 100 && Math.abs(scale - 1 / 0.07) > 1e-3, `logit scale ${scale}`);
    t.is(model.freezePolicy, 'frozen');
  } finally {
    model.dispose();
  }
});

test('the transpose-free matmul gradient equals the gradient by hand for every transpose combination, and is put back', async (t) => {
  const random = new SeededRandom(9);
  const values = (n: number) => Array.from({ length: n }, () => random.normal());
  const a = tf.tensor3d(values(2 * 3 * 4), [2, 3, 4]);
  const b = tf.tensor3d(values(2 * 4 * 5), [2, 4, 5]);
  const original = tf.getGradient('BatchMatMul');
  for (const transposeA of [false, true]) {
    for (const transposeB of [false, true]) {
      const x = transposeA ? tf.transpose(a, [0, 2, 1]) : a;
      const y = transposeB ? tf.transpose(b, [0, 2, 1]) : b;
      const f = (p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q, transposeA, transposeB).square().sum();
      const [expectedX, expectedY] = sumOfSquaresMatMulGradient(x.arraySync() as number[][][], y.arraySync() as number[][][], transposeA, transposeB);
      let swapped: unknown;
      const got = await withTransposeFreeMatMulGradient(async () => {
        swapped = tf.getGradient('BatchMatMul');
        return tf.grads(f)([x, y]);
      });
      t.not(swapped, original, 'the gradient is replaced while the work runs');
      const where = `transposeA ${transposeA} transposeB ${transposeB}`;
      t.true(maxAbsDifference(got[0].arraySync() as number[][][], expectedX) < 1e-4, `${where}: d/dx`);
      t.true(maxAbsDifference(got[1].arraySync() as number[][][], expectedY) < 1e-4, `${where}: d/dy`);
    }
  }
  t.is(tf.getGradient('BatchMatMul'), original);
});

/**
 * The gradient of f(x, y) = Σ (op(x)·op(y))², op a transpose when asked, by hand in plain
 * numbers: with C = op(x)·op(y) and G = 2C, d/d op(x) = G·op(y)ᵀ and d/d op(y) = op(x)ᵀ·G, each
 * transposed back when its input was transposed.
 */
function sumOfSquaresMatMulGradient(x: number[][][], y: number[][][], transposeX: boolean, transposeY: boolean): [number[][][], number[][][]] {
  const transpose = (m: number[][]) => m[0].map((_, j) => m.map((row) => row[j]));
  const multiply = (p: number[][], q: number[][]) => p.map((row) => q[0].map((_, j) => row.reduce((sum, v, k) => sum + v * q[k][j], 0)));
  const dx: number[][][] = [];
  const dy: number[][][] = [];
  x.forEach((xBatch, n) => {
    const left = transposeX ? transpose(xBatch) : xBatch;
    const right = transposeY ? transpose(y[n]) : y[n];
    const twiceC = multiply(left, right).map((row) => row.map((v) => 2 * v));
    const dLeft = multiply(twiceC, transpose(right));
    const dRight = multiply(transpose(left), twiceC);
    dx.push(transposeX ? transpose(dLeft) : dLeft);
    dy.push(transposeY ? transpose(dRight) : dRight);
  });
  return [dx, dy];
}

function maxAbsDifference(p: number[][][], q: number[][][]): number {
  return Math.max(...p.flat(2).map((v, i) => Math.abs(v - q.flat(2)[i])));
}

test('vlbench pretrain writes a complete model folder that loads with loadEncoder and embeds', async (t) => {
  const out = join(root, 'model-a');
  const { folder, recipe } = await runPretrain(tinyFlags(out, { dtype: 'f16' }), () => undefined, ['pretrain', '--data', data]);
  t.is(folder, out);
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'vlbench-recipe.json']) t.true(existsSync(join(out, file)), file);
  t.false(existsSync(`${out}.partial`));
  const written = JSON.parse(await readFile(join(out, 'vlbench-recipe.json'), 'utf8')) as PretrainRecipe;
  t.is(written.steps, 2 * 3);
  t.is(written.seed, 5);
  t.is(written.data.images, 16);
  t.is(written.data.captions, 80);
  t.regex(written.data.manifestSha256, /^[0-9a-f]{64}$/);
  t.is(written.command, 'vlbench pretrain --data ' + data);
  t.true(Number.isFinite(written.finalLoss));
  t.is(recipe.steps, written.steps);
  t.is(written.dtype, 'f16');
  const weights = await readSafetensors(join(out, 'model.safetensors'));
  t.is(weights.entry('logit_scale')!.dtype, 'F16');

  const encoder = await loadEncoder(out, { backend: 'wasm' });
  try {
    const size = encoder.config.vision.image_size;
    const images = await encoder.encodeImages(new Float32Array(2 * 3 * size * size).fill(0.5), [2, 3, size, size]);
    t.deepEqual(images.embeds.shape, [2, 64]);
    t.deepEqual(images.tokens.shape, [2, 1 + 16, 64]);
    const texts = await encoder.embedTexts(['A small red circle.', 'Two shapes: a large blue square and a small green star.']);
    t.deepEqual(texts.shape, [2, 64]);
    t.true([...images.embeds.data, ...texts.data].every(Number.isFinite));
  } finally {
    await encoder.dispose();
  }
});

test('an interrupted pretraining run resumes to the same final weights as an uninterrupted one', async (t) => {
  const whole = join(root, 'whole');
  const resumed = join(root, 'resumed');
  await runPretrain(tinyFlags(whole));
  const interrupted = await t.throwsAsync(runPretrain(tinyFlags(resumed), () => undefined, [], { interruptAfterStep: 3 }));
  t.regex(interrupted!.message, /interrupted after step 3/);
  t.false(existsSync(resumed));
  t.true(existsSync(join(`${resumed}.partial`, 'checkpoint', 'checkpoint.json')));
  // Without --resume the half-done run is never silently overwritten.
  await t.throwsAsync(runPretrain(tinyFlags(resumed)), { instanceOf: InputError, message: /--resume/ });
  // Other options than the interrupted run's are refused.
  await t.throwsAsync(runPretrain(tinyFlags(resumed, { resume: true, lr: '0.001' })), { instanceOf: InputError, message: /other options/ });
  const { recipe } = await runPretrain(tinyFlags(resumed, { resume: true }));
  t.is(recipe.resumedFromStep, 2);
  const a = await readSafetensors(join(whole, 'model.safetensors'));
  const b = await readSafetensors(join(resumed, 'model.safetensors'));
  t.deepEqual(a.names, b.names);
  for (const name of a.names) t.deepEqual(b.float32(name), a.float32(name), name);
  t.deepEqual(await readFile(join(resumed, 'tokenizer.json')), await readFile(join(whole, 'tokenizer.json')));
});

test('vlbench pretrain refuses bad options by name', async (t) => {
  await t.throwsAsync(runPretrain(tinyFlags(join(root, 'x'), { config: 'huge' })), { instanceOf: InputError, message: /unknown config "huge"/ });
  await t.throwsAsync(runPretrain(tinyFlags(join(root, 'x'), { epochs: '0' })), { instanceOf: InputError, message: /positive integer/ });
  await t.throwsAsync(runPretrain(tinyFlags(join(root, 'x'), { dtype: 'f64' })), { instanceOf: InputError, message: /f32 or f16/ });
  await t.throwsAsync(runPretrain(tinyFlags(join(root, 'x'), { batch: '1' })), { instanceOf: InputError, message: /at least 2/ });
  await t.throwsAsync(runPretrain(tinyFlags(join(root, 'x'), { domain: 'target' })), { instanceOf: InputError, message: /no target domain/ });
  await t.throwsAsync(runPretrain(tinyFlags(join(root, 'x'), { data: root })), { instanceOf: InputError, message: /not a SynthScenes folder/ });
  await t.throwsAsync(runPretrain({ ...tinyFlags(join(root, 'x')), init: data }), { instanceOf: InputError, message: /drop --config/ });
  await t.throwsAsync(runPretrain(tinyFlags(data)), { instanceOf: InputError, message: /already exists/ });
});
