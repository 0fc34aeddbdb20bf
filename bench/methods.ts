// Adaptation methods compared on SynthScenes over several seeds: each method's target-domain
// score as mean ± std, next to the source-only reference (ft) and the oracle trained on the
// target's own labels, all measured in this run on the same data.
// Usage: npx tsx bench/methods.ts [--data DIR] [--images N] [--seeds 0,1,2] [--epochs E] [--tasks vqa,vcr] [--split test|val]
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { executeRun, type RunRequest } from '../harness/run.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { readClipConfig } from '../models/encoders/clip-config.ts';
import { generateSynthScenes } from '../tasks/synth/index.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    images: { type: 'string', default: '250' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '2' },
    tasks: { type: 'string', default: 'vqa,vcr' },
    methods: { type: 'string', default: 'ft,ft+sg,ft+adv,ft+sg+adv,ft+mmd,ft+dann' },
    split: { type: 'string', default: 'test' },
    model: { type: 'string' },
  },
});
const seeds = values.seeds!.split(',').map(Number);
const methods = values.methods!.split(',');
const tasks = values.tasks!.split(',') as RunRequest['task'][];
const work = await mkdtemp(join(tmpdir(), 'vlbench-methods-'));
let data = values.data;
if (!data) {
  data = join(work, 'synth');
  const modelDir = values.model ?? bundledModelDir();
  const size = (await readClipConfig(join(modelDir, 'config.json'))).vision.image_size;
  await generateSynthScenes({ outDir: data, images: Number(values.images), seed: 0, size });
} else if (!existsSync(join(data, 'manifest.json'))) {
  throw new Error(`${data} is not a SynthScenes folder`);
}

const meanStd = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return `${mean.toFixed(2).padStart(6)} ± ${std.toFixed(2).padEnd(5)}`;
};

const started = performance.now();
for (const task of tasks) {
  const rows: { label: string; source: number[]; target: number[]; seconds: number[] }[] = [];
  const variants = [...methods.map((method) => ({ method, trainDomain: 'source' as const, label: method })), { method: 'ft', trainDomain: 'target' as const, label: 'oracle (ft on target labels)' }];
  for (const variant of variants) {
    const row = { label: variant.label, source: [] as number[], target: [] as number[], seconds: [] as number[] };
    for (const seed of seeds) {
      const outcome = await executeRun(
        { task, dataDir: data, modelDir: values.model, method: variant.method, sets: {}, seed, epochs: Number(values.epochs), split: values.split, backend: 'auto', trainDomain: variant.trainDomain },
        { db: null, runsDir: join(work, 'runs'), cacheDir: join(work, 'cache'), log: () => undefined },
      );
      for (const s of outcome.splits) (s.split.endsWith('/source') ? row.source : row.target).push(s.report.metrics[s.report.primary]);
      row.seconds.push(outcome.training?.seconds ?? 0);
    }
    rows.push(row);
    process.stderr.write(`${task} ${variant.label}: target ${meanStd(row.target)}\n`);
  }
  const primary = task === 'vcr' ? 'Q→AR' : 'accuracy';
  console.log(`\n${task} (${primary}, ${values.split} split, ${seeds.length} seeds, ${values.epochs} epochs; trained on source unless noted)`);
  console.log(`| method | source | target | train s/run |\n|---|---|---|---|`);
  for (const row of rows) console.log(`| ${row.label} | ${meanStd(row.source)} | ${meanStd(row.target)} | ${(row.seconds.reduce((a, b) => a + b, 0) / row.seconds.length).toFixed(1)} |`);
}
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
