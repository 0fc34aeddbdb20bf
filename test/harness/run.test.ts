import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executeRun, type RunRequest } from '../../harness/run.ts';
import { getTask } from '../../tasks/registry.ts';
import { generateSynthScenes, type SynthDomain } from '../../tasks/synth/index.ts';
import { synthLoadOptions } from '../../tasks/synth/run-splits.ts';
import { readNpyMatrix } from '../../tasks/retrieval/npy.ts';
import { listRuns, openLeaderboard } from '../../leaderboard/store.ts';

const fixtureModel = new URL('../fixtures/clip-tiny', import.meta.url).pathname;
let data = '';

test.before(async () => {
  data = join(await mkdtemp(join(tmpdir(), 'vlbench-run-')), 'synth');
  // 32 px matches the tiny fixture CLIP's input size.
  await generateSynthScenes({ outDir: data, images: 20, seed: 3, size: 32 });
});

async function freshRuns(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vlbench-runs-'));
}

function request(task: RunRequest['task'], method: string, extra: Partial<RunRequest> = {}): RunRequest {
  return { task, dataDir: data, modelDir: fixtureModel, method, sets: {}, seed: 1, epochs: 1, backend: 'wasm', ...extra };
}

const quiet = () => undefined;

/** The loader options of a SynthScenes evaluation split as a run records it ("test/source"). */
function synthOptions(task: string, label: string) {
  const [split, domain] = label.split('/') as ['test', SynthDomain];
  return synthLoadOptions(task, data, domain, split);
}

test('a VQA run scores both domains, writes a complete folder and records one run per split', async (t) => {
  const runsDir = await freshRuns();
  const db = join(runsDir, 'board.db');
  const outcome = await executeRun(request('vqa', 'ft'), { db, runsDir, log: quiet });
  t.deepEqual(outcome.splits.map((s) => s.split), ['test/source', 'test/target']);
  for (const file of ['config.json', 'metrics.json', 'curve.json', 'timings.json', 'request.json']) t.true(existsSync(join(outcome.runDir, file)), file);
  t.false(existsSync(`${outcome.runDir}.partial`));
  // The submission file is the official result format: the VQA task reads it back and scores it the same.
  const vqa = getTask('vqa');
  const split = outcome.splits[0];
  const loaded = await vqa.load({ split: 'test_source', files: { questions: join(data, 'vqa', 'v2_OpenEnded_synthscenes_test_source_questions.json'), annotations: join(data, 'vqa', 'v2_synthscenes_test_source_annotations.json') }, imagesDir: join(data, 'images'), splitLabel: 'test/source' });
  const predictions = await vqa.readPredictions(loaded, split.record!.predictions!.path);
  t.deepEqual(vqa.score(loaded, predictions).metrics, split.report.metrics);
  const store = await openLeaderboard(db, { create: false });
  t.is((await listRuns(store, { task: 'vqa' })).length, 2);
  await store.close();
});

test('every method of the SPEC composes on VQA and VCR (sg, adv, mmd, dann)', async (t) => {
  const runsDir = await freshRuns();
  for (const task of ['vqa', 'vcr'] as const) {
    const outcome = await executeRun(request(task, 'ft+sg+adv+mmd+dann', { sets: { batch: '16', 'adv.steps': '2' } }), { db: null, runsDir, log: quiet });
    const parts = Object.keys(outcome.training!.curve[0].parts).sort();
    t.deepEqual(parts, ['adv_delta_image', 'adv_delta_text', 'adv_kl', 'dann', 'dann_accuracy', 'mmd', 'mmd2', 'sg', 'task'], task);
    // What was written is what was scored: the task reads its own submission back to the same metrics.
    for (const s of outcome.splits) {
      const file = s.record === null ? (await readdir(join(outcome.runDir, 'predictions'))).find((f) => f.startsWith(s.split.replace('/', '_')))! : '';
      const split = await getTask(task).load(synthOptions(task, s.split));
      const predictions = await getTask(task).readPredictions(split, join(outcome.runDir, 'predictions', file));
      t.deepEqual(getTask(task).score(split, predictions).metrics, s.report.metrics, `${task} ${s.split}`);
    }
  }
});

test('GQA trains on its raw answers and scores with the GQA metrics on both domains', async (t) => {
  const runsDir = await freshRuns();
  const outcome = await executeRun(request('gqa', 'ft+sg'), { db: null, runsDir, log: quiet });
  t.deepEqual(outcome.splits.map((s) => s.split), ['test/source', 'test/target']);
  for (const s of outcome.splits) {
    t.is(s.report.primary, 'accuracy');
    // GQA accuracy by its definition: exact string match of the predicted answer, over every question.
    const split = await getTask('gqa').load(synthOptions('gqa', s.split));
    const results = JSON.parse(await readFile(join(outcome.runDir, 'predictions', `${s.split.replace('/', '_')}.json`), 'utf8')) as { questionId: string; prediction: string }[];
    const answers = new Map((split.examples as { questionId: string; answer?: string }[]).map((e) => [e.questionId, e.answer]));
    const correct = results.filter((r) => answers.get(r.questionId) === r.prediction).length;
    // eval.py reports percentages to two decimals.
    t.is(s.report.metrics.accuracy, Math.round((10_000 * correct) / results.length) / 100, s.split);
  }
  t.true('sg' in outcome.training!.curve[0].parts);
});

test('retrieval: zero-shot needs no training, fine-tuning starts from it', async (t) => {
  const runsDir = await freshRuns();
  const zeroshot = await executeRun(request('retrieval', 'zeroshot'), { db: null, runsDir, log: quiet });
  t.is(zeroshot.training, null);
  // R@K by its definition, recomputed from the written similarity matrix: image→text counts a hit when
  // any of the image's captions is among the K highest-scoring captions (ties count against the model).
  const matrix = await readNpyMatrix(join(zeroshot.runDir, 'predictions', 'test_source.npy'));
  const captionsPer = matrix.cols / matrix.rows;
  const i2tAt = (k: number) => {
    let hits = 0;
    for (let image = 0; image < matrix.rows; image++) {
      const row = matrix.data.subarray(image * matrix.cols, (image + 1) * matrix.cols);
      const best = Math.max(...Array.from({ length: captionsPer }, (_, c) => row[image * captionsPer + c]));
      const above = Array.from(row).filter((v, c) => v >= best && Math.floor(c / captionsPer) !== image).length;
      if (above < k) hits++;
    }
    return (100 * hits) / matrix.rows;
  };
  t.is(zeroshot.splits[0].report.metrics.i2t_r1, i2tAt(1));
  t.is(zeroshot.splits[0].report.metrics.i2t_r5, i2tAt(5));
  const tuned = await executeRun(request('retrieval', 'ft+dann', { epochs: 2 }), { db: null, runsDir, log: quiet });
  t.is(tuned.training!.steps, 2);
});

test('an interrupted run leaves only a .partial folder and resumes to the same predictions', async (t) => {
  const runsDir = await freshRuns();
  const settings = { sets: { batch: '4', checkpoint_every: '2' }, epochs: 2 };
  const straight = await executeRun(request('vqa', 'ft', settings), { db: null, runsDir, log: quiet });
  const interruptedDir = await freshRuns();
  await t.throwsAsync(executeRun(request('vqa', 'ft', settings), { db: null, runsDir: interruptedDir, interruptAfterStep: 3, log: quiet }), { message: /interrupted after step 3/ });
  const left = (await readdir(interruptedDir)).filter((f) => !f.startsWith('.'));
  t.is(left.length, 1);
  t.regex(left[0], /\.partial$/);
  const resumed = await executeRun(request('vqa', 'ft', settings), { db: null, runsDir: interruptedDir, resumeDir: join(interruptedDir, left[0]), log: quiet });
  t.is(resumed.training!.resumedFromStep, 2);
  for (const file of ['test_source.json', 'test_target.json']) {
    t.is(await readFile(join(resumed.runDir, 'predictions', file), 'utf8'), await readFile(join(straight.runDir, 'predictions', file), 'utf8'), file);
  }
  t.deepEqual(resumed.splits.map((s) => s.report.metrics), straight.splits.map((s) => s.report.metrics));
});

test('the second run on the same data reads image features from the cache', async (t) => {
  const runsDir = await freshRuns();
  const lines: string[] = [];
  await executeRun(request('retrieval', 'zeroshot'), { db: null, runsDir, log: (l) => lines.push(l) });
  await executeRun(request('retrieval', 'zeroshot'), { db: null, runsDir, log: (l) => lines.push(l) });
  const featureLines = lines.filter((l) => l.startsWith('features:'));
  t.regex(featureLines[0], /\(0 from the cache\)/);
  t.notRegex(featureLines[1], /\(0 from the cache\)/);
});

test('methods that do not apply, and unknown settings, are refused before any work', async (t) => {
  const runsDir = await freshRuns();
  await t.throwsAsync(executeRun(request('vqa', 'zeroshot'), { db: null, runsDir, log: quiet }), { message: /zeroshot applies to retrieval only/ });
  await t.throwsAsync(executeRun(request('retrieval', 'ft+sg'), { db: null, runsDir, log: quiet }), { message: /ft\+sg: sg pools regions from the fusion's image tokens, which a contrastive \(retrieval\) problem does not have/ });
  await t.throwsAsync(executeRun(request('vqa', 'ft', { sets: { learning_rate: '1' } }), { db: null, runsDir, log: quiet }), { message: /unknown --set key "learning_rate"/ });
  await t.throwsAsync(executeRun(request('vqa', 'ft', { split: 'train' }), { db: null, runsDir, log: quiet }), { message: /not a SynthScenes evaluation split/ });
  t.deepEqual((await readdir(runsDir)).filter((f) => !f.startsWith('.')), []);
});
