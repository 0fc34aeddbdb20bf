// Contrastive pretraining throughput: samples/s of full InfoNCE training steps (forward, backward,
// AdamW) for a pretraining config, next to the forward pass alone (image + text towers) in the
// same run, so the ratio survives a busy machine. Random pixels and captions of SynthScenes length.
//
//   npx tsx bench/pretrain.ts [--config tiny|small] [--batch 64] [--steps 5] [--backend auto] [--no-baseline]
//
// Any backend but plain wasm is followed by plain wasm on the same shapes, in the same run.
import * as tf from '@tensorflow/tfjs';
import { describeBackend, parseBackendChoice, selectBackend } from '../models/backends/select.ts';
import { SeededRandom } from '../core/random.ts';
import { ClipModel } from '../models/encoders/clip.ts';
import { wordLevelVocabulary } from '../models/encoders/word-level-tokenizer.ts';
import { PRETRAIN_CONFIG_NAMES, contrastivePretrainingProblem, pretrainClipConfig, withTransposeFreeMatMulGradient, type PretrainConfigName } from '../models/pretrain.ts';
import type { ClipTokenizer } from '../models/encoders/clip-tokenizer.ts';
import type { TokenBatch } from '../models/encoders/clip.ts';
import { parseBenchArguments } from './command-line.ts';
import { timeRuns } from './measurement.ts';

const { values, refuse, integer } = parseBenchArguments('npx tsx bench/pretrain.ts [--config tiny|small] [--batch 64] [--steps 5] [--backend auto] [--no-baseline]', {
  config: { type: 'string', default: 'tiny' },
  batch: { type: 'string', default: '64' },
  steps: { type: 'string', default: '5' },
  backend: { type: 'string', default: 'auto' },
  'no-baseline': { type: 'boolean', default: false },
});
const configName = values.config as PretrainConfigName;
if (!PRETRAIN_CONFIG_NAMES.includes(configName)) refuse(`--config expects one of ${PRETRAIN_CONFIG_NAMES.join(', ')}, got "${values.config}"`);
const batchSize = integer('--batch', values.batch);
const steps = integer('--steps', values.steps);
const backend = await selectBackend(parseBackendChoice(values.backend));
console.log(describeBackend(backend));

// A SynthScenes-like vocabulary and captions of typical length (about 30 tokens).
const words = ['a', 'an', 'small', 'large', 'red', 'green', 'blue', 'yellow', 'circle', 'square', 'star', 'and', ',', '.', 'shapes', 'the', 'is', 'above'];
const vocabulary = wordLevelVocabulary([words.join(' ')]);
const config = pretrainClipConfig(configName, vocabulary);
const random = new SeededRandom(0);
const length = 32;
const tokenBatch = (n: number): TokenBatch => {
  const inputIds = new Int32Array(n * length);
  for (let row = 0; row < n; row++) {
    inputIds[row * length] = vocabulary.startId;
    for (let t = 1; t < length - 1; t++) inputIds[row * length + t] = random.int(1, vocabulary.size - 3);
    inputIds[row * length + length - 1] = vocabulary.endId;
  }
  return { inputIds, attentionMask: new Int32Array(n * length).fill(1), batch: n, length };
};
// The problem only calls encode(texts, 'longest'); a stand-in keeps tokenisation out of the timing.
const tokenizer = { encode: (texts: readonly string[]) => tokenBatch(texts.length) } as unknown as ClipTokenizer;
const size = config.vision.image_size;
const examples = batchSize * 2;
const pixels = new Float32Array(examples * 3 * size * size).map(() => random.normal());
const pairs = { pixels, imageSize: size, captions: Array.from({ length: examples }, () => ['caption']) };

/** Forward and training-step samples/s on the current backend, for a fresh model from the same seed. */
async function measure(): Promise<{ forwardRate: number; trainRate: number }> {
  const model = ClipModel.initialise(config, new SeededRandom(1));
  try {
    const forward = () =>
      tf.tidy(() => {
        const image = model.imageForward(tf.tensor4d(pixels.subarray(0, batchSize * 3 * size * size), [batchSize, 3, size, size])).embeds;
        const text = model.textForward(tokenBatch(batchSize)).embeds;
        image.dataSync();
        text.dataSync();
      });
    // One warm-up, then the mean of --steps runs (a step is long: its mean is what a run pays).
    const forwardRate = batchSize / (await timeRuns(forward, { warmup: 1, runs: steps })).mean;

    const problem = contrastivePretrainingProblem(model, tokenizer, pairs);
    const batch = Array.from({ length: batchSize }, (_, i) => i);
    const trainRate = await withTransposeFreeMatMulGradient(async () => {
      let k = 0;
      const step = () => {
        const result = problem.computeGradients(batch, { step: k, totalSteps: steps + 1, random: new SeededRandom(k) });
        k++;
        for (const g of result.gradients.values()) g.dispose();
      };
      return batchSize / (await timeRuns(step, { warmup: 1, runs: steps })).mean;
    });
    return { forwardRate, trainRate };
  } finally {
    model.dispose();
  }
}

const patches = (size / config.vision.patch_size) ** 2;
console.log(
  `config ${configName}: ${size} px, ${patches} patches, vision ${config.vision.hidden_size}×${config.vision.num_hidden_layers}, text ${config.text.hidden_size}×${config.text.num_hidden_layers}, batch ${batchSize}, ${length} tokens`,
);
const { forwardRate, trainRate } = await measure();
console.log(`forward (image + text towers): ${forwardRate.toFixed(1)} samples/s`);
console.log(`pretraining step (forward + backward, InfoNCE; optimiser excluded): ${trainRate.toFixed(1)} samples/s (${(trainRate / forwardRate).toFixed(2)}× the forward rate)`);

// Plain wasm in the same run, so the speed-up survives a busy machine (--no-baseline skips it).
if (backend.name !== 'wasm' && !values['no-baseline']) {
  const baseline = await selectBackend('wasm');
  const plain = await measure();
  console.log(`baseline ${describeBackend(baseline)}`);
  console.log(`  forward (image + text towers): ${plain.forwardRate.toFixed(1)} samples/s (${backend.name}: ${(forwardRate / plain.forwardRate).toFixed(2)}× this)`);
  console.log(`  pretraining step (forward + backward, InfoNCE; optimiser excluded): ${plain.trainRate.toFixed(1)} samples/s (${backend.name}: ${(trainRate / plain.trainRate).toFixed(2)}× this)`);
}
