// Leaderboard throughput on made-up runs: recording (runs/s, per-example rows/s), building the
// board (bootstrap intervals dominate), rendering, and one paired comparison.
//   npx tsx bench/leaderboard.ts [--examples 5000] [--html out.html] [--db path]
// Prints one JSON line of measurements; --html also writes the page for a look.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseBenchArguments } from './command-line.ts';
import { SeededRandom } from '../core/random.ts';
import type { ExampleScore } from '../core/types.ts';
import { buildBoard } from '../leaderboard/board.ts';
import { compareRuns } from '../leaderboard/compare.ts';
import { renderHtml } from '../leaderboard/render-html.ts';
import { renderCsv, renderTable } from '../leaderboard/render-text.ts';
import type { RunRecordDraft } from '../leaderboard/run-record.ts';
import { exampleScores, findRun, listRuns, openLeaderboard, recordRun } from '../leaderboard/store.ts';

const { values } = parseBenchArguments('npx tsx bench/leaderboard.ts [--examples 5000] [--html out.html] [--db path]', { examples: { type: 'string', default: '5000' }, html: { type: 'string' }, db: { type: 'string' } });
const exampleCount = Number(values.examples);
const dbPath = values.db ?? join(mkdtempSync(join(os.tmpdir(), 'vlbench-bench-')), 'leaderboard.db');
const random = new SeededRandom(42);

const METHODS: [string, number, Record<string, number>][] = [
  ['zero-shot', 0, {}],
  ['finetune', 6, { learningRate: 1e-4, epochs: 5 }],
  ['finetune+scene-graph', 7.5, { learningRate: 1e-4, epochs: 5, sceneGraphWeight: 0.5 }],
  ['finetune+villa', 8.2, { learningRate: 1e-4, epochs: 5, adversarialSteps: 3, adversarialStepSize: 1e-3 }],
  ['finetune+villa+dann', 8.9, { learningRate: 1e-4, epochs: 5, adversarialSteps: 3, dannWeight: 0.1 }],
];
const TASKS = [
  { task: 'vqa', metric: 'vqa-accuracy', primary: 'overall', base: 48, split: 'val/target' },
  { task: 'vcr', metric: 'vcr-accuracy', primary: 'q2ar', base: 31, split: 'val' },
];

function draft(name: string, task: (typeof TASKS)[number], method: (typeof METHODS)[number], seed: number, perExample: ExampleScore[]): RunRecordDraft {
  const primary = perExample.reduce((sum, e) => sum + e.score, 0) / perExample.length;
  const steps = method[0] === 'zero-shot' ? undefined : Array.from({ length: 41 }, (_, i) => ({ step: i * 25, loss: 0.55 + (1.9 - method[1] / 20) * Math.exp(-i / (8 + seed)) + 0.04 * random.normal() }));
  return {
    name,
    task: task.task,
    taskVersion: '1',
    split: task.split,
    splitFingerprint: task.task === 'vqa' ? '5e'.repeat(32) : '7c'.repeat(32),
    metric: task.metric,
    metricVersion: '1',
    primaryMetric: task.primary,
    model: { name: 'clip-vit-b32-synth', fingerprint: '9a'.repeat(32) },
    method: { spec: method[0], hyperparameters: method[2] },
    seed,
    backend: 'wasm',
    versions: { vlbench: '0.1.0', node: process.versions.node, tfjs: '4.22.0', transformersJs: '4.3.1', sharp: '0.35.5' },
    gitCommit: null,
    timings: { train: 100 + 10 * seed, score: 1.5 },
    metrics: { [task.primary]: primary, ...(task.task === 'vqa' ? { 'answerType/yes/no': primary + 20, 'answerType/number': primary - 15, 'answerType/other': primary - 5 } : { q2a: primary + 25, qa2r: primary + 27 }) },
    curve: steps,
    perExamplePath: null,
    predictions: null,
  };
}

const store = await openLeaderboard(dbPath, { create: true });
let recorded = 0;
const recordStart = performance.now();
for (const task of TASKS) {
  for (const method of METHODS) {
    const seeds = method[0] === 'zero-shot' ? [0] : method[0] === 'finetune+villa+dann' ? [1, 2, 3] : [1];
    for (const seed of seeds) {
      const accuracy = (task.base + method[1] + 1.2 * random.normal()) / 100;
      const scores = Array.from({ length: exampleCount }, (_, i) => ({ id: `${task.task}-${i}`, score: random.next() < accuracy ? 100 : 0 }));
      const name = seeds.length > 1 ? `${method[0]}-seed${seed}` : method[0];
      await recordRun(store, draft(name, task, method, seed, scores), scores);
      recorded++;
    }
  }
}
const recordSeconds = (performance.now() - recordStart) / 1000;

const boardStart = performance.now();
const board = await buildBoard(await listRuns(store), (id) => exampleScores(store, id));
const boardSeconds = (performance.now() - boardStart) / 1000;
const renderStart = performance.now();
const html = renderHtml(board, { generator: 'vlbench bench' });
renderTable(board);
renderCsv(board);
const renderSeconds = (performance.now() - renderStart) / 1000;

const compareStart = performance.now();
const load = async (ref: string) => {
  const { run } = await findRun(store, ref);
  return { record: run.record, perExample: await exampleScores(store, run.record.id) };
};
compareRuns(await load('finetune'), await load('finetune+scene-graph'));
const compareSeconds = (performance.now() - compareStart) / 1000;
await store.close();
if (values.html) writeFileSync(values.html, html);

console.log(
  JSON.stringify({
    machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model.trim()}`,
    db: dbPath,
    runs: recorded,
    examplesPerRun: exampleCount,
    recordRunsPerSecond: Number((recorded / recordSeconds).toFixed(1)),
    recordExampleRowsPerSecond: Math.round((recorded * exampleCount) / recordSeconds),
    buildBoardSeconds: Number(boardSeconds.toFixed(3)),
    renderAllSeconds: Number(renderSeconds.toFixed(3)),
    compareSeconds: Number(compareSeconds.toFixed(3)),
    htmlBytes: html.length,
  }),
);
