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
import { ADAPTERS } from './adapters/index.ts';
import { DEMO_METHODS, type DemoRecipe } from './adapters/adapter.ts';
import { InputError } from '../core/errors.ts';
import { VLBENCH_VERSION } from '../core/version.ts';

/**
 * The main job on the embedded default: generate SynthScenes, load the bundled CLIP, compare
 * the adaptation methods on VQA and VCR (train on the source domain, score both domains),
 * zero-shot and fine-tuned retrieval, then print a comparison table and the leaderboard and
 * write its HTML page. Everything lands in one folder, so a second demo reuses the data and
 * the cached image features. Which methods a task runs, for how long and on which folder is
 * its adapter's `demo` recipe (harness/adapters/*.ts): this file names no task.
 */
export { DEMO_METHODS };

/** A task the demo can run: one whose adapter has a demo recipe. */
export type DemoTask = string;

/** The tasks the demo can run, in registry order. */
export const DEMO_TASKS: readonly string[] = ADAPTERS.filter((adapter) => adapter.demo).map((adapter) => adapter.task);

/** The demo recipe of a task, or an InputError naming the tasks that have one. */
export function demoRecipe(task: string): DemoRecipe {
  const recipe = ADAPTERS.find((adapter) => adapter.task === task)?.demo;
  if (!recipe) throw new InputError(`--tasks: the demo has no recipe for "${task}"; it runs ${DEMO_TASKS.join(', ')}`, { field: '--tasks' });
  return recipe;
}

/** The methods each task runs when `--methods` is not given, for the tasks `--methods` applies to. */
export const DEMO_METHODS_BY_TASK: Readonly<Record<string, readonly string[]>> = Object.fromEntries(DEMO_TASKS.filter((task) => demoRecipe(task).takesMethods).map((task) => [task, demoRecipe(task).methods]));

/**
 * Besides the methods on the frozen encoder, each task's `ft` runs once more with the encoder's
 * last block tuned, so the demo shows both on one leaderboard. One block, not two: on VQA at
 * 200 images a domain a tuned block costs about 4 s an epoch against about 1 s frozen, and the
 * demo must stay under 10 minutes on 2 cores (README); the methods bench measures more blocks.
 */
export const DEMO_ENCODER_BLOCKS = 1;

/** Training epochs per task (each adapter's demo recipe says why). */
export const DEMO_EPOCHS: Readonly<Record<string, number>> = Object.fromEntries(DEMO_TASKS.map((task) => [task, demoRecipe(task).epochs]));

/** Images per domain of the folder of a task that asks for its own (VQA's: its head needs thousands of questions). */
export const DEMO_VQA_IMAGES = Math.max(0, ...DEMO_TASKS.map((task) => demoRecipe(task).ownFolder?.images ?? 0));

export interface DemoOptions {
  outDir: string;
  images: number;
  seed: number;
  /** Epochs per task; DEMO_EPOCHS where absent. */
  epochs?: Partial<Record<DemoTask, number>>;
  /** Runs at once; default: one per core. */
  concurrency?: number;
  /** Method SPECs for every task whose recipe takes them; DEMO_METHODS_BY_TASK where absent. */
  methods?: readonly string[];
  tasks: readonly DemoTask[];
  /** Images per domain of the folder of a task that asks for its own (VQA); DEMO_VQA_IMAGES where absent. */
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
  /** The runs beside their floors (their adapters' controls): per question type, the score and the training split's prior (empty without such runs). */
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
  for (const task of options.tasks) demoRecipe(task);
  // A task whose recipe asks for a folder of its own gets synthscenes-<task>, and its detector's boxes.
  const folders = new Map<string, { dataDir: string; regionsFile?: string }>();
  for (const task of options.tasks) {
    const own = demoRecipe(task).ownFolder;
    if (!own) folders.set(task, { dataDir });
    else {
      const ownDir = await synth(join(outDir, `synthscenes-${task}`), options.vqaImages ?? own.images);
      folders.set(task, { dataDir: ownDir, regionsFile: synthPaths.detections(ownDir, own.regions) });
    }
  }
  // Each demo is a fresh comparison, built in its own database and swapped in at the end, so a
  // failed demo leaves the previous demo's board as it was.
  const finalDb = join(outDir, 'leaderboard.db');
  const db = join(outDir, `leaderboard.${process.pid}.partial.db`);
  const runsDir = join(outDir, 'runs');
  const plan = demoPlan(options);
  const startOrder = demoStartOrder(plan);
  const jobs: PoolJob[] = startOrder.map((planned) => plan[planned]).map(({ task, method, sets }) => ({
    request: {
      task, dataDir: folders.get(task)!.dataDir, modelDir: options.modelDir, method, sets, seed: options.seed, epochs: options.epochs?.[task] ?? DEMO_EPOCHS[task], backend: options.backend,
      ...(folders.get(task)!.regionsFile ? { regionsFile: folders.get(task)!.regionsFile } : {}),
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
    const recipe = demoRecipe(task);
    const methods = recipe.takesMethods ? (options.methods ?? recipe.methods) : recipe.methods;
    for (const method of methods) plan.push({ task, method, label: method, sets: {} });
    if (encoderBlocks > 0 && methods.includes('ft') && recipe.tunedFt) plan.push({ task, ...tunedFt });
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
 * The rows beside their floor, from each run's metrics.json `controls` (VQA's: its adapter's): per
 * question type of the source test split, the run's accuracy and (in brackets) the prior of its
 * training split. A row at its prior has learned nothing from the pictures. One table per task.
 */
export async function floorTable(outcomes: DemoResult['outcomes']): Promise<string> {
  const tables = new Map<string, { rows: string[][]; types: string[] }>();
  for (const { task, method, outcome } of outcomes) {
    const metrics = JSON.parse(await readFile(join(outcome.runDir, 'metrics.json'), 'utf8')) as Record<string, { overall: number; controls?: Record<string, number> }>;
    const source = Object.entries(metrics).find(([split]) => split.endsWith('/source'))?.[1];
    if (!source?.controls) continue;
    const controls = source.controls;
    const table = tables.get(task) ?? { rows: [], types: [] };
    tables.set(task, table);
    if (table.types.length === 0) table.types = Object.keys(controls).filter((k) => k.startsWith('questionType/')).map((k) => k.slice('questionType/'.length)).sort();
    table.rows.push([method, `${fmt(source.overall)} (${fmt(controls['prior/overall'])})`, ...table.types.map((type) => `${fmt(controls[`questionType/${type}`])} (${fmt(controls[`prior/questionType/${type}`])})`)]);
  }
  return [...tables].map(([task, { rows, types }]) => {
    const header = [`${task}, test/source`, 'overall (prior)', ...types];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    const line = (cells: string[]) => cells.map((cell, c) => (c >= 1 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ');
    return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
  }).join('\n\n');
}

function fmt(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : '-';
}
