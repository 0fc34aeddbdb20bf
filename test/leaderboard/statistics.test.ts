import test from 'ava';
import { InputError } from '../../core/errors.ts';
import { SeededRandom } from '../../core/random.ts';
import type { ExampleScore } from '../../core/types.ts';
import { aggregateOverSeeds, bootstrapInterval, pairedBootstrap, quantileOfSorted, resamplingUnits, seedGroupDifference, seedGroupInterval, type SeedScores } from '../../leaderboard/statistics.ts';
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

test('paired bootstrap: a candidate better on every example has one-sided p-values 1 for "it is worse" (pWorse) and 0 for "it is better" (pBetter), two-sided 0', (t) => {
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

/**
 * Issue 29, item 6: a SynthScenes image carries 5 questions, so the image is the unit. Planted:
 * every question of an image scores what the image's first does (5 identical copies), so the
 * data hold 400 independent draws, not 2000: the clustered interval must be √5 ≈ 2.24 times as
 * wide as the question-level one (the standard error of a mean of 400 draws against 2000).
 */
const IMAGES = 400;
const PER_IMAGE = 5;
function imageCopies(accuracy: number, seed: number): ExampleScore[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: IMAGES }, (_, image) => {
    const score = random.next() < accuracy ? 100 : 0;
    return Array.from({ length: PER_IMAGE }, (_, copy) => ({ id: `q${image * PER_IMAGE + copy}`, score, image: `img${image}` }));
  }).flat();
}
const withoutImages = (scores: readonly ExampleScore[]): ExampleScore[] => scores.map(({ id, score }) => ({ id, score }));
const width = (interval: { lower: number; upper: number }) => interval.upper - interval.lower;
const SQRT5 = Math.sqrt(PER_IMAGE);
const RESAMPLES = { resamples: 4000, seed: 3 };

test('resampling units: examples of one image form one unit, in order of first appearance; an example without an image is alone', (t) => {
  const units = resamplingUnits(['b', undefined, 'a', 'b', undefined, 'a', 'b']);
  t.is(units.count, 4);
  t.is(units.images, 2);
  const members = Array.from({ length: units.count }, (_, u) => Array.from(units.members.subarray(units.starts[u], units.starts[u + 1])));
  t.deepEqual(members, [[0, 3, 6], [1], [2, 5], [4]]);
  t.like(resamplingUnits([undefined, undefined]), { count: 2, images: null });
  // Every example about one image: nothing to resample at the image level, so the examples are the units.
  t.like(resamplingUnits(['a', 'a', 'a']), { count: 3, images: null });
  t.like(resamplingUnits(['a']), { count: 1, images: 1 });
});

test('one run: 5 identical copies of each question per image give an interval √5 wider when resampled by image', (t) => {
  const scores = imageCopies(0.6, 1);
  const byQuestion = bootstrapInterval(scores.map((s) => s.score), RESAMPLES);
  const byImage = bootstrapInterval(scores.map((s) => s.score), RESAMPLES, scores.map((s) => s.image));
  t.is(byImage.estimate, byQuestion.estimate);
  const ratio = width(byImage) / width(byQuestion);
  t.true(Math.abs(ratio / SQRT5 - 1) < 0.1, `width ratio ${ratio.toFixed(3)}, expected about √5 = ${SQRT5.toFixed(3)}`);
  // And the clustered width is the one 400 independent 0/100 draws give: 2·1.96·100·√(p(1−p)/400).
  const p = byImage.estimate / 100;
  const expected = 2 * 1.96 * 100 * Math.sqrt((p * (1 - p)) / IMAGES);
  t.true(Math.abs(width(byImage) / expected - 1) < 0.1, `width ${width(byImage).toFixed(2)}, expected about ${expected.toFixed(2)}`);
  // One question per image: the units are the questions, and the interval is the question-level one draw for draw.
  const single = scores.filter((_, i) => i % PER_IMAGE === 0);
  t.deepEqual(bootstrapInterval(single.map((s) => s.score), RESAMPLES, single.map((s) => s.image)), bootstrapInterval(single.map((s) => s.score), RESAMPLES));
});

test('paired bootstrap: differences that come per image are resampled by image (√5 wider), and say how many images', (t) => {
  const base = imageCopies(0.6, 2);
  const candidate = imageCopies(0.6, 3);
  const byImage = pairedBootstrap(base, candidate, RESAMPLES);
  const byQuestion = pairedBootstrap(withoutImages(base), withoutImages(candidate), RESAMPLES);
  t.is(byImage.images, IMAGES);
  t.is(byQuestion.images, null);
  t.is(byImage.examples, IMAGES * PER_IMAGE);
  const ratio = width(byImage) / width(byQuestion);
  t.true(Math.abs(ratio / SQRT5 - 1) < 0.1, `width ratio ${ratio.toFixed(3)}`);
  // The image may come from either run (one recorded before runs carried images).
  t.deepEqual(pairedBootstrap(withoutImages(base), candidate, RESAMPLES), byImage);
});

test('seed groups: seeds × images; 5 copies per image widen the interval and the difference by the expected amount against questions', (t) => {
  const strip = (g: SeedScores[]) => g.map((run) => ({ seed: run.seed, scores: withoutImages(run.scores) }));
  // Seeds that agree on every image: no seed variation, so exactly the single-run ratio √5.
  const base = imageCopies(0.6, 10);
  const same = [0, 1, 2].map((seed) => ({ seed, scores: base }));
  const byImage = seedGroupInterval(same, RESAMPLES);
  t.like(byImage, { seeds: 3, examples: IMAGES * PER_IMAGE, images: IMAGES });
  t.is(seedGroupInterval(strip(same), RESAMPLES).images, null);
  let ratio = width(byImage) / width(seedGroupInterval(strip(same), RESAMPLES));
  t.true(Math.abs(ratio / SQRT5 - 1) < 0.1, `identical seeds: width ratio ${ratio.toFixed(3)}`);
  // Seeds 1 point apart (offsets −1, 0, +1) on top of the same images: the seed level adds the
  // variance of a mean of 3 draws from {−1, 0, 1} (2/9 points²) to both; the image level is
  // p(1−p)·100²/400 by image and a fifth of it by question. Widths go as the square roots.
  const offsets = [-1, 0, 1];
  const shifted = offsets.map((offset, seed) => ({ seed, scores: base.map((s) => ({ ...s, score: s.score + offset })) }));
  const p = byImage.estimate / 100;
  const imageVariance = (p * (1 - p) * 100 ** 2) / IMAGES;
  const seedVariance = 2 / 3 / 3;
  const expected = Math.sqrt((imageVariance + seedVariance) / (imageVariance / PER_IMAGE + seedVariance));
  ratio = width(seedGroupInterval(shifted, RESAMPLES)) / width(seedGroupInterval(strip(shifted), RESAMPLES));
  t.log(`seeds ±1 ratio ${ratio.toFixed(3)} expected ${expected.toFixed(3)}`);
  t.true(Math.abs(ratio / expected - 1) < 0.1, `seeds ±1: width ratio ${ratio.toFixed(3)}, expected about ${expected.toFixed(3)}`);
  // Differences: paired by seed, the same image draw on both sides.
  const candidate = [0, 1, 2].map((seed) => ({ seed, scores: imageCopies(0.55, 20) }));
  const difference = seedGroupDifference(same, candidate, RESAMPLES);
  t.like(difference, { images: IMAGES, pairedSeeds: true });
  ratio = width(difference) / width(seedGroupDifference(strip(same), strip(candidate), RESAMPLES));
  t.true(Math.abs(ratio / SQRT5 - 1) < 0.1, `difference: width ratio ${ratio.toFixed(3)}`);
  const unpaired = seedGroupDifference(same, candidate.map((run) => ({ ...run, seed: run.seed + 10 })), RESAMPLES);
  t.like(unpaired, { images: IMAGES, pairedSeeds: false });
  ratio = width(unpaired) / width(seedGroupDifference(strip(same), strip(candidate).map((run) => ({ ...run, seed: run.seed! + 10 })), RESAMPLES));
  t.true(Math.abs(ratio / SQRT5 - 1) < 0.1, `unpaired difference: width ratio ${ratio.toFixed(3)}`);
});

test('runs that put one example on different images did not score the same examples: refused, naming it', (t) => {
  const base = imageCopies(0.6, 2);
  const moved = base.map((s) => (s.id === 'q7' ? { ...s, image: 'img99' } : s));
  t.throws(() => pairedBootstrap(base, moved), { instanceOf: InputError, message: /"q7" is about image "img1" in base and image "img99" in candidate/ });
  t.throws(() => seedGroupInterval([{ seed: 0, scores: base }, { seed: 1, scores: moved }]), { instanceOf: InputError, message: /"q7" is about image "img1" in .*seed 0.* and image "img99" in .*seed 1/ });
});
