/**
 * Issue 28's SynthScenes VQA (or GQA) table: every arm of `vlbench run` beside its floors.
 *
 *   npx tsx bench/vqa-table.ts --data DIR [--task vqa] [--arms true,detector,grid,permuted,oracle]
 *       [--seeds 0,1,2,3,4] [--epochs N] [--method ft] [--set key=value ...] [--concurrency 2]
 *
 * Arms (each trains on source labels unless noted, frozen encoder blocks unless --set says):
 *  - `true`: object tokens over the true boxes (DIR/detections/true_boxes.json);
 *  - `detector`: over the simulated detector's boxes (detections/detector.json; its recall and
 *    precision are in DIR/manifest.json);
 *  - `grid`: no boxes: the grid's cells are the objects;
 *  - `permuted`: the permuted-image control — the same questions with images shuffled within each
 *    split (a copy of DIR whose VQA image ids are permuted), true boxes of the image each question
 *    now points at. Whatever it scores it learned without the picture: it must sit within 3
 *    points of the prior;
 *  - `oracle`: true boxes, trained on the target domain's labels (the reference a domain
 *    adaptation method is measured against; labelled as such).
 *
 * Prints, per arm and evaluation domain, mean ± std over seeds of the official accuracy overall
 * and per question type, beside the per-question-type prior of the arm's training split.
 */
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseBenchArguments } from './command-line.ts';
import { parseBackendChoice } from '../models/backends/select.ts';
import { runPool, defaultConcurrency, type PoolJob, type RunSummary } from '../harness/run-pool.ts';
import type { RunRequest } from '../harness/run.ts';
import { SeededRandom } from '../core/random.ts';
import { readSynthManifest, SYNTH_DOMAINS, SYNTH_SPLITS, synthPaths, synthSubtype } from '../tasks/synth/index.ts';

const ARMS = ['true', 'detector', 'grid', 'permuted', 'oracle'] as const;
type Arm = (typeof ARMS)[number];
const usage = 'npx tsx bench/vqa-table.ts --data DIR [--task vqa|gqa] [--arms true,detector,grid,permuted,oracle] [--seeds 0,1,2,3,4] [--epochs N] [--method ft] [--set key=value ...] [--concurrency N] [--backend auto] [--work DIR]';
const { values, refuse } = parseBenchArguments(usage, {
  data: { type: 'string' },
  task: { type: 'string', default: 'vqa' },
  arms: { type: 'string', default: 'true,detector,grid,permuted' },
  seeds: { type: 'string', default: '0,1,2,3,4' },
  epochs: { type: 'string' },
  method: { type: 'string', default: 'ft' },
  set: { type: 'string', multiple: true, default: [] },
  concurrency: { type: 'string' },
  backend: { type: 'string', default: 'auto' },
  work: { type: 'string' },
});
const data = resolve(values.data ?? refuse('--data is required'));
const task = values.task === 'vqa' || values.task === 'gqa' ? values.task : refuse(`--task expects vqa or gqa, got ${values.task}`);
const arms = values.arms.split(',').map((a) => ((ARMS as readonly string[]).includes(a) ? (a as Arm) : refuse(`--arms: "${a}" is not one of ${ARMS.join(', ')}`)));
if (task === 'gqa' && arms.includes('permuted')) refuse('--arms permuted permutes VQA image ids; for gqa leave it out');
const seeds = values.seeds.split(',').map((s) => (Number.isInteger(Number(s)) ? Number(s) : refuse(`--seeds expects integers, got ${s}`)));
const epochs = values.epochs === undefined ? undefined : Number.isInteger(Number(values.epochs)) && Number(values.epochs) > 0 ? Number(values.epochs) : refuse(`--epochs expects a positive integer, got ${values.epochs}`);
const sets = Object.fromEntries(values.set.map((pair) => (pair.includes('=') ? [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] : refuse(`--set expects key=value, got ${pair}`))));
const concurrency = values.concurrency === undefined ? defaultConcurrency() : Number(values.concurrency);
const manifest = await readSynthManifest(data);
const work = values.work ? resolve(values.work) : await mkdtemp(join(tmpdir(), 'vlbench-vqa-table-'));

/**
 * A copy of the folder whose VQA questions point at other images of the same split (seeded
 * shuffle of image ids, the same one in the questions and the annotations file). Images, boxes
 * and every other file are the original's, so the questions keep their answers and lose their
 * pictures.
 */
async function permutedCopy(root: string): Promise<string> {
  const out = join(work, 'permuted-data');
  await mkdir(out, { recursive: true });
  await cp(root, out, { recursive: true, force: true });
  const random = new SeededRandom(0).fork('permuted-images');
  for (const domain of SYNTH_DOMAINS) {
    for (const split of SYNTH_SPLITS) {
      const subtype = synthSubtype(split, domain);
      const questionsFile = synthPaths.vqaQuestions(out, subtype);
      const annotationsFile = synthPaths.vqaAnnotations(out, subtype);
      const questions = JSON.parse(await readFile(questionsFile, 'utf8').catch(() => 'null'));
      if (!questions) continue;
      const annotations = JSON.parse(await readFile(annotationsFile, 'utf8'));
      const ids = [...new Set<number>(questions.questions.map((q: { image_id: number }) => q.image_id))];
      const shuffled = random.shuffled(ids);
      const moved = new Map(ids.map((id, i) => [id, shuffled[i]]));
      for (const q of questions.questions) q.image_id = moved.get(q.image_id);
      for (const a of annotations.annotations) a.image_id = moved.get(a.image_id);
      await writeFile(questionsFile, JSON.stringify(questions));
      await writeFile(annotationsFile, JSON.stringify(annotations));
    }
  }
  return out;
}

const permutedData = arms.includes('permuted') ? await permutedCopy(data) : undefined;
const regionsOf = (arm: Arm, root: string) => (arm === 'grid' ? undefined : synthPaths.detections(root, arm === 'detector' ? 'detector' : 'true'));
const plan = arms.flatMap((arm) => seeds.map((seed) => ({ arm, seed })));
const jobs: PoolJob[] = plan.map(({ arm, seed }) => {
  const root = arm === 'permuted' ? permutedData! : data;
  return {
    request: {
      task,
      dataDir: root,
      method: values.method,
      sets,
      seed,
      epochs,
      backend: parseBackendChoice(values.backend),
      trainDomain: arm === 'oracle' ? 'target' : 'source',
      regionsFile: regionsOf(arm, root),
      name: `${task}:${values.method} [${arm}]`,
    } satisfies RunRequest,
    hooks: { db: null, runsDir: join(work, 'runs'), cacheDir: join(work, 'cache') },
  };
});
process.stderr.write(`${jobs.length} runs, ${concurrency} at a time; run folders in ${join(work, 'runs')}\n`);
const started = performance.now();
const summaries = await runPool(jobs, {
  concurrency,
  // The first run alone fills the feature cache for the rest; with no more runs than workers that only leaves a core idle.
  warmFirst: jobs.length > concurrency,
  onFinish: (index, summary) => process.stderr.write(`${plan[index].arm} seed ${plan[index].seed}: ${summary.splits.map((s) => `${s.split} ${s.metrics[s.primary].toFixed(2)}`).join(', ')} (${(summary.trainingSeconds ?? 0).toFixed(0)} s)\n`),
});

type Controls = Record<string, number>;
const metricsOf = async (summary: RunSummary) => JSON.parse(await readFile(join(summary.runDir, 'metrics.json'), 'utf8')) as Record<string, Record<string, number> & { controls: Controls }>;
const meanStd = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return `${mean.toFixed(2)} ± ${std.toFixed(2)}`;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

const all = await Promise.all(summaries.map(metricsOf));
const domains = Object.keys(all[0]).map((split) => split.split('/').at(-1)!);
console.log(`\n${task} on ${data} (${manifest.options.images} images a domain, test split), ${values.method}, ${seeds.length} seed(s) ${seeds.join(',')}, ${epochs ?? 'default'} epochs${Object.keys(sets).length ? `, --set ${values.set.join(' ')}` : ''}; detector boxes: recall ${manifest.detector?.recall}, precision ${manifest.detector?.precision} at IoU 0.5`);
for (const domain of domains) {
  const splitKey = Object.keys(all[0]).find((k) => k.endsWith(`/${domain}`))!;
  const types = Object.keys(all[0][splitKey].controls).filter((k) => k.startsWith('questionType/')).map((k) => k.slice('questionType/'.length)).sort();
  console.log(`\n${splitKey}: mean ± std over seeds (prior: the per-question-type prior of the arm's training split)`);
  console.log(`| arm | overall | prior | ${types.map((t) => `${t} (prior)`).join(' | ')} |`);
  console.log(`|---|---|---|${types.map(() => '---').join('|')}|`);
  for (const arm of arms) {
    const rows = plan.flatMap((p, i) => (p.arm === arm ? [all[i][splitKey]] : []));
    const cells = types.map((t) => `${mean(rows.map((r) => r.controls[`questionType/${t}`])).toFixed(1)} (${mean(rows.map((r) => r.controls[`prior/questionType/${t}`])).toFixed(1)})`);
    console.log(`| ${arm === 'oracle' ? 'oracle (target labels, true boxes)' : arm} | ${meanStd(rows.map((r) => r[task === 'vqa' ? 'overall' : 'accuracy'] ?? r.overall))} | ${mean(rows.map((r) => r.controls['prior/overall'])).toFixed(2)} | ${cells.join(' | ')} |`);
  }
}
console.log(`\n${jobs.length} runs in ${((performance.now() - started) / 1000).toFixed(0)} s; training s/run ${mean(summaries.map((s) => s.trainingSeconds ?? 0)).toFixed(0)}`);
