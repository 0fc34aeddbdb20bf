import { InputError, listSome } from '../core/errors.ts';
import { SeededRandom } from '../core/random.ts';
import type { ExampleScore } from '../core/types.ts';

/**
 * How sure a leaderboard number is.
 *
 * - One run: a percentile bootstrap interval of the mean per-example score (resample the
 *   examples with replacement, take the mean, repeat; the interval is the α/2 and 1−α/2
 *   quantiles of those means, linear interpolation between order statistics).
 * - Several seeds of one configuration: mean ± sample standard deviation (n − 1) over seeds.
 * - Two runs on the same examples: a paired bootstrap of the mean difference
 *   (candidate − base), resampling example ids so both runs see the same resample.
 *
 * Every bootstrap draws from a SeededRandom, so the same seed gives the same interval.
 */
export const DEFAULT_RESAMPLES = 1000;
export const DEFAULT_CONFIDENCE = 0.95;
export const DEFAULT_BOOTSTRAP_SEED = 0;

export interface BootstrapOptions {
  resamples?: number;
  seed?: number;
  /** Two-sided coverage, e.g. 0.95. */
  confidence?: number;
}

export interface Interval {
  /** The statistic on the original sample (the mean). */
  estimate: number;
  lower: number;
  upper: number;
  confidence: number;
  resamples: number;
}

function resolveOptions({ resamples = DEFAULT_RESAMPLES, seed = DEFAULT_BOOTSTRAP_SEED, confidence = DEFAULT_CONFIDENCE }: BootstrapOptions) {
  if (!Number.isInteger(resamples) || resamples < 1) throw new InputError(`expected a positive whole number of bootstrap resamples, got ${resamples}`);
  if (!Number.isInteger(seed)) throw new InputError(`expected a whole-number bootstrap seed, got ${seed}`);
  if (!(confidence > 0 && confidence < 1)) throw new InputError(`expected a confidence level between 0 and 1, got ${confidence}`);
  return { resamples, seed, confidence };
}

export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

/** Quantile of sorted values with linear interpolation between order statistics (R's type 7). */
export function quantileOfSorted(sorted: readonly number[], probability: number): number {
  if (sorted.length === 0) throw new Error('quantile of an empty list');
  const position = (sorted.length - 1) * probability;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
}

/** Means of `resamples` bootstrap resamples of `values`, sorted ascending. */
function bootstrapMeans(values: readonly number[], resamples: number, random: SeededRandom): Float64Array {
  const n = values.length;
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[random.int(0, n - 1)];
    means[r] = sum / n;
  }
  return means.sort();
}

/** Percentile bootstrap interval of the mean of `values`. */
export function bootstrapInterval(values: readonly number[], options: BootstrapOptions = {}): Interval {
  const { resamples, seed, confidence } = resolveOptions(options);
  if (values.length === 0) throw new InputError('cannot bootstrap an empty list of scores');
  const means = Array.from(bootstrapMeans(values, resamples, new SeededRandom(seed)));
  const alpha = 1 - confidence;
  return {
    estimate: mean(values),
    lower: quantileOfSorted(means, alpha / 2),
    upper: quantileOfSorted(means, 1 - alpha / 2),
    confidence,
    resamples,
  };
}

export interface SeedAggregate {
  mean: number;
  /** Sample standard deviation (n − 1); null for a single seed. */
  std: number | null;
  n: number;
}

export function aggregateOverSeeds(values: readonly number[]): SeedAggregate {
  if (values.length === 0) throw new Error('aggregate over no seeds');
  const average = mean(values);
  if (values.length < 2) return { mean: average, std: null, n: values.length };
  let squares = 0;
  for (const value of values) squares += (value - average) ** 2;
  return { mean: average, std: Math.sqrt(squares / (values.length - 1)), n: values.length };
}

export interface PairedDifference extends Interval {
  /** Number of matched examples. */
  examples: number;
  /** Share of resamples whose mean difference is ≥ 0: the one-sided bootstrap p-value for "the candidate is worse". */
  pWorse: number;
  /** Share of resamples whose mean difference is ≤ 0: the one-sided p-value for "the candidate is better". */
  pBetter: number;
  /** Two-sided p-value for "the runs differ": 2 · min(pWorse, pBetter), capped at 1. */
  pTwoSided: number;
}

/**
 * Pairs two runs' per-example scores by example id. Both runs must have scored exactly the
 * same examples: a difference over a subset would be a silently different number.
 */
export function matchExampleScores(base: readonly ExampleScore[], candidate: readonly ExampleScore[], labels = { base: 'base', candidate: 'candidate' }): { ids: string[]; base: number[]; candidate: number[] } {
  const candidateById = new Map(candidate.map((entry) => [entry.id, entry.score]));
  const baseIds = new Set(base.map((entry) => entry.id));
  const onlyBase = base.filter((entry) => !candidateById.has(entry.id)).map((entry) => entry.id);
  const onlyCandidate = candidate.filter((entry) => !baseIds.has(entry.id)).map((entry) => entry.id);
  if (onlyBase.length || onlyCandidate.length) {
    const parts: string[] = [];
    if (onlyBase.length) parts.push(`${listSome(onlyBase)} only in ${labels.base}`);
    if (onlyCandidate.length) parts.push(`${listSome(onlyCandidate)} only in ${labels.candidate}`);
    throw new InputError(`the two runs did not score the same examples: ${parts.join('; ')}`);
  }
  const ids = base.map((entry) => entry.id);
  return { ids, base: base.map((entry) => entry.score), candidate: ids.map((id) => candidateById.get(id)!) };
}

/** Paired bootstrap of mean(candidate − base) over matched examples. */
export function pairedBootstrap(base: readonly ExampleScore[], candidate: readonly ExampleScore[], options: BootstrapOptions = {}, labels?: { base: string; candidate: string }): PairedDifference {
  const { resamples, seed, confidence } = resolveOptions(options);
  const matched = matchExampleScores(base, candidate, labels);
  if (matched.ids.length === 0) throw new InputError('the two runs have no per-example scores to pair');
  // Sorting by id makes the resampled pairs independent of the order the runs were stored in.
  const order = matched.ids.map((id, index) => ({ id, index })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const differences = order.map(({ index }) => matched.candidate[index] - matched.base[index]);
  const means = bootstrapMeans(differences, resamples, new SeededRandom(seed));
  return summariseDifference(mean(differences), means, differences.length, confidence);
}

/**
 * The interval and bootstrap p-values of a difference from its sorted resampled means: what
 * the paired (one run each) and the seed-group comparisons report alike.
 */
function summariseDifference(estimate: number, sortedMeans: ArrayLike<number> & Iterable<number>, examples: number, confidence: number): PairedDifference {
  const resamples = sortedMeans.length;
  let atLeastZero = 0;
  let atMostZero = 0;
  for (const value of sortedMeans) {
    if (value >= 0) atLeastZero++;
    if (value <= 0) atMostZero++;
  }
  const alpha = 1 - confidence;
  const sorted = Array.from(sortedMeans);
  const pWorse = atLeastZero / resamples;
  const pBetter = atMostZero / resamples;
  return {
    estimate,
    lower: quantileOfSorted(sorted, alpha / 2),
    upper: quantileOfSorted(sorted, 1 - alpha / 2),
    confidence,
    resamples,
    examples,
    pWorse,
    pBetter,
    pTwoSided: Math.min(1, 2 * Math.min(pWorse, pBetter)),
  };
}

/** One seed of a seed group: its seed and its per-example scores of the primary metric. */
export interface SeedScores {
  seed: number | null;
  scores: readonly ExampleScore[];
}

export interface SeedGroupInterval extends Interval {
  seeds: number;
  examples: number;
}

export interface SeedGroupDifference extends PairedDifference {
  baseSeeds: number;
  candidateSeeds: number;
  /** True when both groups ran the same seeds, so seed draws were paired (same seed on both sides). */
  pairedSeeds: boolean;
}

/**
 * Intervals over seeds AND examples: the two-way ("pigeonhole") bootstrap of crossed data
 * (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2):386–411). Each resample draws
 * the examples once, with replacement, and the seeds with replacement, and takes the mean over
 * the drawn seeds of each seed's mean over the drawn examples.
 *
 * Why this design: a benchmark number varies with the training seed and with which examples
 * the test set happens to hold, and ignoring either makes intervals too narrow and comparisons
 * overconfident (Bouthillier et al. 2021, "Accounting for variance in machine learning
 * benchmarks", MLSys). Every seed is scored on the same examples, so seeds and examples are
 * crossed, not nested: a nested (hierarchical) bootstrap that resamples examples separately
 * within each seed would pretend each seed saw its own test set and let the test-set variation
 * average away over seeds. Drawing the examples once per resample keeps it shared, as it is.
 *
 * Differences are paired wherever the data match: the same example draw serves both groups
 * (same test set), and when both groups ran exactly the same seeds a seed draw picks the same
 * seed on both sides (same initialisation and data order). With 3 seeds the seed level has few
 * distinct resamples, so the interval is a coarse description, not an exact test.
 *
 * Draw order per resample: the example indices, then the base's seed indices, then (unpaired)
 * the candidate's; a group of one seed draws no seed index, so one seed gives exactly the
 * single-run bootstrapInterval / pairedBootstrap of the same seed.
 */
export function seedGroupInterval(group: readonly SeedScores[], options: BootstrapOptions = {}, label = 'the seed group'): SeedGroupInterval {
  const { resamples, seed, confidence } = resolveOptions(options);
  const { matrix, examples } = alignSeedScores([{ label, group }]);
  const runs = matrix[0];
  const random = new SeededRandom(seed);
  const runSums = new Float64Array(runs.length);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    resampledSums(runs, examples, random, runSums);
    means[r] = meanOverDrawnSeeds(runSums, examples, drawSeeds(runs.length, random));
  }
  means.sort();
  const alpha = 1 - confidence;
  const sorted = Array.from(means);
  return {
    estimate: mean(runs.map((run) => mean(run))),
    lower: quantileOfSorted(sorted, alpha / 2),
    upper: quantileOfSorted(sorted, 1 - alpha / 2),
    confidence,
    resamples,
    seeds: runs.length,
    examples,
  };
}

/** Two-way bootstrap of (mean over the candidate's seeds) − (mean over the base's seeds); see seedGroupInterval. */
export function seedGroupDifference(
  base: readonly SeedScores[],
  candidate: readonly SeedScores[],
  options: BootstrapOptions = {},
  labels = { base: 'base', candidate: 'candidate' },
): SeedGroupDifference {
  const { resamples, seed, confidence } = resolveOptions(options);
  const pairing = seedPairing(base, candidate);
  // Paired seeds are put in the same order on both sides, so seed index k is the same seed.
  const orderedCandidate = pairing ? pairing.map((index) => candidate[index]) : candidate;
  const { matrix, examples } = alignSeedScores([
    { label: labels.base, group: base },
    { label: labels.candidate, group: orderedCandidate },
  ]);
  const [baseRuns, candidateRuns] = matrix;
  const random = new SeededRandom(seed);
  const means = new Float64Array(resamples);
  if (pairing) {
    // Per seed, the per-example differences; their resampled mean is the paired statistic.
    const differences = baseRuns.map((run, k) => run.map((value, i) => candidateRuns[k][i] - value));
    const sums = new Float64Array(differences.length);
    for (let r = 0; r < resamples; r++) {
      resampledSums(differences, examples, random, sums);
      means[r] = meanOverDrawnSeeds(sums, examples, drawSeeds(differences.length, random));
    }
  } else {
    const baseSums = new Float64Array(baseRuns.length);
    const candidateSums = new Float64Array(candidateRuns.length);
    for (let r = 0; r < resamples; r++) {
      const drawn = drawExamples(examples, random);
      sumsAt(baseRuns, drawn, baseSums);
      sumsAt(candidateRuns, drawn, candidateSums);
      const baseMean = meanOverDrawnSeeds(baseSums, examples, drawSeeds(baseRuns.length, random));
      means[r] = meanOverDrawnSeeds(candidateSums, examples, drawSeeds(candidateRuns.length, random)) - baseMean;
    }
  }
  means.sort();
  const estimate = pairing
    ? mean(baseRuns.map((run, k) => mean(run.map((value, i) => candidateRuns[k][i] - value))))
    : mean(candidateRuns.map((run) => mean(run))) - mean(baseRuns.map((run) => mean(run)));
  return {
    ...summariseDifference(estimate, means, examples, confidence),
    baseSeeds: baseRuns.length,
    candidateSeeds: candidateRuns.length,
    pairedSeeds: pairing !== null,
  };
}

/** For each base seed, the index of the candidate run with the same seed; null unless both ran exactly the same distinct, known seeds. */
function seedPairing(base: readonly SeedScores[], candidate: readonly SeedScores[]): number[] | null {
  if (base.length !== candidate.length) return null;
  const candidateIndex = new Map<number, number>();
  for (const [index, run] of candidate.entries()) {
    if (run.seed === null || candidateIndex.has(run.seed)) return null;
    candidateIndex.set(run.seed, index);
  }
  const pairing: number[] = [];
  const seen = new Set<number>();
  for (const run of base) {
    if (run.seed === null || seen.has(run.seed) || !candidateIndex.has(run.seed)) return null;
    seen.add(run.seed);
    pairing.push(candidateIndex.get(run.seed)!);
  }
  return pairing;
}

/**
 * Every run of every group must have scored exactly the same examples (else the groups' means
 * describe different test sets). Returns each run's scores in one shared example order, ids
 * sorted, so a resample does not depend on the order the runs were stored in.
 */
function alignSeedScores(groups: readonly { label: string; group: readonly SeedScores[] }[]): { matrix: Float64Array[][]; examples: number } {
  const first = groups.find((g) => g.group.length > 0);
  for (const { label, group } of groups) if (group.length === 0) throw new InputError(`${label} has no runs`);
  const reference = first!.group[0].scores;
  if (reference.length === 0) throw new InputError(`${first!.label} has no per-example scores`);
  const ids = reference.map((entry) => entry.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const referenceLabel = `${first!.label} (seed ${first!.group[0].seed ?? 'unknown'})`;
  const matrix = groups.map(({ label, group }) =>
    group.map((run) => {
      const matched = matchExampleScores(reference, run.scores, { base: referenceLabel, candidate: `${label} (seed ${run.seed ?? 'unknown'})` });
      const byId = new Map(matched.ids.map((id, index) => [id, matched.candidate[index]]));
      return Float64Array.from(ids, (id) => byId.get(id)!);
    }),
  );
  return { matrix, examples: ids.length };
}

function drawExamples(examples: number, random: SeededRandom): Int32Array {
  const drawn = new Int32Array(examples);
  for (let i = 0; i < examples; i++) drawn[i] = random.int(0, examples - 1);
  return drawn;
}

function sumsAt(runs: readonly Float64Array[], drawn: Int32Array, into: Float64Array): void {
  for (let k = 0; k < runs.length; k++) {
    const run = runs[k];
    let sum = 0;
    for (let i = 0; i < drawn.length; i++) sum += run[drawn[i]];
    into[k] = sum;
  }
}

function resampledSums(runs: readonly Float64Array[], examples: number, random: SeededRandom, into: Float64Array): void {
  sumsAt(runs, drawExamples(examples, random), into);
}

/** Seed indices drawn with replacement; one seed draws nothing (so one seed is the single-run bootstrap). */
function drawSeeds(seeds: number, random: SeededRandom): Int32Array {
  if (seeds === 1) return Int32Array.of(0);
  const drawn = new Int32Array(seeds);
  for (let k = 0; k < seeds; k++) drawn[k] = random.int(0, seeds - 1);
  return drawn;
}

function meanOverDrawnSeeds(sums: Float64Array, examples: number, drawn: Int32Array): number {
  let total = 0;
  for (const k of drawn) total += sums[k] / examples;
  return total / drawn.length;
}
