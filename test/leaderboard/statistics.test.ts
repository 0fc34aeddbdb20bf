import test from 'ava';
import { InputError } from '../../core/errors.ts';
import { SeededRandom } from '../../core/random.ts';
import { aggregateOverSeeds, bootstrapInterval, pairedBootstrap, quantileOfSorted } from '../../leaderboard/statistics.ts';
import { bernoulliScores } from './synthetic-runs.ts';

test('quantiles interpolate between order statistics (type 7)', (t) => {
  t.is(quantileOfSorted([1, 2, 3, 4], 0.5), 2.5);
  t.is(quantileOfSorted([1, 2, 3, 4], 0), 1);
  t.is(quantileOfSorted([1, 2, 3, 4], 1), 4);
  t.is(quantileOfSorted([10, 20, 30, 40, 50], 0.025), 11);
});

test('seed aggregation is the mean and the sample standard deviation', (t) => {
  t.deepEqual(aggregateOverSeeds([1, 2, 3, 4]), { mean: 2.5, std: Math.sqrt(5 / 3), n: 4 });
  t.deepEqual(aggregateOverSeeds([61.5]), { mean: 61.5, std: null, n: 1 });
});

test('the bootstrap is seeded: same seed, same interval', (t) => {
  const scores = bernoulliScores(300, 0.6, 5).map((s) => s.score);
  const a = bootstrapInterval(scores, { seed: 11 });
  t.deepEqual(bootstrapInterval(scores, { seed: 11 }), a);
  t.notDeepEqual(bootstrapInterval(scores, { seed: 12 }), a);
  t.is(a.resamples, 1000);
  t.true(a.lower < a.estimate && a.estimate < a.upper);
  t.deepEqual(bootstrapInterval([42, 42, 42], { resamples: 50 }), { estimate: 42, lower: 42, upper: 42, confidence: 0.95, resamples: 50 });
  t.throws(() => bootstrapInterval([], {}), { instanceOf: InputError });
  t.throws(() => bootstrapInterval([1], { resamples: 0 }), { instanceOf: InputError });
});

/** Share of simulated datasets whose 95% interval contains the true mean. */
function coverage(datasets: number, draw: (random: SeededRandom) => number[], truth: number, seed: number): number {
  const random = new SeededRandom(seed);
  let covered = 0;
  for (let d = 0; d < datasets; d++) {
    const interval = bootstrapInterval(draw(random), { resamples: 400, seed: d });
    if (interval.lower <= truth && truth <= interval.upper) covered++;
  }
  return covered / datasets;
}

test('95% bootstrap intervals cover the true accuracy at about the nominal rate (0/100 scores)', (t) => {
  const rate = coverage(200, (random) => Array.from({ length: 80 }, () => (random.next() < 0.7 ? 100 : 0)), 70, 2024);
  t.log(`coverage ${rate}`);
  t.true(rate >= 0.9 && rate <= 0.99, `coverage ${rate}`);
});

test('95% bootstrap intervals cover the true mean at about the nominal rate (continuous scores)', (t) => {
  const rate = coverage(200, (random) => Array.from({ length: 60 }, () => 50 + 20 * random.normal()), 50, 7);
  t.log(`coverage ${rate}`);
  t.true(rate >= 0.9 && rate <= 0.99, `coverage ${rate}`);
});

test('paired bootstrap: identical runs differ by exactly 0 with p = 1', (t) => {
  const scores = bernoulliScores(100, 0.5, 1);
  const result = pairedBootstrap(scores, [...scores].reverse());
  t.is(result.estimate, 0);
  t.is(result.lower, 0);
  t.is(result.upper, 0);
  t.is(result.pWorse, 1);
  t.is(result.pBetter, 1);
  t.is(result.pTwoSided, 1);
  t.is(result.examples, 100);
});

test('paired bootstrap: a candidate better on every example has p(worse) = 0', (t) => {
  const base = bernoulliScores(100, 0.5, 2);
  const candidate = base.map((s) => ({ id: s.id, score: s.score + 1 }));
  const result = pairedBootstrap(base, candidate, { resamples: 200 });
  t.is(result.estimate, 1);
  t.is(result.lower, 1);
  t.is(result.upper, 1);
  t.is(result.pWorse, 1);
  t.is(result.pBetter, 0);
  t.is(result.pTwoSided, 0);
});

test('paired bootstrap pairs by id, whatever the order of either run', (t) => {
  const base = bernoulliScores(200, 0.6, 3);
  const candidate = bernoulliScores(200, 0.5, 4);
  const shuffled = new SeededRandom(9).shuffled(candidate);
  t.deepEqual(pairedBootstrap(base, shuffled, { seed: 5 }), pairedBootstrap(base, candidate, { seed: 5 }));
});

test('examples that do not match between the runs are refused with how many and which', (t) => {
  const base = bernoulliScores(10, 0.5, 1);
  const candidate = [...base.slice(0, 8), { id: 'extra', score: 0 }];
  const error = t.throws(() => pairedBootstrap(base, candidate), { instanceOf: InputError });
  t.is(error.message, 'the two runs did not score the same examples: 2 ("q8", "q9") only in base; 1 ("extra") only in candidate');
});
