import { existsSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildBoard } from '../leaderboard/board.ts';
import { renderHtml } from '../leaderboard/render-html.ts';
import { renderTable } from '../leaderboard/render-text.ts';
import { exampleScores, listRuns, openLeaderboard } from '../leaderboard/store.ts';
import { parseMethodSpec } from '../models/objectives/index.ts';
import { bundledModelDir } from '../models/encoders/bundled.ts';
import { readClipConfig } from '../models/encoders/clip-config.ts';
import { generateSynthScenes, readSynthManifest, SYNTH_GENERATOR_VERSION, synthPaths } from '../tasks/synth/index.ts';
import { writeFileAtomically } from '../core/atomic-write.ts';
import { tunedBlocksLabel, type RunRequest } from './run.ts';
import { defaultConcurrency, runPool, type PoolJob, type RunSummary } from './run-pool.ts';
import { VCR_DEFAULTS } from './adapters/vcr.ts';
import { VLBENCH_VERSION } from '../core/version.ts';

/**
 * The main job on the embedded default: generate SynthScenes, load the bundled CLIP, compare
 * the adaptation methods on VQA and VCR (train on the source domain, score both domains),
 * zero-shot and fine-tuned retrieval, then print a comparison table and the leaderboard and
 * write its HTML page. Everything lands in one folder, so a second demo reuses the data and
 * the cached image features.
 */
export const DEMO_METHODS = ['ft', 'ft+sg', 'ft+adv', 'ft+sg+adv', 'ft+mmd', 'ft+dann'] as const;

export type DemoTask = 'vqa' | 'vcr' | 'retrieval';

/**
 * The methods each task runs when `--methods` is not given. VQA runs `ft` alone, on a folder of
 * its own with more questions (DEMO_VQA_IMAGES): the relational head needs thousands of
 * questions and tens of epochs to pass its floors (gate A: 63 at 5,000 questions, 82 at
 * 10,000), and VQA's `ft+mmd` took 654 s of the 952-s demo (its target rows triple a step) while
 * answering every question with its type's prior; bench/vqa-table.ts and bench/methods.ts
 * compare the methods on VQA. VCR leaves out the two `adv` runs:
 * a VCR step carries four answer rows per question through the fusion (43 tokens each, 5,504
 * token rows per batch of 32), so `ft+adv` and `ft+sg+adv` took 190 s and 228 s of training at
 * 8 epochs on the 2-core AMD EPYC, 4.3-5.2x `ft`, and the demo 707 s with them, past its 10
 * minutes. Fewer VCR epochs were no way out: at 4, `ft` fell to Q→AR 10.3 on the source (chance
 * 6.25; 29.3 at 8). bench/methods.ts runs `adv` on both (README table).
 */
export const DEMO_METHODS_BY_TASK: Record<Exclude<DemoTask, 'retrieval'>, readonly string[]> = {
  vqa: ['ft'],
  vcr: DEMO_METHODS.filter((method) => !method.split('+').includes('adv')),
};

/**
 * Besides the methods on the frozen encoder, each task's `ft` runs once more with the encoder's
 * last block tuned, so the demo shows both on one leaderboard. One block, not two: on VQA at
 * 200 images a domain a tuned block costs about 4 s an epoch against about 1 s frozen, and the
 * demo must stay under 10 minutes on 2 cores (README); the methods bench measures more blocks.
 */
export const DEMO_ENCODER_BLOCKS = 1;

/**
 * Training epochs per task. VQA: its adapter's 40 (ANSWER_DEFAULTS). VCR trains half its adapter's budget (VCR_DEFAULTS,
 * 16 epochs): with tag context, tag products and sine box features at 16 epochs the demo took
 * 775 s on wasm-blas (the six VCR runs about 560 s of it, two at a time), past its 10 minutes; at
 * 8 it took 463 s and every VCR row stayed above chance on the source (README).
 */
export const DEMO_EPOCHS: Record<DemoTask, number> = { vqa: 40, vcr: VCR_DEFAULTS.epochs / 2, retrieval: 2 };

/** Images per domain of the demo's VQA folder (70% of them train, 5 questions each). */
export const DEMO_VQA_IMAGES = 600;

export interface DemoOptions {
  outDir: string;
  images: number;
  seed: number;
  /** Epochs per task; DEMO_EPOCHS where absent. */
  epochs?: Partial<Record<DemoTask, number>>;
  /** Runs at once; default: one per core. */
  concurrency?: number;
  /** Method SPECs for VQA and VCR alike; DEMO_METHODS_BY_TASK where absent. */
  methods?: readonly string[];
  tasks: readonly DemoTask[];
  /** Images per domain of the VQA folder; DEMO_VQA_IMAGES where absent. */
  vqaImages?: number;
  /** encoder.train_blocks of the extra fine-tuned `ft` run per task; 0 leaves those runs out. Default DEMO_ENCODER_BLOCKS. */
  encoderBlocks?: number;
  modelDir?: string;
  backend: RunRequest['backend'];
  log: (line: string) => void;
}

export interface DemoResult {
  outcomes: { task: string; method: string; outcome: RunSummary }[];
  table: string;
  /** VQA beside its floors: per question type, the score and the training split's per-question-type prior (empty without VQA runs). */
  floors: string;
  leaderboard: string;
  htmlFile: string;
  seconds: number;
}

async function modelImageSize(modelDir: string | undefined): Promise<number> {
  const dir = modelDir ?? bundledModelDir();
  return (await readClipConfig(join(dir, 'config.json'))).vision.image_size;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  // A misspelt method fails here, before minutes of data generation and training.
  for (const method of options.methods ?? []) parseMethodSpec(method, {});
  const outDir = resolve(options.outDir);
  const size = await modelImageSize(options.modelDir);
  const synth = async (dataDir: string, images: number) => {
    let reuse = false;
    if (existsSync(join(dataDir, 'manifest.json'))) {
      const manifest = await readSynthManifest(dataDir);
      reuse = manifest.seed === options.seed && manifest.options.images === images && manifest.options.size === size && manifest.generatorVersion === SYNTH_GENERATOR_VERSION;
    }
    if (reuse) options.log(`SynthScenes: reusing ${dataDir}`);
    else {
      options.log(`SynthScenes: generating ${images} images per domain at ${size} px into ${dataDir}`);
      await generateSynthScenes({ outDir: dataDir, images, seed: options.seed, size, force: true });
    }
    return dataDir;
  };
  const dataDir = await synth(join(outDir, 'synthscenes'), options.images);
  const vqaDir = options.tasks.includes('vqa') ? await synth(join(outDir, 'synthscenes-vqa'), options.vqaImages ?? DEMO_VQA_IMAGES) : dataDir;
  // Each demo is a fresh comparison, built in its own database and swapped in at the end, so a
  // failed demo leaves the previous demo's board as it was.
  const finalDb = join(outDir, 'leaderboard.db');
  const db = join(outDir, `leaderboard.${process.pid}.partial.db`);
  const runsDir = join(outDir, 'runs');
  const plan = demoPlan(options);
  const startOrder = demoStartOrder(plan);
  // VQA attends over the objects of its folder's simulated detector (recall and precision in its manifest).
  const jobs: PoolJob[] = startOrder.map((planned) => plan[planned]).map(({ task, method, sets }) => ({
    request: {
      task, dataDir: task === 'vqa' ? vqaDir : dataDir, modelDir: options.modelDir, method, sets, seed: options.seed, epochs: options.epochs?.[task] ?? DEMO_EPOCHS[task], backend: options.backend,
      ...(task === 'vqa' ? { regionsFile: synthPaths.detections(vqaDir, 'detector') } : {}),
    },
    hooks: { db, runsDir },
  }));
  const concurrency = options.concurrency ?? defaultConcurrency();
  options.log(`${plan.length} runs, ${concurrency} at a time (one per core; --jobs to change)`);
  let finished = 0;
  // The first run encodes every image into the shared feature cache; the others then read it.
  const summaries = await runPool(jobs, {
    concurrency,
    warmFirst: true,
    onFinish: (index, summary) => {
      finished += 1;
      // Once, from the first run: what the runs compute on (and, on plain wasm, why and what to install).
      if (finished === 1 && summary.backendLine) options.log(summary.backendLine);
      const scores = summary.splits.map((s) => `${s.split} ${s.primary} ${s.metrics[s.primary].toFixed(2)}`).join(', ');
      const run = plan[startOrder[index]];
      options.log(`[${finished}/${plan.length}] ${run.task} ${run.label}: ${scores}`);
    },
  });
  const summaryOf = new Map(startOrder.map((planned, started) => [planned, summaries[started]]));
  const outcomes: DemoResult['outcomes'] = plan.map(({ task, label }, i) => ({ task, method: label, outcome: summaryOf.get(i)! }));
  const table = comparisonTable(outcomes);
  const floors = await floorTable(outcomes);
  const store = await openLeaderboard(db, { create: false });
  let leaderboard: string;
  let html: string;
  try {
    const board = await buildBoard(await listRuns(store), (runId) => exampleScores(store, runId), { resamples: 500, seed: options.seed });
    leaderboard = renderTable(board);
    html = renderHtml(board, { generator: `vlbench ${VLBENCH_VERSION} demo` });
  } finally {
    await store.close();
  }
  await rename(db, finalDb);
  const htmlFile = join(outDir, 'leaderboard.html');
  await writeFileAtomically(htmlFile, html);
  return { outcomes, table, floors, leaderboard, htmlFile, seconds: (performance.now() - started) / 1000 };
}

export interface DemoPlannedRun {
  task: DemoTask;
  method: string;
  /** The method, or what sets this run apart from the method's other run. */
  label: string;
  sets: Record<string, string>;
}

/** The runs of a demo, in the order the comparison lists them (demoStartOrder: the order they start): each task's methods, then its `ft` with the encoder tuned. */
export function demoPlan(options: Pick<DemoOptions, 'tasks' | 'methods' | 'encoderBlocks'>): DemoPlannedRun[] {
  const encoderBlocks = options.encoderBlocks ?? DEMO_ENCODER_BLOCKS;
  const tunedFt = { method: 'ft', label: `ft, encoder tuned (${tunedBlocksLabel(encoderBlocks)})`, sets: { 'encoder.train_blocks': String(encoderBlocks) } };
  const plan: DemoPlannedRun[] = [];
  for (const task of options.tasks) {
    const methods = task === 'retrieval' ? ['zeroshot', 'ft'] : (options.methods ?? DEMO_METHODS_BY_TASK[task]);
    for (const method of methods) plan.push({ task, method, label: method, sets: {} });
    // VQA's object tokens come from crops through the frozen encoder, which a tuned block does not change: no tuned VQA run.
    if (encoderBlocks > 0 && methods.includes('ft') && task !== 'vqa') plan.push({ task, ...tunedFt });
  }
  return plan;
}

/**
 * The order the runs start in (indices into the plan): the first alone (it fills the feature
 * cache), then the runs that tune encoder blocks, then the rest in plan order. The tuned runs
 * are the longest (their blocks run in every step: VQA's tuned ft trained 135 s against 23 s
 * frozen), and a long run that starts last leaves the other core idle: in plan order VCR's tuned
 * ft started last and ran alone for 98 s of the 566 s demo.
 */
export function demoStartOrder(plan: readonly DemoPlannedRun[]): number[] {
  const later = plan.map((_, index) => index).slice(1);
  const tunes = (index: number) => 'encoder.train_blocks' in plan[index].sets;
  return plan.length === 0 ? [] : [0, ...later.filter(tunes), ...later.filter((index) => !tunes(index))];
}

/** One row per task and method: the primary metric on each domain, and the target − source gap. */
export function comparisonTable(outcomes: DemoResult['outcomes']): string {
  const rows = outcomes.map(({ task, method, outcome }) => {
    const bySplit = new Map(outcome.splits.map((s) => [s.split.split('/')[1] ?? s.split, s]));
    const source = bySplit.get('source');
    const target = bySplit.get('target');
    const primary = source?.primary ?? target?.primary ?? '';
    const value = (s: typeof source) => (s ? s.metrics[s.primary] : NaN);
    return [task, method, primary, fmt(value(source)), fmt(value(target)), fmt(value(target) - value(source)), outcome.trainingSeconds !== null ? `${outcome.trainingSeconds.toFixed(1)} s` : '-'];
  });
  const header = ['task', 'method', 'metric', 'source', 'target', 'gap', 'train time'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c >= 3 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * VQA's rows beside their floor, from each run's metrics.json `controls`: per question type of the
 * source test split, the run's accuracy and (in brackets) the per-question-type prior of its
 * training split. A row at its prior has learned nothing from the pictures.
 */
export async function floorTable(outcomes: DemoResult['outcomes']): Promise<string> {
  const rows: string[][] = [];
  let types: string[] = [];
  for (const { task, method, outcome } of outcomes) {
    if (task !== 'vqa') continue;
    const metrics = JSON.parse(await readFile(join(outcome.runDir, 'metrics.json'), 'utf8')) as Record<string, { overall: number; controls?: Record<string, number> }>;
    const source = Object.entries(metrics).find(([split]) => split.endsWith('/source'))?.[1];
    if (!source?.controls) continue;
    const controls = source.controls;
    if (types.length === 0) types = Object.keys(controls).filter((k) => k.startsWith('questionType/')).map((k) => k.slice('questionType/'.length)).sort();
    rows.push([method, `${fmt(source.overall)} (${fmt(controls['prior/overall'])})`, ...types.map((type) => `${fmt(controls[`questionType/${type}`])} (${fmt(controls[`prior/questionType/${type}`])})`)]);
  }
  if (rows.length === 0) return '';
  const header = ['vqa, test/source', 'overall (prior)', ...types];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c >= 1 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function fmt(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : '-';
}
