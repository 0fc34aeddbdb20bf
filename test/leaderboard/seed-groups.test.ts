import test from 'ava';
import type { ExampleScore } from '../../core/types.ts';
import { buildBoard } from '../../leaderboard/board.ts';
import { renderHtml } from '../../leaderboard/render-html.ts';
import { renderMarkdown, renderTable } from '../../leaderboard/render-text.ts';
import { bootstrapInterval, pairedBootstrap, seedGroupDifference, seedGroupInterval } from '../../leaderboard/statistics.ts';
import { exampleScores, listRuns, openLeaderboard, recordRun } from '../../leaderboard/store.ts';
import { vlbench } from '../support/cli-in-process.ts';
import { bernoulliScores, noisy, syntheticDraft, temporaryDbPath } from './synthetic-runs.ts';

/** Issue 16, item 4: seed groups compared with an interval over seeds and examples. */

const sortedById = (scores: ExampleScore[]) => [...scores].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
/** Every example scores `value`: no example variation at all. */
const constant = (n: number, value: number): ExampleScore[] => Array.from({ length: n }, (_, i) => ({ id: `q${i}`, score: value }));

test('a seed group of one seed is exactly the single-run bootstrap, and one seed against one seed is exactly the paired bootstrap', (t) => {
  const base = sortedById(bernoulliScores(400, 0.6, 1));
  const candidate = sortedById(bernoulliScores(400, 0.55, 2));
  const { seeds, examples, images, ...interval } = seedGroupInterval([{ seed: 4, scores: base }], { seed: 9, resamples: 300 });
  t.deepEqual([seeds, examples, images], [1, 400, null]);
  t.deepEqual(interval, bootstrapInterval(base.map((s) => s.score), { seed: 9, resamples: 300 }));
  const { baseSeeds, candidateSeeds, pairedSeeds, ...difference } = seedGroupDifference([{ seed: 4, scores: base }], [{ seed: 4, scores: candidate }], { seed: 9, resamples: 300 });
  t.deepEqual([baseSeeds, candidateSeeds, pairedSeeds], [1, 1, true]);
  t.deepEqual(difference, pairedBootstrap(base, candidate, { seed: 9, resamples: 300 }));
});

test('exact cases: identical groups differ by 0, a candidate 1 point better on every example of every seed by exactly 1', (t) => {
  const group = [0, 1, 2].map((seed) => ({ seed, scores: bernoulliScores(300, 0.5 + seed / 20, seed) }));
  const same = seedGroupDifference(group, group.map((run) => ({ ...run })), { resamples: 200 });
  t.like(same, { estimate: 0, lower: 0, upper: 0, pWorse: 1, pBetter: 1, pTwoSided: 1, pairedSeeds: true, baseSeeds: 3, candidateSeeds: 3, examples: 300 });
  const better = group.map((run) => ({ seed: run.seed, scores: run.scores.map((s) => ({ id: s.id, score: s.score + 1 })) }));
  t.like(seedGroupDifference(group, better, { resamples: 200 }), { estimate: 1, lower: 1, upper: 1, pWorse: 1, pBetter: 0, pTwoSided: 0, pairedSeeds: true });
  // Other seeds: no pairing, so the seed draws of the two sides are independent and the interval opens up.
  const otherSeeds = better.map((run) => ({ ...run, seed: run.seed + 10 }));
  const unpaired = seedGroupDifference(group, otherSeeds, { resamples: 200 });
  t.is(unpaired.pairedSeeds, false);
  t.true(Math.abs(unpaired.estimate - 1) < 1e-12, String(unpaired.estimate));
  t.true(unpaired.lower < 1 && unpaired.upper > 1, `[${unpaired.lower}, ${unpaired.upper}]`);
});

test('seed variation alone: examples that never vary leave an interval from the seeds (means 60, 62, 64)', (t) => {
  const group = [60, 62, 64].map((value, seed) => ({ seed, scores: constant(50, value) }));
  const interval = seedGroupInterval(group, { seed: 0, resamples: 1000 });
  t.is(interval.estimate, 62);
  // A resample is the mean of 3 seeds drawn from {60, 62, 64}; all three are 60 with probability
  // 1/27 = 3.7% (and all 64 likewise), more than the 2.5% in each tail, so the percentile
  // interval is the whole range [60, 64] (with 1000 seeded resamples: 37 ± 6 all-60 draws, of
  // which 26 suffice for the type-7 quantile at position 24.975).
  t.deepEqual([interval.lower, interval.upper], [60, 64]);
});

test('example variation is shared by every seed (crossed, not nested): identical seeds keep the single-run width', (t) => {
  const scores = sortedById(bernoulliScores(2000, 0.7, 5));
  const single = bootstrapInterval(scores.map((s) => s.score), { seed: 1 });
  const triple = seedGroupInterval([0, 1, 2].map((seed) => ({ seed, scores })), { seed: 1 });
  const ratio = (triple.upper - triple.lower) / (single.upper - single.lower);
  // A nested bootstrap (examples drawn anew within each seed) would shrink it by √3 (ratio 0.58).
  t.true(ratio > 0.85 && ratio < 1.15, `width ratio ${ratio}`);
});

test('seeds that scored different examples are refused with how many and which', (t) => {
  const a = bernoulliScores(10, 0.5, 1);
  const error = t.throws(() => seedGroupInterval([{ seed: 0, scores: a }, { seed: 1, scores: a.slice(0, 9) }], {}, 'group "ft"'));
  t.is(error?.message, 'the two runs did not score the same examples: 1 ("q9") only in group "ft" (seed 0)');
});

const EXAMPLES = 2000;
const SEEDS = [0, 1, 2];
const baseScores = new Map(SEEDS.map((seed) => [seed, bernoulliScores(EXAMPLES, 0.7, 100 + seed)]));
/** 100 right answers of each seed turned wrong: exactly 5 points lower on every seed. */
function regressed(scores: ExampleScore[]): ExampleScore[] {
  let flipped = 0;
  return scores.map((s) => (s.score === 100 && flipped < 100 ? (flipped++, { ...s, score: 0 }) : s));
}

async function seedGroupBoard(): Promise<string> {
  const db = temporaryDbPath('seed-groups');
  const store = await openLeaderboard(db, { create: true });
  const group = async (name: string, spec: string, scoresOf: (seed: number) => ExampleScore[]) => {
    for (const seed of SEEDS) {
      const scores = scoresOf(seed);
      await recordRun(store, syntheticDraft(name, scores, { seed, method: { spec, hyperparameters: { learningRate: 1e-3, seed } } }), scores);
    }
  };
  await group('ft', 'ft', (seed) => baseScores.get(seed)!);
  await group('ft+mmd', 'ft+mmd', (seed) => regressed(baseScores.get(seed)!));
  await group('ft+dann', 'ft+dann', (seed) => noisy(baseScores.get(seed)!));
  await store.close();
  return db;
}

test.serial('compare on two 3-seed groups: a planted 5-point regression exits 1, the same method with noise exits 0', async (t) => {
  const db = await seedGroupBoard();
  const regression = await vlbench(['compare', 'ft', 'ft+mmd', '--db', db]);
  t.is(regression.code, 1, regression.stderr);
  t.is(regression.stderr, 'note: base "ft" is a seed group of 3 runs (seeds 0, 1, 2) on vqa val/source\nnote: candidate "ft+mmd" is a seed group of 3 runs (seeds 0, 1, 2) on vqa val/source\n');
  t.regex(regression.stdout, /^base: {7}ft: seed group of 3 runs \(seeds 0, 1, 2\)\n/);
  t.regex(regression.stdout, /overall \(mean over seeds\): base \d+\.\d\d, candidate \d+\.\d\d, difference −5\.00 points\n/);
  t.regex(regression.stdout, /two-way bootstrap over seeds \(3 base, 3 candidate; paired by seed\) and 2000 matched examples \(1000 resamples\): mean difference −5\.00, 95% interval \[−\d\.\d\d, −\d\.\d\d\]\n/);
  t.regex(regression.stdout, /REGRESSION: the whole 95% interval of the difference lies below 0\.00/);

  const same = await vlbench(['compare', 'ft', 'ft+dann', '--db', db, '--format', 'json']);
  t.is(same.code, 0, same.stderr);
  const report = JSON.parse(same.stdout);
  t.is(report.difference, 0);
  t.is(report.intervalOver, 'seeds and examples');
  t.like(report.paired, { baseSeeds: 3, candidateSeeds: 3, pairedSeeds: true, examples: EXAMPLES, resamples: 1000 });
  t.true(report.paired.lower < 0 && report.paired.upper > 0, JSON.stringify(report.paired));
  t.deepEqual(report.base.seeds, [0, 1, 2]);
  t.is(report.base.runIds.length, 3);
});

test.serial('--seeds picks the seeds to compare; a seed the group lacks is refused with the seeds there are', async (t) => {
  const db = await seedGroupBoard();
  const two = await vlbench(['compare', 'ft', 'ft+mmd', '--db', db, '--seeds', '0,2', '--format', 'json']);
  t.is(two.code, 1, two.stderr);
  t.deepEqual(JSON.parse(two.stdout).candidate.seeds, [0, 2]);
  const one = await vlbench(['compare', 'ft', 'ft+mmd', '--db', db, '--seeds', '1', '--format', 'json']);
  t.is(one.code, 1);
  t.is(JSON.parse(one.stdout).intervalOver, 'examples', 'one seed on each side is the paired bootstrap over examples');
  const missing = await vlbench(['compare', 'ft', 'ft+mmd', '--db', db, '--seeds', '0,7']);
  t.is(missing.code, 2);
  t.is(missing.stderr, 'vlbench: error: record "ft", field "--seeds": base "ft" has no run with seed 7 in its seed group (seeds there: 0, 1, 2)\n');
  const bad = await vlbench(['compare', 'ft', 'ft+mmd', '--db', db, '--seeds', '0,,1']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /field "--seeds": expected comma-separated seeds/);
});

test.serial('the board shows the interval over seeds and examples for seed groups in every format', async (t) => {
  const db = await seedGroupBoard();
  const store = await openLeaderboard(db, { create: false });
  const board = await buildBoard(await listRuns(store), (id) => exampleScores(store, id), { resamples: 500, seed: 3 });
  await store.close();
  const [section] = board.sections;
  const ft = section.rows.find((row) => row.name === 'ft')!;
  t.is(ft.primary.n, 3);
  t.is(ft.primary.intervalOver, 'seeds and examples');
  t.true(ft.primary.interval!.lower < ft.primary.mean && ft.primary.mean < ft.primary.interval!.upper);
  t.is(ft.primary.interval!.resamples, 500);
  const cell = `${ft.primary.mean.toFixed(2)} ± ${ft.primary.std!.toFixed(2)} [${ft.primary.interval!.lower.toFixed(2)}, ${ft.primary.interval!.upper.toFixed(2)}]`;
  t.true(renderTable(board).includes(cell), renderTable(board));
  t.true(renderMarkdown(board).includes(cell.replace('[', '\\[').replace(']', '\\]')));
  const html = renderHtml(board);
  t.true(html.includes(`± ${ft.primary.std!.toFixed(2)} <span class="interval">[${ft.primary.interval!.lower.toFixed(2)}, ${ft.primary.interval!.upper.toFixed(2)}]</span>`));
  const json = await vlbench(['leaderboard', '--db', db, '--format', 'json', '--resamples', '500', '--seed', '3']);
  t.deepEqual(JSON.parse(json.stdout).sections[0].rows.find((row: { name: string }) => row.name === 'ft').primary, JSON.parse(JSON.stringify(ft.primary)));
});
