/**
 * Gate A of issue 28: can the VQA head learn SynthScenes' questions at all, given inputs that
 * say everything? The relational fusion (models/heads/relational-fusion.ts) and the answer
 * classifier train on **perfect object tokens** made from the scene graphs — one token per
 * object: one-hot colour, shape and size plus a little noise, with its true box — and the
 * bundled text encoder's question tokens plus the fusion's own word table. No image encoder.
 * If the head fails here, nothing downstream can work; if it passes, what is left is the
 * image tokens (gate B, bench/region-probe.ts).
 *
 *   npx tsx bench/vqa-gates.ts --data DIR [--sizes 2500,5000,10000] [--epochs 30] [--seed 0]
 *
 * Trains once per training-set size (the first N source training questions, whole images) and
 * scores source validation with the official VQA accuracy, per question family, beside the
 * per-question-type prior of the same training questions: the learning curve the data budget is
 * chosen from. Accept (issue 28): overall ≥ 97 and every family ≥ 95.
 */
import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseBenchArguments } from './command-line.ts';
import { selectBackend, describeBackend, parseBackendChoice } from '../models/backends/select.ts';
import { TfjsClipEncoder } from '../models/encoders/clip-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { extractTextFeatures, type FeatureTable } from '../models/features.ts';
import { boxGeometry, type FusionInputs } from '../models/heads/fusion.ts';
import { RelationalFusion, RELATIONAL_FUSION_DEFAULTS } from '../models/heads/relational-fusion.ts';
import { QuestionWordTable } from '../models/heads/question-words.ts';
import { train } from '../models/train.ts';
import { SeededRandom } from '../core/random.ts';
import { loadGqaSplit, type GqaSceneGraph } from '../tasks/gqa/index.ts';
import { loadVqaSplit, scoreVqa, type VqaExample } from '../tasks/vqa/index.ts';
import { priorPredictions, questionTypePrior } from '../tasks/vqa/priors.ts';
import { SYNTH_COLORS, SYNTH_SHAPES, SYNTH_SIZES } from '../tasks/synth/index.ts';
import { synthLoadOptions } from '../tasks/synth/run-splits.ts';
import { AnswerHead, argmaxAnswer } from '../harness/adapters/answer-classification.ts';
import { vqaAnswers } from '../harness/adapters/vqa.ts';
import { VQA_FAMILY_OF_QUESTION_TYPE } from '../tasks/synth/index.ts';

const usage = 'npx tsx bench/vqa-gates.ts --data DIR [--sizes 2500,5000,10000] [--epochs 30] [--seed 0] [--batch 64] [--lr 0.002] [--noise 0.1] [--dropout 0.1] [--relations 2] [--text both|words|clip] [--relevance-from question|words|slots] [--backend auto]';
const { values, refuse } = parseBenchArguments(usage, {
  data: { type: 'string' },
  sizes: { type: 'string', default: '2500,5000,10000' },
  epochs: { type: 'string', default: '30' },
  seed: { type: 'string', default: '0' },
  batch: { type: 'string', default: '64' },
  lr: { type: 'string', default: '0.002' },
  noise: { type: 'string', default: '0.1' },
  dropout: { type: 'string', default: String(RELATIONAL_FUSION_DEFAULTS.dropout) },
  relations: { type: 'string', default: String(RELATIONAL_FUSION_DEFAULTS.relations) },
  text: { type: 'string', default: 'both' },
  'relevance-from': { type: 'string', default: RELATIONAL_FUSION_DEFAULTS.relevanceFrom },
  backend: { type: 'string', default: 'auto' },
});
const root = values.data ?? refuse('--data is required');
const positiveInteger = (flag: string, value: string) => (Number.isInteger(Number(value)) && Number(value) > 0 ? Number(value) : refuse(`${flag} expects a positive integer, got ${value}`));
const sizes = values.sizes.split(',').map((v) => positiveInteger('--sizes', v));
const epochs = positiveInteger('--epochs', values.epochs);
const batchSize = positiveInteger('--batch', values.batch);
const seed = Number.isInteger(Number(values.seed)) ? Number(values.seed) : refuse(`--seed expects an integer, got ${values.seed}`);
const learningRate = Number(values.lr) > 0 ? Number(values.lr) : refuse(`--lr expects a positive number, got ${values.lr}`);
const noise = Number(values.noise) >= 0 ? Number(values.noise) : refuse(`--noise expects a number ≥ 0, got ${values.noise}`);
const dropoutRate = Number(values.dropout) >= 0 && Number(values.dropout) < 1 ? Number(values.dropout) : refuse(`--dropout expects a number in [0, 1), got ${values.dropout}`);
const relations = Number.isInteger(Number(values.relations)) && Number(values.relations) >= 0 ? Number(values.relations) : refuse(`--relations expects an integer ≥ 0, got ${values.relations}`);

// Which question tokens the fusion reads: the bundled CLIP text encoder's (contextual: one vector
// per whole question, easy to memorise), the fusion's own trained word table, or both (what a run does).
const textSource = ['both', 'words', 'clip'].includes(values.text) ? (values.text as 'both' | 'words' | 'clip') : refuse(`--text expects both, words or clip, got ${values.text}`);

const relevanceFrom = ['question', 'words', 'slots'].includes(values['relevance-from']) ? (values['relevance-from'] as 'question' | 'words' | 'slots') : refuse(`--relevance-from expects question, words or slots, got ${values['relevance-from']}`);

const backend = await selectBackend(parseBackendChoice(values.backend));
console.log(`backend: ${describeBackend(backend)}`);

const [trainSplit, valSplit] = await Promise.all([loadVqaSplit(synthLoadOptions('vqa', root, 'source', 'train')), loadVqaSplit(synthLoadOptions('vqa', root, 'source', 'val'))]);
const graphs = new Map<string, GqaSceneGraph>();
for (const split of ['train', 'val'] as const) {
  const gqa = await loadGqaSplit(synthLoadOptions('gqa', root, 'source', split));
  for (const example of gqa.examples) if (example.sceneGraph) graphs.set(example.imageId, example.sceneGraph);
}
const graphOf = (example: VqaExample) => {
  const graph = graphs.get(basename(example.imagePath).replace(/\.jpg$/i, ''));
  if (!graph) refuse(`no scene graph for ${example.imagePath} in ${root}/gqa`);
  return graph!;
};

/** Perfect object tokens: one-hot colour, shape, size (+ noise), and the true boxes, per image. */
const TOKEN_DIM = SYNTH_COLORS.length + SYNTH_SHAPES.length + SYNTH_SIZES.length;
const noiseRandom = new SeededRandom(seed).fork('token-noise');
const objectsOf = new Map<string, { tokens: Float32Array; boxes: [number, number, number, number][] }>();
for (const [imageId, graph] of graphs) {
  const objects = Object.values(graph.objects);
  const tokens = new Float32Array(objects.length * TOKEN_DIM);
  objects.forEach((object, i) => {
    for (let d = 0; d < TOKEN_DIM; d++) tokens[i * TOKEN_DIM + d] = noise * noiseRandom.normal();
    const color = SYNTH_COLORS.findIndex((c) => object.attributes.includes(c));
    const size = SYNTH_SIZES.findIndex((s) => object.attributes.includes(s));
    tokens[i * TOKEN_DIM + color] += 1;
    tokens[i * TOKEN_DIM + SYNTH_COLORS.length + SYNTH_SHAPES.indexOf(object.name as (typeof SYNTH_SHAPES)[number])] += 1;
    tokens[i * TOKEN_DIM + SYNTH_COLORS.length + SYNTH_SHAPES.length + size] += 1;
  });
  objectsOf.set(imageId, { tokens, boxes: objects.map((o) => [o.x / graph.width, o.y / graph.height, (o.x + o.w) / graph.width, (o.y + o.h) / graph.height]) });
}

const encoder = await TfjsClipEncoder.load(bundledModelDir());
const texts: FeatureTable = await extractTextFeatures(encoder, [...new Set([...trainSplit.examples, ...valSplit.examples].map((e) => e.question))]);

function inputsOf(examples: readonly VqaExample[], words: QuestionWordTable, dropout?: FusionInputs['dropout']): FusionInputs {
  const keys = examples.map((e) => e.question);
  const length = texts.longestText(keys);
  const perImage = examples.map((e) => objectsOf.get(basename(e.imagePath).replace(/\.jpg$/i, ''))!);
  const most = Math.max(...perImage.map((o) => o.boxes.length));
  const tokens = new Float32Array(examples.length * most * TOKEN_DIM);
  const mask = new Float32Array(examples.length * most);
  perImage.forEach((o, row) => {
    tokens.set(o.tokens, row * most * TOKEN_DIM);
    mask.fill(1, row * most, row * most + o.boxes.length);
  });
  return {
    imageTokens: tf.zeros([examples.length, 0, 1]) as tf.Tensor3D,
    textTokens: textSource === 'words' ? tf.zeros([examples.length, length, texts.tokenDim]) : tf.tensor3d(texts.gatherTokens(keys, length), [examples.length, length, texts.tokenDim]),
    textMask: tf.tensor2d(texts.gatherMasks(keys, length), [examples.length, length]),
    textWords: textSource === 'clip' ? undefined : tf.tensor2d(words.indices(keys, length), [examples.length, length], 'int32'),
    regions: { tokens: tf.tensor3d(tokens, [examples.length, most, TOKEN_DIM]), mask: tf.tensor2d(mask, [examples.length, most]), geometry: boxGeometry(perImage.map((o) => o.boxes), most) },
    dropout,
  };
}

const familyOf = (questionType: string) => VQA_FAMILY_OF_QUESTION_TYPE[questionType] ?? questionType;
/**
 * Comparisons ask two things the head does differently: which of two named objects is bigger
 * (their size attributes) and where one is from the other (their boxes). Reported apart, as
 * "comparison:size" and "comparison:place", beside the family; the gate reads families only.
 */
const comparisonKindOf = (question: string) => (/\bbigger than\b/.test(question) ? 'comparison:size' : 'comparison:place');
const isSubFamily = (key: string) => key.includes(':');
/** Official accuracy per family (mean of per-question scores) and overall. */
function familyScores(examples: readonly VqaExample[], predictions: Map<number, string>): Record<string, number> {
  const report = scoreVqa({ ...valSplit, examples: [...examples] }, predictions);
  const sums = new Map<string, { total: number; count: number }>();
  report.perExample!.forEach(({ score }, i) => {
    const family = familyOf(examples[i].questionType ?? '');
    for (const key of family === 'comparison' ? [family, comparisonKindOf(examples[i].question)] : [family]) {
      const entry = sums.get(key) ?? { total: 0, count: 0 };
      entry.total += score;
      entry.count += 1;
      sums.set(key, entry);
    }
  });
  return { overall: report.metrics.overall, ...Object.fromEntries([...sums].sort().map(([family, { total, count }]) => [family, total / count])) };
}

/**
 * The objects a relation question names, as indices into its image's object tokens: comparisons
 * ("Is the red circle to the left of the square?") name a first object and a second; spatial
 * questions ("What is above the blue square?") name an anchor, which the read-out's second
 * selection is built to hold. A reference is "[size] [colour] shape", unique in its scene.
 */
function namedObjects(example: VqaExample): { first?: number; second: number } | undefined {
  const objects = Object.values(graphOf(example).objects);
  const find = (reference: string) => {
    const words = reference.split(' ');
    const shape = words.pop()!;
    const matches = objects.flatMap((o, i) => (o.name === shape && words.every((w) => o.attributes.includes(w)) ? [i] : []));
    return matches.length === 1 ? matches[0] : undefined;
  };
  const comparison = /^Is the (.+?) (?:to the left of|to the right of|above|below|bigger than) the (.+?)\?$/.exec(example.question);
  if (comparison) {
    const [first, second] = [find(comparison[1]), find(comparison[2])];
    return first !== undefined && second !== undefined ? { first, second } : undefined;
  }
  const spatial = /^What is (?:to the left of|to the right of|above|below) the (.+?)\?$/.exec(example.question);
  const anchor = spatial ? find(spatial[1]) : undefined;
  return anchor !== undefined ? { second: anchor } : undefined;
}

/**
 * Where learning fails, one part at a time: how often each of the read-out's selections lands on
 * the object the question names first (comparisons) and second (comparisons; the anchor of spatial
 * questions), per question kind. A relation cannot be read between the wrong objects.
 */
function selectionReport(fusion: RelationalFusion, examples: readonly VqaExample[], words: QuestionWordTable): string {
  const kinds = new Map<string, { count: number; first: number[]; second: number[] }>();
  for (let start = 0; start < examples.length; start += 256) {
    const chunk = examples.slice(start, start + 256).map((e) => ({ e, named: namedObjects(e) })).filter((x) => x.named);
    if (chunk.length === 0) continue;
    const selections = tf.tidy(() => fusion.apply(inputsOf(chunk.map((x) => x.e), words)).selections!);
    const k = selections.shape[1];
    const picked = selections.argMax(2).dataSync() as Int32Array; // [B, K]
    selections.dispose();
    chunk.forEach(({ e, named }, row) => {
      const kind = familyOf(e.questionType ?? '') === 'comparison' ? comparisonKindOf(e.question) : 'spatial';
      const entry = kinds.get(kind) ?? { count: 0, first: new Array(k).fill(0), second: new Array(k).fill(0) };
      entry.count += 1;
      for (let r = 0; r < k; r++) {
        if (named!.first !== undefined && picked[row * k + r] === named!.first) entry.first[r] += 1;
        if (picked[row * k + r] === named!.second) entry.second[r] += 1;
      }
      kinds.set(kind, entry);
    });
  }
  const percent = (values: number[], count: number) => values.map((v, r) => `s${r} ${((100 * v) / count).toFixed(0)}`).join(' ');
  return [...kinds].sort().map(([kind, { count, first, second }]) => `  ${kind} (${count}): ${kind === 'spatial' ? '' : `first named at ${percent(first, count)}; `}${kind === 'spatial' ? 'anchor' : 'second named'} at ${percent(second, count)}`).join('\n');
}

const rows: { size: number; seconds: number; model: Record<string, number>; prior: Record<string, number>; train: number }[] = [];
for (const size of sizes) {
  const trainExamples = trainSplit.examples.slice(0, size);
  if (trainExamples.length < size) console.log(`only ${trainExamples.length} training questions in ${root}; using them all for --sizes ${size}`);
  const random = new SeededRandom(seed);
  const words = new QuestionWordTable(trainExamples.map((e) => e.question), (text) => encoder.textTokenIds(text));
  const fusion = new RelationalFusion({ imageDim: 1, textDim: texts.tokenDim, regionDim: TOKEN_DIM, imageTokens: 0, words: words.size, relations, relevanceFrom }, random.fork('fusion'));
  const vocabulary = vqaAnswers.vocabulary(trainExamples, 1);
  const targets = vqaAnswers.targets(trainExamples, vocabulary);
  const head = new AnswerHead(fusion.hidden, vocabulary, random);
  const variables = new Map([...fusion.namedVariables(), ...head.namedVariables()]);
  const nameOf = new Map([...variables].map(([name, variable]) => [variable.name, name]));
  const predict = (examples: readonly VqaExample[]) => {
    const out = new Map<number, string>();
    for (let start = 0; start < examples.length; start += 256) {
      const chunk = examples.slice(start, start + 256);
      const logits = tf.tidy(() => head.logits(fusion.apply(inputsOf(chunk, words)).pooled));
      const values = logits.dataSync() as Float32Array;
      chunk.forEach((e, i) => out.set(e.questionId, argmaxAnswer(values.subarray(i * vocabulary.length, (i + 1) * vocabulary.length), vocabulary)));
      logits.dispose();
    }
    return out;
  };
  const started = performance.now();
  await train(
    {
      variables,
      exampleCount: trainExamples.length,
      computeGradients: (batch, context) => {
        head.useTargets(batch.map((i) => targets[i]));
        const inputs = inputsOf(batch.map((i) => trainExamples[i]), words, { rate: dropoutRate, seed: context.random.int(0, 2 ** 30) });
        const { value, grads } = tf.variableGrads(() => head.loss(head.logits(fusion.apply(inputs).pooled)), [...variables.values()]);
        const loss = value.dataSync()[0];
        tf.dispose([value, ...Object.values(inputs).filter((v): v is tf.Tensor => v instanceof tf.Tensor), inputs.regions!.tokens, inputs.regions!.mask, inputs.regions!.geometry]);
        return { loss, gradients: new Map(Object.entries(grads).map(([name, g]) => [nameOf.get(name)!, g])) };
      },
    },
    { epochs, batchSize, learningRate, seed, warmupFraction: 0.05, checkpointEvery: 0 },
    {
      // A line every tenth of the run: these runs take many minutes.
      onStep: (point, samplesPerSecond) => {
        const steps = Math.ceil(trainExamples.length / batchSize) * epochs;
        if ((point.step + 1) % Math.max(1, Math.round(steps / 10)) === 0) console.log(`  step ${point.step + 1}/${steps}: loss ${point.loss.toFixed(4)}, ${samplesPerSecond.toFixed(0)} samples/s`);
      },
    },
  );
  const seconds = (performance.now() - started) / 1000;
  const model = familyScores(valSplit.examples, predict(valSplit.examples));
  const trainScore = familyScores(trainExamples.slice(0, 2000), predict(trainExamples.slice(0, 2000))).overall;
  const prior = familyScores(valSplit.examples, priorPredictions(valSplit.examples, questionTypePrior(trainExamples)));
  rows.push({ size: trainExamples.length, seconds, model, prior, train: trainScore });
  console.log(`argmax of each selection (s0…) on validation's relation questions, % landing on the named object:\n${selectionReport(fusion, valSplit.examples, words)}`);
  console.log(`${trainExamples.length} training questions, ${epochs} epochs, ${seconds.toFixed(0)} s: val overall ${model.overall.toFixed(2)} (prior ${prior.overall.toFixed(2)}), train ${trainScore.toFixed(2)}; ` + Object.entries(model).filter(([k]) => k !== 'overall').map(([k, v]) => `${k} ${v.toFixed(1)} (prior ${prior[k].toFixed(1)})`).join(', '));
  head.dispose();
  fusion.dispose();
}

const families = Object.keys(rows[0].model).filter((k) => k !== 'overall');
console.log(`\nGate A, source validation (${valSplit.examples.length} questions), perfect object tokens, seed ${seed}, ${epochs} epochs, batch ${batchSize}, lr ${learningRate}, dropout ${dropoutRate}, relations ${relations}, relevance from ${relevanceFrom}, text ${textSource}, noise ${noise}:`);
console.log(`| train questions | overall | ${families.join(' | ')} | train acc | s |`);
console.log(`|---|---|${families.map(() => '---').join('|')}|---|---|`);
for (const row of rows) console.log(`| ${row.size} | ${row.model.overall.toFixed(2)} (prior ${row.prior.overall.toFixed(1)}) | ${families.map((f) => row.model[f].toFixed(1)).join(' | ')} | ${row.train.toFixed(1)} | ${row.seconds.toFixed(0)} |`);
const last = rows.at(-1)!;
const passed = last.model.overall >= 97 && families.filter((f) => !isSubFamily(f)).every((f) => last.model[f] >= 95);
console.log(`gate A (overall ≥ 97, every family ≥ 95) at ${last.size} questions: ${passed ? 'PASSED' : 'NOT MET'}`);
