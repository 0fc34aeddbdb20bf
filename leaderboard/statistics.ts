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

export function mean(values: readonly number[]): number {
  let sum = 0;
  for (const value of values) sum += value;
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
  const means = Array.from(bootstrapMeans(differences, resamples, new SeededRandom(seed)));
  let atLeastZero = 0;
  let atMostZero = 0;
  for (const value of means) {
    if (value >= 0) atLeastZero++;
    if (value <= 0) atMostZero++;
  }
  const alpha = 1 - confidence;
  const pWorse = atLeastZero / resamples;
  const pBetter = atMostZero / resamples;
  return {
    estimate: mean(differences),
    lower: quantileOfSorted(means, alpha / 2),
    upper: quantileOfSorted(means, 1 - alpha / 2),
    confidence,
    resamples,
    examples: differences.length,
    pWorse,
    pBetter,
    pTwoSided: Math.min(1, 2 * Math.min(pWorse, pBetter)),
  };
}
