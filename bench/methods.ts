// Adaptation methods compared on SynthScenes over several seeds: each method's target-domain
// score as mean ± std, next to the source-only reference (ft) and the oracle trained on the
// target's own labels, all measured in this run on the same data.
// Runs go in parallel child processes, one per core (--jobs).
// Usage: npx tsx bench/methods.ts [--data DIR] [--images N] [--seeds 0,1,2] [--epochs N | vqa=30,vcr=8] [--tasks vqa,gqa,vcr,retrieval] [--split test|val] [--jobs N] [--set key=value,...] [--train-blocks 0,1] [--backend auto|wasm|...] [--oracle yes|no|ft,ft+sg]
// --backend wasm against the default auto (wasm-blas where it built) measures what the BLAS kernels buy a whole bench.
// --set applies run settings to every run, e.g. --set encoder.train_blocks=2 to fine-tune the encoder's last two blocks (README).
// --train-blocks 0,1 runs every method once per value of encoder.train_blocks (0: heads on the frozen encoder) and
// adds a table of fine-tuned − frozen per method, so both sit side by side on the same data and seeds.
// Retrieval runs zeroshot (frozen only) and its contrastive methods (ft, ft+mmd, ft+dann); sg and adv have no
// retrieval form and are left out of its rows.
// --oracle no leaves out the oracle rows (half the runs when one method is measured, e.g. a source-side default);
// --oracle ft,ft+sg trains each listed method on the target's labels (retrieval: ft only).
// VCR runs at the VCR adapter's own defaults (epochs, fusion size, grid pooling) unless --epochs names vcr.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBenchArguments } from './command-line.ts';
import { parseEpochsPerTask } from '../cli/commands/demo.ts';
import { DEMO_EPOCHS } from '../harness/demo.ts';
import { VCR_DEFAULTS } from '../harness/adapters/vcr.ts';
import type { RunRequest } from '../harness/run.ts';
import { defaultConcurrency, runPool, type PoolJob, type RunSummary } from '../harness/run-pool.ts';
import { parseBackendChoice } from '../models/backends/select.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { readClipConfig } from '../models/encoders/clip-config.ts';
import { generateSynthScenes } from '../tasks/synth/index.ts';
import { seedGroupDifference } from '../leaderboard/statistics.ts';
import type { ExampleScore } from '../core/types.ts';

const { values, refuse } = parseBenchArguments(
  'npx tsx bench/methods.ts [--data DIR] [--images N] [--seeds 0,1,2] [--epochs N | vqa=30,vcr=8] [--tasks vqa,gqa,vcr,retrieval] [--methods LIST] [--split test|val] [--jobs N] [--set key=value,...] [--train-blocks 0,1] [--model DIR] [--backend auto|wasm|...] [--oracle yes|no|ft,ft+sg]',
  {
    data: { type: 'string' },
    images: { type: 'string', default: '500' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string' },
    jobs: { type: 'string' },
    tasks: { type: 'string', default: 'vqa,vcr' },
    'train-blocks': { type: 'string', default: '' },
    methods: { type: 'string', default: 'ft,ft+sg,ft+adv,ft+sg+adv,ft+mmd,ft+dann' },
    split: { type: 'string', default: 'test' },
    model: { type: 'string' },
    set: { type: 'string', default: '' },
    backend: { type: 'string', default: 'auto' },
    oracle: { type: 'string', default: 'yes' },
  },
);
const sets = Object.fromEntries(
  values.set!
    .split(',')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) refuse(`--set expects key=value pairs separated by commas, got "${pair}"`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
);
const seeds = values.seeds!.split(',').map(Number);
const methods = values.methods!.split(',');
const TASKS = ['vqa', 'gqa', 'vcr', 'retrieval'] as const;
type BenchTask = (typeof TASKS)[number];
const tasks = values.tasks!.split(',') as BenchTask[];
for (const task of tasks) if (!TASKS.includes(task)) refuse(`--tasks: unknown task "${task}", expected some of ${TASKS.join(', ')}`);
// Each value is a separate set of rows; '' keeps whatever --set says (the runs' default when it says nothing).
const trainBlocks: (string | undefined)[] = values['train-blocks'] === '' ? [undefined] : values['train-blocks']!.split(',');
if (trainBlocks.length > 1 && 'encoder.train_blocks' in sets) refuse('give encoder.train_blocks either in --set or in --train-blocks, not both');
const RETRIEVAL_METHODS = ['zeroshot', 'ft', 'ft+mmd', 'ft+dann'];
// The demo's budgets (GQA as VQA: the same answer-classification head); VCR's adapter chooses its own
// epochs (VCR_DEFAULTS), since the demo's short VCR budget is not what this bench measures.
const epochs: Record<string, number | undefined> = { ...DEMO_EPOCHS, gqa: DEMO_EPOCHS.vqa, vcr: undefined };
if (values.epochs !== undefined) Object.assign(epochs, parseEpochsPerTask(values.epochs, TASKS));
const concurrency = values.jobs ? Number(values.jobs) : defaultConcurrency();
const work = await mkdtemp(join(tmpdir(), 'vlbench-methods-'));
let data = values.data;
if (!data) {
  data = join(work, 'synth');
  const modelDir = values.model ?? bundledModelDir();
  const size = (await readClipConfig(join(modelDir, 'config.json'))).vision.image_size;
  await generateSynthScenes({ outDir: data, images: Number(values.images), seed: 0, size });
} else if (!existsSync(join(data, 'manifest.json'))) {
  refuse(`${data} is not a SynthScenes folder`);
}

const meanStd = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return `${mean.toFixed(2).padStart(6)} ± ${std.toFixed(2).padEnd(5)}`;
};

const started = performance.now();
// The oracles: yes is ft on the target's labels; a list trains each of those methods on them (an oracle
// with sg learns the target's scene graphs too), e.g. --oracle ft,ft+sg.
const oracleMethods = values.oracle === 'no' ? [] : values.oracle === 'yes' ? ['ft'] : values.oracle!.split(',');
for (const method of oracleMethods) {
  const parts = method.split('+');
  // Each objective once: ft+sg+sg would train the same oracle as ft+sg under another name.
  if (!/^ft(\+(sg|adv))*$/.test(method) || new Set(parts).size !== parts.length) refuse(`--oracle expects yes, no or methods trained on the target's labels (ft, ft+sg, ft+adv, ft+sg+adv), got "${method}"`);
}
if (new Set(oracleMethods).size !== oracleMethods.length) refuse(`--oracle names a method twice: ${values.oracle}`);

interface Variant {
  task: BenchTask;
  method: string;
  trainDomain: 'source' | 'target';
  /** encoder.train_blocks for this row; undefined: the runs' default (or --set). */
  blocks: string | undefined;
  label: string;
}
const blocksLabel = (blocks: string | undefined) => (blocks === undefined ? '' : blocks === '0' ? ' [frozen]' : ` [train_blocks=${blocks}]`);
const variants: Variant[] = tasks.flatMap((task) =>
  trainBlocks.flatMap((blocks) => {
    const taskMethods = task === 'retrieval' ? RETRIEVAL_METHODS.filter((m) => m === 'zeroshot' || methods.includes(m)) : methods;
    // zero-shot trains nothing, so there is no fine-tuned zero-shot row.
    const rows = taskMethods.filter((method) => !(method === 'zeroshot' && blocks !== undefined && blocks !== '0'));
    return [
      ...rows.map((method) => ({ task, method, trainDomain: 'source' as const, blocks, label: `${method}${blocksLabel(blocks)}` })),
      ...(task === 'retrieval' ? oracleMethods.filter((method) => method === 'ft') : oracleMethods).map((method) => ({
        task, method, trainDomain: 'target' as const, blocks, label: `oracle (${method} on target labels)${blocksLabel(blocks)}`,
      })),
    ];
  }),
);
const plan = variants.flatMap((variant) => seeds.map((seed) => ({ variant, seed })));
const jobs: PoolJob[] = plan.map(({ variant, seed }) => ({
  request: {
    task: variant.task,
    dataDir: data,
    modelDir: values.model,
    method: variant.method,
    sets: variant.blocks === undefined ? sets : { ...sets, 'encoder.train_blocks': variant.blocks },
    seed,
    epochs: epochs[variant.task],
    split: values.split,
    backend: parseBackendChoice(values.backend!),
    trainDomain: variant.trainDomain,
  } satisfies RunRequest,
  hooks: { db: null, runsDir: join(work, 'runs'), cacheDir: join(work, 'cache') },
}));
process.stderr.write(`${jobs.length} runs, ${concurrency} at a time; run folders in ${join(work, 'runs')}\n`);
const summaries = await runPool(jobs, {
  concurrency,
  warmFirst: true,
  onFinish: (index, summary) =>
    process.stderr.write(`${plan[index].variant.task} ${plan[index].variant.label} seed ${plan[index].seed}: ${summary.splits.map((s) => `${s.split} ${s.metrics[s.primary].toFixed(2)}`).join(', ')} (${(summary.trainingSeconds ?? 0).toFixed(0)} s)\n`),
});
const runsOf = (variant: Variant) => plan.flatMap((p, i) => (p.variant === variant ? [{ seed: p.seed, summary: summaries[i] }] : []));
const splitOf = (summary: RunSummary, domain: string) => summary.splits.find((s) => s.split.endsWith(`/${domain}`))!;
const primaryOf = (task: BenchTask) => splitOf(runsOf(variants.find((v) => v.task === task)!)[0].summary, 'source').primary;

for (const task of tasks) {
  console.log(`\n${task} (${primaryOf(task)}, ${values.split} split, ${seeds.length} seeds, ${epochs[task] ?? `${VCR_DEFAULTS.epochs} (VCR default)`} epochs; trained on source unless noted)`);
  console.log(`| method | source | target | train s/run |\n|---|---|---|---|`);
  for (const variant of variants.filter((v) => v.task === task)) {
    const runs = runsOf(variant).map((r) => r.summary);
    const score = (domain: string) => runs.map((r) => splitOf(r, domain)).map((s) => s.metrics[s.primary]);
    const seconds = runs.map((r) => r.trainingSeconds ?? 0);
    console.log(`| ${variant.label} | ${meanStd(score('source'))} | ${meanStd(score('target'))} | ${(seconds.reduce((a, b) => a + b, 0) / seconds.length).toFixed(1)} |`);
  }
  if (task !== 'vcr') continue;
  // VCR's primary metric needs both sub-tasks right; where a method falls short shows in its parts.
  const parts = { q2a: 'Q→A', qa2r: 'QA→R', q2ar: 'Q→AR' };
  console.log(`\nvcr, every metric (${values.split} split, mean ± std over seeds)`);
  console.log(`| method | ${['source', 'target'].flatMap((domain) => Object.values(parts).map((label) => `${domain} ${label}`)).join(' | ')} |\n|---|${'---|'.repeat(2 * Object.keys(parts).length)}`);
  for (const variant of variants.filter((v) => v.task === task)) {
    const runs = runsOf(variant).map((r) => r.summary);
    const cells = ['source', 'target'].flatMap((domain) => Object.keys(parts).map((metric) => meanStd(runs.map((r) => splitOf(r, domain).metrics[metric]))));
    console.log(`| ${variant.label} | ${cells.join(' | ')} |`);
  }
}

// Differences as seed groups: the two-way bootstrap over seeds and examples
// (leaderboard/statistics.ts, seedGroupDifference), paired by seed, on each domain's per-example scores.
const perExampleOf = async (runDir: string, split: string): Promise<ExampleScore[]> =>
  (JSON.parse(await readFile(join(runDir, 'scores', `${split.replace(/[^A-Za-z0-9._-]+/g, '_')}.json`), 'utf8')) as { perExample: ExampleScore[] }).perExample;
// A reference (ft, or the frozen row) is compared with many rows: its per-example files are read once.
const groups = new Map<string, Promise<{ seed: number; scores: ExampleScore[] }[]>>();
const groupOf = (variant: Variant, domain: string) => {
  const key = `${variants.indexOf(variant)}/${domain}`;
  if (!groups.has(key)) groups.set(key, Promise.all(runsOf(variant).map(async ({ seed, summary }) => ({ seed, scores: await perExampleOf(summary.runDir, splitOf(summary, domain).split) }))));
  return groups.get(key)!;
};
const differenceCells = async (reference: Variant, variant: Variant) => {
  const cells: string[] = [];
  for (const domain of ['source', 'target']) {
    const d = seedGroupDifference(await groupOf(reference, domain), await groupOf(variant, domain), { seed: 0 });
    cells.push(`${d.estimate >= 0 ? '+' : ''}${d.estimate.toFixed(2)} [${d.lower.toFixed(2)}, ${d.upper.toFixed(2)}]`);
  }
  return cells;
};
for (const task of tasks) {
  for (const blocks of trainBlocks) {
    const rows = variants.filter((v) => v.task === task && v.blocks === blocks);
    console.log(`\n${task}${blocksLabel(blocks)}: difference to ft, mean over seeds with its 95% interval over seeds and examples (${values.split} split)`);
    console.log(`| method | source | target |\n|---|---|---|`);
    const reference = rows.find((v) => v.method === 'ft' && v.trainDomain === 'source');
    if (!reference) {
      console.log('(no ft among --methods: nothing to compare against)');
      continue;
    }
    for (const variant of rows.filter((v) => v !== reference)) console.log(`| ${variant.label} | ${(await differenceCells(reference, variant)).join(' | ')} |`);
  }
  // The issue's question: what fine-tuning the encoder adds to each method, on the same seeds and examples.
  const frozen = trainBlocks.includes('0') ? '0' : undefined;
  for (const tuned of frozen === undefined ? [] : trainBlocks.filter((b) => b !== undefined && b !== '0')) {
    console.log(`\n${task}: train_blocks=${tuned} − frozen per method (${values.split} split, 95% interval over seeds and examples)`);
    console.log(`| method | source | target |\n|---|---|---|`);
    for (const variant of variants.filter((v) => v.task === task && v.blocks === tuned)) {
      const base = variants.find((v) => v.task === task && v.blocks === frozen && v.method === variant.method && v.trainDomain === variant.trainDomain);
      if (base) console.log(`| ${variant.label.replace(blocksLabel(tuned), '')} | ${(await differenceCells(base, variant)).join(' | ')} |`);
    }
  }
}
console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s with ${concurrency} runs at a time`);
