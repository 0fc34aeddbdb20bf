// Adaptation methods compared on SynthScenes over several seeds: each method's target-domain
// score as mean ± std, next to the source-only reference (ft) and the oracle trained on the
// target's own labels, all measured in this run on the same data.
// Runs go in parallel child processes, one per core (--jobs).
// Usage: npx tsx bench/methods.ts [--data DIR] [--images N] [--seeds 0,1,2] [--epochs N | vqa=30,vcr=8] [--tasks vqa,vcr] [--split test|val] [--jobs N] [--set key=value,...] [--backend auto|wasm|...] [--oracle yes|no]
// --backend wasm against the default auto (wasm-blas where it built) measures what the BLAS kernels buy a whole bench.
// --set applies run settings to every run, e.g. --set encoder.train_blocks=2 to fine-tune the encoder's last two blocks (README).
// --oracle no leaves out the oracle rows (half the runs when one method is measured, e.g. a source-side default).
// VCR runs at the VCR adapter's own defaults (epochs, fusion size, grid pooling) unless --epochs names vcr.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDemoEpochs } from '../cli/commands/demo.ts';
import { DEMO_EPOCHS } from '../harness/demo.ts';
import { VCR_DEFAULTS } from '../harness/adapters/multiple-choice.ts';
import type { RunRequest } from '../harness/run.ts';
import { defaultConcurrency, runPool, type PoolJob } from '../harness/run-pool.ts';
import { parseBackendChoice } from '../models/backends/select.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { readClipConfig } from '../models/encoders/clip-config.ts';
import { generateSynthScenes } from '../tasks/synth/index.ts';
import { seedGroupDifference } from '../leaderboard/statistics.ts';
import type { ExampleScore } from '../core/types.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    images: { type: 'string', default: '500' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string' },
    jobs: { type: 'string' },
    tasks: { type: 'string', default: 'vqa,vcr' },
    methods: { type: 'string', default: 'ft,ft+sg,ft+adv,ft+sg+adv,ft+mmd,ft+dann' },
    split: { type: 'string', default: 'test' },
    model: { type: 'string' },
    set: { type: 'string', default: '' },
    backend: { type: 'string', default: 'auto' },
    oracle: { type: 'string', default: 'yes' },
  },
});
const sets = Object.fromEntries(
  values.set!
    .split(',')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) throw new Error(`--set expects key=value pairs separated by commas, got "${pair}"`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
);
const seeds = values.seeds!.split(',').map(Number);
const methods = values.methods!.split(',');
const tasks = values.tasks!.split(',') as ('vqa' | 'vcr')[];
const givenEpochs: Partial<Record<string, number>> = values.epochs ? parseDemoEpochs(values.epochs) : {};
// VCR's adapter chooses its own epochs (VCR_DEFAULTS); the demo's short VCR budget is not what this bench measures.
const epochs: Record<string, number | undefined> = { ...DEMO_EPOCHS, vcr: undefined, ...givenEpochs };
const concurrency = values.jobs ? Number(values.jobs) : defaultConcurrency();
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
if (!['yes', 'no'].includes(values.oracle!)) throw new Error(`--oracle expects yes or no, got "${values.oracle}"`);
const oracle = values.oracle === 'yes' ? [{ method: 'ft', trainDomain: 'target' as const, label: 'oracle (ft on target labels)' }] : [];
const variants = [...methods.map((method) => ({ method, trainDomain: 'source' as const, label: method })), ...oracle];
const plan = tasks.flatMap((task) => variants.flatMap((variant) => seeds.map((seed) => ({ task, variant, seed }))));
const jobs: PoolJob[] = plan.map(({ task, variant, seed }) => ({
  request: { task, dataDir: data, modelDir: values.model, method: variant.method, sets, seed, epochs: epochs[task], split: values.split, backend: parseBackendChoice(values.backend!), trainDomain: variant.trainDomain } satisfies RunRequest,
  hooks: { db: null, runsDir: join(work, 'runs'), cacheDir: join(work, 'cache') },
}));
process.stderr.write(`${jobs.length} runs, ${concurrency} at a time; run folders in ${join(work, 'runs')}\n`);
const summaries = await runPool(jobs, {
  concurrency,
  warmFirst: true,
  onFinish: (index, summary) => process.stderr.write(`${plan[index].task} ${plan[index].variant.label} seed ${plan[index].seed}: ${summary.splits.map((s) => `${s.split} ${s.metrics[s.primary].toFixed(2)}`).join(', ')}\n`),
});
for (const task of tasks) {
  const primary = task === 'vcr' ? 'Q→AR' : 'accuracy';
  console.log(`\n${task} (${primary}, ${values.split} split, ${seeds.length} seeds, ${epochs[task] ?? `${VCR_DEFAULTS.epochs} (VCR default)`} epochs; trained on source unless noted)`);
  console.log(`| method | source | target | train s/run |\n|---|---|---|---|`);
  for (const variant of variants) {
    const runs = plan.map((p, i) => ({ p, summary: summaries[i] })).filter(({ p }) => p.task === task && p.variant === variant).map(({ summary }) => summary);
    const score = (domain: string) => runs.map((r) => r.splits.find((s) => s.split.endsWith(`/${domain}`))!).map((s) => s.metrics[s.primary]);
    const seconds = runs.map((r) => r.trainingSeconds ?? 0);
    console.log(`| ${variant.label} | ${meanStd(score('source'))} | ${meanStd(score('target'))} | ${(seconds.reduce((a, b) => a + b, 0) / seconds.length).toFixed(1)} |`);
  }
  if (task !== 'vcr') continue;
  // VCR's primary metric needs both sub-tasks right; where a method falls short shows in its parts.
  const parts = { q2a: 'Q→A', qa2r: 'QA→R', q2ar: 'Q→AR' };
  console.log(`\nvcr, every metric (${values.split} split, mean ± std over seeds)`);
  console.log(`| method | ${['source', 'target'].flatMap((domain) => Object.values(parts).map((label) => `${domain} ${label}`)).join(' | ')} |\n|---|${'---|'.repeat(2 * Object.keys(parts).length)}`);
  for (const variant of variants) {
    const runs = plan.map((p, i) => ({ p, summary: summaries[i] })).filter(({ p }) => p.task === task && p.variant === variant).map(({ summary }) => summary);
    const cells = ['source', 'target'].flatMap((domain) => Object.keys(parts).map((metric) => meanStd(runs.map((r) => r.splits.find((s) => s.split.endsWith(`/${domain}`))!.metrics[metric]))));
    console.log(`| ${variant.label} | ${cells.join(' | ')} |`);
  }
}
// Each method against ft as seed groups: the two-way bootstrap over seeds and examples
// (leaderboard/statistics.ts, seedGroupDifference), paired by seed, on each domain's per-example scores.
const perExampleOf = async (runDir: string, split: string): Promise<ExampleScore[]> =>
  (JSON.parse(await readFile(join(runDir, 'scores', `${split.replace(/[^A-Za-z0-9._-]+/g, '_')}.json`), 'utf8')) as { perExample: ExampleScore[] }).perExample;
for (const task of tasks) {
  console.log(`\n${task}: difference to ft, mean over seeds with its 95% interval over seeds and examples (${values.split} split)`);
  console.log(`| method | source | target |\n|---|---|---|`);
  const groupOf = async (variant: (typeof variants)[number], domain: string) => {
    const group = [];
    for (const [i, p] of plan.entries()) {
      if (p.task !== task || p.variant !== variant) continue;
      const split = summaries[i].splits.find((s) => s.split.endsWith(`/${domain}`))!.split;
      group.push({ seed: p.seed, scores: await perExampleOf(summaries[i].runDir, split) });
    }
    return group;
  };
  const reference = variants.find((variant) => variant.method === 'ft' && variant.trainDomain === 'source');
  if (!reference) {
    console.log('(no ft among --methods: nothing to compare against)');
    continue;
  }
  for (const variant of variants.filter((v) => v !== reference)) {
    const cells: string[] = [];
    for (const domain of ['source', 'target']) {
      const d = seedGroupDifference(await groupOf(reference, domain), await groupOf(variant, domain), { seed: 0 });
      cells.push(`${d.estimate >= 0 ? '+' : ''}${d.estimate.toFixed(2)} [${d.lower.toFixed(2)}, ${d.upper.toFixed(2)}]`);
    }
    console.log(`| ${variant.label} | ${cells.join(' | ')} |`);
  }
}
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s with ${concurrency} runs at a time`);
