import test from 'ava';
import { vlbench } from '../support/cli-in-process.ts';
import type { ExampleScore } from '../../core/types.ts';
import { openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { bernoulliScores, FINGERPRINT_B, noisy, syntheticDraft, temporaryDbPath } from './synthetic-runs.ts';


const base = bernoulliScores(2000, 0.7, 100);
/** 100 examples the base got right, now wrong: a drop of exactly 5 points. */
const regressed = base.map((s, i) => (i < 400 && s.score === 100 && base.slice(0, i).filter((b) => b.score === 100).length < 100 ? { ...s, score: 0 } : s));

async function boardWith(runs: [string, ExampleScore[] | null, Parameters<typeof syntheticDraft>[2]?][]): Promise<string> {
  const path = temporaryDbPath('compare');
  const store = await openLeaderboard(path, { create: true });
  for (const [name, scores, overrides] of runs) await recordRun(store, syntheticDraft(name, scores, overrides), scores);
  await store.close();
  return path;
}

test.serial('a planted 5-point regression fails the gate (exit 1)', async (t) => {
  t.is(meanOf(regressed) - meanOf(base), -5);
  const db = await boardWith([['main', base], ['feature', regressed]]);
  const result = await vlbench(['compare', 'main', 'feature', '--db', db]);
  t.is(result.code, 1, result.stdout + result.stderr);
  t.regex(result.stdout, /difference −5\.00 points/);
  t.regex(result.stdout, /paired bootstrap over 2000 matched examples \(1000 resamples\)/);
  t.regex(result.stdout, /REGRESSION: the whole 95% interval of the difference lies below 0\.00/);
  t.regex(result.stdout, /p \(candidate worse, one-sided\) < 0\.0010/);
});

test.serial('the same drop within the tolerance passes (exit 0)', async (t) => {
  const db = await boardWith([['main', base], ['feature', regressed]]);
  const result = await vlbench(['compare', 'main', 'feature', '--db', db, '--max-drop', '8']);
  t.is(result.code, 0, result.stdout + result.stderr);
  t.regex(result.stdout, /pass: the whole 95% interval lies at or above −8\.00/);
});

test.serial('noise of the same mean passes (exit 0), and the JSON report carries the interval', async (t) => {
  const candidate = noisy(base);
  t.is(meanOf(candidate), meanOf(base));
  const db = await boardWith([['main', base], ['feature', candidate]]);
  const result = await vlbench(['compare', 'main', 'feature', '--db', db, '--format', 'json', '--resamples', '500', '--seed', '3']);
  t.is(result.code, 0, result.stdout + result.stderr);
  const report = JSON.parse(result.stdout);
  t.is(report.exitCode, 0);
  t.is(report.difference, 0);
  t.true(report.paired.lower < 0 && report.paired.upper > 0);
  t.is(report.paired.resamples, 500);
  t.true(report.paired.pWorse > 0.1);
});

test.serial('runs that are not comparable exit 2 and say which fields differ', async (t) => {
  const db = await boardWith([['main', base], ['other-split', base, { splitFingerprint: FINGERPRINT_B, metricVersion: '3' }]]);
  const result = await vlbench(['compare', 'main', 'other-split', '--db', db]);
  t.is(result.code, 2);
  t.is(result.stdout, '');
  t.regex(result.stderr, /not comparable: splitFingerprint differs \(base "a{64}", candidate "b{64}"\); metricVersion differs \(base "2", candidate "3"\)/);
});

test.serial('runs that scored different examples exit 2 with how many and the first few', async (t) => {
  const db = await boardWith([['main', base], ['subset', base.slice(0, 1990)]]);
  const result = await vlbench(['compare', 'main', 'subset', '--db', db]);
  t.is(result.code, 2);
  t.regex(result.stderr, /did not score the same examples: 10 \(first 5: "q1990", "q1991", "q1992", "q1993", "q1994"\) only in base run "main"/);
});

test.serial('a metric without per-example scores is compared on point values, and says so', async (t) => {
  const db = await boardWith([['main', base], ['feature', regressed, { metrics: { overall: meanOf(regressed), 'answerType/number': 30 } }]]);
  const result = await vlbench(['compare', 'main', 'feature', '--db', db, '--metric', 'answerType/number', '--max-drop', '5']);
  t.is(result.code, 1);
  t.regex(result.stdout, /no interval: per-example scores exist only for the primary metric \(overall\)/);
  t.regex(result.stdout, /REGRESSION: the difference −10\.50 is below −5\.00 \(point values only/);
  const missing = await vlbench(['compare', 'main', 'feature', '--db', db, '--metric', 'nope']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /has no metric "nope"/);
});

test.serial('--task narrows name lookups when a name exists in several tasks', async (t) => {
  const vcr = { task: 'vcr', metric: 'vcr-accuracy', primaryMetric: 'q2ar', metrics: { q2ar: meanOf(base) } };
  const db = await boardWith([['main', base], ['feature', regressed], ['main', base, vcr]]);
  const ambiguous = await vlbench(['compare', 'main', 'feature', '--db', db]);
  t.is(ambiguous.code, 2, 'the latest "main" is the vcr run: not comparable');
  t.regex(ambiguous.stderr, /note: base name "main" matches 2 runs \(narrow with --task, or pass a run id\)/);
  t.regex(ambiguous.stderr, /task differs \(base "vcr", candidate "vqa"\)/);
  const narrowed = await vlbench(['compare', 'main', 'feature', '--db', db, '--task', 'vqa']);
  t.is(narrowed.code, 1, narrowed.stderr);
  t.is(narrowed.stderr, '');
});

test.serial('bad input exits 2: unknown run, bad tolerance, missing database', async (t) => {
  const db = await boardWith([['main', base]]);
  t.is((await vlbench(['compare', 'main', 'ghost', '--db', db])).code, 2);
  const tolerance = await vlbench(['compare', 'main', 'main', '--db', db, '--max-drop', '-1']);
  t.is(tolerance.code, 2);
  t.regex(tolerance.stderr, /--max-drop/);
  t.is((await vlbench(['compare', 'main', 'main', '--db', db, '--resamples', '1.5'])).code, 2);
  const missing = await vlbench(['compare', 'a', 'b', '--db', `${db}.absent`]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /no leaderboard database here/);
});

test.serial('runs computed on different machines are compared (the gate applies) and the differing settings are named', async (t) => {
  const db = await boardWith([
    ['main', base, { backend: 'wasm', execution: { device: 'cpu (2 cores)', dtype: 'float32', batchSize: 32 } }],
    ['feature', regressed, { backend: 'tensorflow-gpu', execution: { device: 'NVIDIA H200', dtype: 'float32', batchSize: 256, shardCount: 3 } }],
  ]);
  const result = await vlbench(['compare', 'main', 'feature', '--db', db]);
  t.is(result.code, 1, 'still the planted regression: execution settings inform, they do not refuse');
  const notes = result.stdout.split('\n').filter((line) => line.startsWith('note:'));
  t.deepEqual(notes, [
    'note: backend differs (base "wasm", candidate "tensorflow-gpu"); scores can drift with it across machines, the gate still applies',
    'note: execution.device differs (base "cpu (2 cores)", candidate "NVIDIA H200"); scores can drift with it across machines, the gate still applies',
    'note: execution.batchSize differs (base 32, candidate 256); scores can drift with it across machines, the gate still applies',
    'note: execution.shardCount differs (base unknown, candidate 3); scores can drift with it across machines, the gate still applies',
  ]);
  const board = await vlbench(['leaderboard', '--db', db, '--resamples', '10']);
  t.regex(board.stdout, /wasm · cpu \(2 cores\) · float32 · batch 32\n/);
  t.regex(board.stdout, /tensorflow-gpu · NVIDIA H200 · float32 · batch 256 · 3 shards\n/);
});

test.serial('a crash inside compare exits 3, never 1: a bug must not read as a regression', async (t) => {
  const db = await boardWith([['main', base], ['feature', regressed]]);
  t.is((await vlbench(['compare', 'main', 'feature', '--db', db])).code, 1, 'the planted regression, without the fault');
  // The fault: the bootstrap's sort of its resampled means throws, as a bug in the statistics would.
  const sort = Float64Array.prototype.sort;
  Float64Array.prototype.sort = function () {
    throw new TypeError('planted fault in the bootstrap');
  };
  let result: Awaited<ReturnType<typeof vlbench>>;
  try {
    result = await vlbench(['compare', 'main', 'feature', '--db', db]);
  } finally {
    Float64Array.prototype.sort = sort;
  }
  t.is(result.code, 3);
  t.is(result.stdout, '');
  t.is(result.stderr, 'vlbench: internal error: planted fault in the bootstrap\nvlbench: set VLBENCH_DEBUG=1 for the stack trace, and please report it.\n');
});

function meanOf(scores: ExampleScore[]): number {
  return scores.reduce((sum, s) => sum + s.score, 0) / scores.length;
}

test.serial('questions of one image are resampled together: a drop that comes from 4 of 400 images is not significant, though it would be counted per question', async (t) => {
  // 400 images × 5 questions, each question scoring what its image does; the candidate loses
  // 4 images (20 questions) and gains 1 (5): −0.75 points. Per question that is 20 against 5
  // (significant); per image it is 4 against 1, which a resample of images reverses often.
  const perImage = bernoulliScores(400, 0.7, 7).map((s) => s.score);
  const lost = perImage.flatMap((score, image) => (score === 100 ? [image] : [])).slice(0, 4);
  const gained = perImage.flatMap((score, image) => (score === 0 ? [image] : [])).slice(0, 1);
  const expand = (scores: number[]) => scores.flatMap((score, image) => Array.from({ length: 5 }, (_, q) => ({ id: `q${image * 5 + q}`, score, image: `img${image}` })));
  const main = expand(perImage);
  const feature = expand(perImage.map((score, image) => (lost.includes(image) ? 0 : gained.includes(image) ? 100 : score)));
  t.is(meanOf(feature) - meanOf(main), -0.75);
  const byImage = await vlbench(['compare', 'main', 'feature', '--db', await boardWith([['main', main], ['feature', feature]])]);
  t.is(byImage.code, 0, byImage.stdout + byImage.stderr);
  t.regex(byImage.stdout, /paired bootstrap over 2000 matched examples in 400 images \(resampled by image\) \(1000 resamples\)/);
  t.regex(byImage.stdout, /pass: the difference is not significantly below 0\.00/);
  const strip = (scores: ExampleScore[]) => scores.map(({ id, score }) => ({ id, score }));
  const byQuestion = await vlbench(['compare', 'main', 'feature', '--db', await boardWith([['main', strip(main)], ['feature', strip(feature)]]), '--format', 'json']);
  t.is(byQuestion.code, 1, 'counted per question, the same drop looks significant');
  t.like(JSON.parse(byQuestion.stdout), { intervalOver: 'examples', paired: { images: null } });
});
