// Issue 13 diagnosis: is what a VCR item needs in the features the fusion gets?
// Linear probes on the frozen encoder's region features (the detection's box pooled over the
// full patch grid, as the VCR adapter pools tag regions) for the colour and size of the tagged
// object, trained on train/source objects and read on val/source; and, given a run folder, its
// Q→A / QA→R accuracy per SynthScenes item type (colour, size, relation).
// Usage: npx tsx bench/vcr-diagnose.ts --data SYNTH_DIR [--run RUN_DIR] [--split val_source]
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseBenchArguments } from './command-line.ts';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../models/backends/select.ts';
import { loadEncoder } from '../models/encoders/load-encoder.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { extractImageFeatures, poolImageTokenGrid, type FeatureTable } from '../models/features.ts';
import { poolRegions, type NormalisedBox } from '../models/ops/regions.ts';
import { loadVcrSplit, type VcrExample } from '../tasks/vcr/load.ts';
import { detectionsInCrop } from '../harness/adapters/vcr.ts';
import { SYNTH_COLORS } from '../tasks/synth/scene.ts';

const { values, refuse } = parseBenchArguments('npx tsx bench/vcr-diagnose.ts --data SYNTH_DIR [--run RUN_DIR] [--split val_source] [--cache DIR]', { data: { type: 'string' }, run: { type: 'string' }, split: { type: 'string', default: 'val_source' }, cache: { type: 'string' } });
const vcrDir = join(values.data ?? refuse('--data is required'), 'vcr');

/** The item's family, from its question. */
export function itemType(example: VcrExample): 'colour' | 'size' | 'relation' {
  const first = example.question.words.slice(0, 2).join(' ').toLowerCase();
  if (first.startsWith('what color')) return 'colour';
  if (first.startsWith('which is')) return 'size';
  return 'relation';
}

/** Colour and size of each tagged object, read off the right rationale (and the right answer of a colour item). */
function objectAttributes(example: VcrExample): Map<number, { colour?: string; size?: string }> {
  const out = new Map<number, { colour?: string; size?: string }>();
  const tokens = example.rationales[example.rationaleLabel!].tokens;
  const isColour = (t: unknown) => typeof t === 'string' && (SYNTH_COLORS as readonly string[]).includes(t);
  const isSize = (t: unknown) => t === 'small' || t === 'large';
  tokens.forEach((token, p) => {
    if (typeof token === 'string') return;
    const object = token[0];
    const entry = out.get(object) ?? {};
    // "The large red [a]", "the blue [b]" (relation); "[a] is a small gray diamond" (size); "[0] is the yellow square" (colour).
    const colour = isColour(tokens[p - 1]) ? tokens[p - 1] : tokens.slice(p + 1, p + 5).find(isColour);
    const size = isSize(tokens[p - 2]) ? tokens[p - 2] : tokens.slice(p + 1, p + 4).find(isSize);
    if (colour && !entry.colour) entry.colour = colour as string;
    if (size && !entry.size) entry.size = size as string;
    out.set(object, entry);
  });
  return out;
}

interface ProbeRow {
  image: string;
  box: NormalisedBox;
  colour?: string;
  size?: string;
}

function probeRows(examples: readonly VcrExample[], prep: Parameters<typeof detectionsInCrop>[1]): ProbeRow[] {
  const seen = new Set<string>();
  const rows: ProbeRow[] = [];
  for (const example of examples) {
    const detections = detectionsInCrop(example, prep);
    for (const [object, attributes] of objectAttributes(example)) {
      const key = `${example.imagePath}#${object}`;
      if (seen.has(key) || detections.boxOfObject[object] < 0) continue;
      seen.add(key);
      rows.push({ image: example.imagePath, box: detections.boxes[detections.boxOfObject[object]], ...attributes });
    }
  }
  return rows;
}

function regionFeatures(table: FeatureTable, rows: readonly ProbeRow[]): tf.Tensor2D {
  const side = Math.round(Math.sqrt(table.tokenCount - 1));
  return tf.tidy(() => {
    const tokens = tf.tensor3d(table.gatherTokens(rows.map((r) => r.image)), [rows.length, table.tokenCount, table.tokenDim]);
    const { regions } = poolRegions(tokens, { rows: side, cols: side, offset: 1 }, rows.map((r) => [r.box]));
    return regions.reshape([rows.length, table.tokenDim]) as tf.Tensor2D;
  });
}

/** Softmax regression on standardised features: held-out accuracy (a linear probe). */
async function probe(train: tf.Tensor2D, trainLabels: number[], test: tf.Tensor2D, testLabels: number[], classes: number): Promise<number> {
  const mean = train.mean(0, true);
  const std = train.sub(mean).square().mean(0, true).sqrt().add(1e-5);
  const x = train.sub(mean).div(std) as tf.Tensor2D;
  const xt = test.sub(mean).div(std) as tf.Tensor2D;
  const w = tf.variable(tf.zeros([train.shape[1], classes]));
  const b = tf.variable(tf.zeros([classes]));
  const y = tf.oneHot(trainLabels, classes).toFloat();
  const optimizer = tf.train.adam(0.05);
  for (let step = 0; step < 300; step++) {
    optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, x.matMul(w).add(b)).add(w.square().sum().mul(1e-3)) as tf.Scalar);
  }
  const predicted = (xt.matMul(w).add(b).argMax(1).dataSync() as Int32Array);
  return (100 * testLabels.filter((label, i) => predicted[i] === label).length) / testLabels.length;
}

async function parseCsv(file: string): Promise<Map<string, number[]>> {
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  const header = lines[0].split(',');
  return new Map(lines.slice(1).map((line) => {
    const cells = line.split(',');
    return [cells[header.indexOf('annot_id')], cells.slice(1).map(Number)] as const;
  }));
}

await selectBackend('auto');
const encoder = await loadEncoder(bundledModelDir(), { backend: 'auto' });
const train = await loadVcrSplit({ dataDir: vcrDir, split: 'train_source' });
const evaluation = await loadVcrSplit({ dataDir: vcrDir, split: values.split! });
const trainRows = probeRows(train.examples, encoder.preprocessing);
const testRows = probeRows(evaluation.examples, encoder.preprocessing);
const { table } = await extractImageFeatures(encoder, [...new Set([...trainRows, ...testRows].map((r) => r.image))], { cacheRoot: values.cache });
const pooled = poolImageTokenGrid(table, [...new Set([...trainRows, ...testRows].map((r) => r.image))], 4);
for (const [label, source] of [['full 8×8 grid', table], ['grid pooled 4 (what the fusion image tokens are)', pooled]] as const) {
  const trainX = regionFeatures(source, trainRows);
  const testX = regionFeatures(source, testRows);
  for (const attribute of ['colour', 'size'] as const) {
    const classes = attribute === 'colour' ? [...SYNTH_COLORS] : ['small', 'large'];
    const keep = (rows: ProbeRow[]) => rows.map((r, i) => [i, classes.indexOf(r[attribute] ?? '')] as const).filter(([, v]) => v >= 0);
    const tr = keep(trainRows);
    const te = keep(testRows);
    const accuracy = await probe(tf.gather(trainX, tr.map(([i]) => i)) as tf.Tensor2D, tr.map(([, v]) => v), tf.gather(testX, te.map(([i]) => i)) as tf.Tensor2D, te.map(([, v]) => v), classes.length);
    const counts = new Map<number, number>();
    for (const [, v] of tr) counts.set(v, (counts.get(v) ?? 0) + 1);
    const majority = (100 * Math.max(...te.map(([, v]) => te.filter(([, u]) => u === v).length))) / te.length;
    console.log(`probe ${attribute} from region features (${label}): ${accuracy.toFixed(1)}% on ${te.length} ${values.split} objects (${tr.length} train; majority class ${majority.toFixed(1)}%)`);
  }
}

if (values.run) {
  const predictionsDir = join(values.run, 'predictions');
  const file = (await readdir(predictionsDir)).find((f) => f.includes(values.split!.replace('_', '_')) || f.includes(values.split!.split('_')[1]));
  const predictions = await parseCsv(join(predictionsDir, file!));
  const byType = new Map<string, { n: number; answer: number; rationale: number; both: number }>();
  const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
  for (const example of evaluation.examples) {
    const row = predictions.get(example.id);
    if (!row) continue;
    const answer = argmax(row.slice(0, 4)) === example.answerLabel;
    const given = example.answerLabel!;
    const rationale = argmax(row.slice(4 + given * 4, 8 + given * 4)) === example.rationaleLabel;
    const entry = byType.get(itemType(example)) ?? { n: 0, answer: 0, rationale: 0, both: 0 };
    entry.n++;
    entry.answer += Number(answer);
    entry.rationale += Number(rationale);
    entry.both += Number(answer && rationale);
    byType.set(itemType(example), entry);
  }
  console.log(`\n${values.run} (${file}), per item type:`);
  for (const [type, e] of byType) console.log(`${type.padEnd(9)} n=${e.n}  Q→A ${((100 * e.answer) / e.n).toFixed(1)}  QA→R ${((100 * e.rationale) / e.n).toFixed(1)}  Q→AR ${((100 * e.both) / e.n).toFixed(1)}`);
}
await encoder.dispose();
