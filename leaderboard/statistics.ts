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
 * The unit resampled is the image where the per-example scores name one (ExampleScore.image):
 * a SynthScenes image carries 5 questions and a VQA v2 image about 5.4, and questions about
 * one image succeed or fail together far more often than independent draws would, so
 * resampling questions one by one makes intervals too narrow (the cluster bootstrap; Field &
 * Welsh 2007, "Bootstrapping clustered data", JRSS B 69(3):369–390). A resample draws as many
 * images as there are, with replacement, takes every example of each drawn image, and the
 * statistic is the mean over the examples drawn. An example without an image is its own unit,
 * so scores without images resample exactly as before, draw for draw; so do examples that are
 * all about one image (resamplingUnits says why).
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

/** What a bootstrap interval resamples: examples one by one, or images with all their examples (where the scores name them); and seeds for a seed group. */
export type IntervalOver = 'examples' | 'images' | 'seeds and examples' | 'seeds and images';

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

/**
 * The units a bootstrap resamples: examples that share an image form one, in the order their
 * first example comes; an example without an image is a unit alone.
 */
export interface ResamplingUnits {
  /** Example positions, unit after unit. */
  members: Int32Array;
  /** Unit u is members[starts[u] .. starts[u + 1]). */
  starts: Int32Array;
  /** Number of units. */
  count: number;
  /** Number of distinct images among them; null when no example named one (every unit is one example). */
  images: number | null;
}

/**
 * Resampling units of examples given each one's image (undefined: none). Where every example
 * is about one and the same image there is nothing to resample at the image level (every
 * resample would be that image: a zero-width interval, and a "significant" difference from
 * any nonzero one); the examples are resampled then, an interval given that image, and
 * `images` is null so reports say examples were resampled.
 */
export function resamplingUnits(images: readonly (string | undefined)[]): ResamplingUnits {
  const n = images.length;
  if (n > 1 && images[0] !== undefined && images.every((image) => image === images[0])) return resamplingUnits(new Array<undefined>(n));
  const unitOf = new Int32Array(n);
  const unitByImage = new Map<string, number>();
  const sizes: number[] = [];
  for (let i = 0; i < n; i++) {
    const image = images[i];
    let unit = image === undefined ? undefined : unitByImage.get(image);
    if (unit === undefined) {
      unit = sizes.length;
      sizes.push(0);
      if (image !== undefined) unitByImage.set(image, unit);
    }
    unitOf[i] = unit;
    sizes[unit]++;
  }
  const starts = new Int32Array(sizes.length + 1);
  for (let u = 0; u < sizes.length; u++) starts[u + 1] = starts[u] + sizes[u];
  const next = starts.slice(0, sizes.length);
  const members = new Int32Array(n);
  for (let i = 0; i < n; i++) members[next[unitOf[i]]++] = i;
  return { members, starts, count: sizes.length, images: unitByImage.size > 0 ? unitByImage.size : null };
}

/** One resample: as many units as there are, with replacement; returns the positions of every example of the drawn units. */
function drawExamples(units: ResamplingUnits, random: SeededRandom): Int32Array {
  const drawnUnits = new Int32Array(units.count);
  let length = 0;
  for (let k = 0; k < units.count; k++) {
    const unit = random.int(0, units.count - 1);
    drawnUnits[k] = unit;
    length += units.starts[unit + 1] - units.starts[unit];
  }
  const drawn = new Int32Array(length);
  let at = 0;
  for (const unit of drawnUnits) for (let j = units.starts[unit]; j < units.starts[unit + 1]; j++) drawn[at++] = units.members[j];
  return drawn;
}

/** Means of `resamples` bootstrap resamples of `values` (by unit), sorted ascending. */
function bootstrapMeans(values: ArrayLike<number>, units: ResamplingUnits, resamples: number, random: SeededRandom): Float64Array {
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const drawn = drawExamples(units, random);
    let sum = 0;
    for (let i = 0; i < drawn.length; i++) sum += values[drawn[i]];
    means[r] = sum / drawn.length;
  }
  return means.sort();
}

/**
 * Percentile bootstrap interval of the mean of `values`; with `images` (each value's image, or
 * undefined), the images are resampled, each with all its values.
 */
export function bootstrapInterval(values: readonly number[], options: BootstrapOptions = {}, images?: readonly (string | undefined)[]): Interval {
  const { resamples, seed, confidence } = resolveOptions(options);
  if (values.length === 0) throw new InputError('cannot bootstrap an empty list of scores');
  if (images && images.length !== values.length) throw new Error(`${images.length} images for ${values.length} scores`);
  const units = resamplingUnits(images ?? new Array<undefined>(values.length));
  const means = Array.from(bootstrapMeans(values, units, resamples, new SeededRandom(seed)));
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
  /** Number of images the examples belong to, resampled as units; null when the scores name no images (the examples are the units). */
  images: number | null;
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
export function matchExampleScores(
  base: readonly ExampleScore[],
  candidate: readonly ExampleScore[],
  labels = { base: 'base', candidate: 'candidate' },
): { ids: string[]; base: number[]; candidate: number[]; images: (string | undefined)[] } {
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
  // Each example's image, from whichever run recorded it (older records carry none); two runs
  // that put one example on different images did not score the same examples.
  const candidateImage = new Map(candidate.map((entry) => [entry.id, entry.image]));
  const images = base.map((entry) => {
    const other = candidateImage.get(entry.id);
    if (entry.image !== undefined && other !== undefined && entry.image !== other) {
      throw new InputError(`the two runs did not score the same examples: "${entry.id}" is about image "${entry.image}" in ${labels.base} and image "${other}" in ${labels.candidate}`);
    }
    return entry.image ?? other;
  });
  return { ids, base: base.map((entry) => entry.score), candidate: ids.map((id) => candidateById.get(id)!), images };
}

/** Paired bootstrap of mean(candidate − base) over matched examples, resampling their images where they name them. */
export function pairedBootstrap(base: readonly ExampleScore[], candidate: readonly ExampleScore[], options: BootstrapOptions = {}, labels?: { base: string; candidate: string }): PairedDifference {
  const { resamples, seed, confidence } = resolveOptions(options);
  const matched = matchExampleScores(base, candidate, labels);
  if (matched.ids.length === 0) throw new InputError('the two runs have no per-example scores to pair');
  // Sorting by id makes the resampled pairs independent of the order the runs were stored in.
  const order = matched.ids.map((id, index) => ({ id, index })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const differences = order.map(({ index }) => matched.candidate[index] - matched.base[index]);
  const units = resamplingUnits(order.map(({ index }) => matched.images[index]));
  const means = bootstrapMeans(differences, units, resamples, new SeededRandom(seed));
  return summariseDifference(mean(differences), means, differences.length, units.images, confidence);
}

/**
 * The interval and bootstrap p-values of a difference from its sorted resampled means: what
 * the paired (one run each) and the seed-group comparisons report alike.
 */
function summariseDifference(estimate: number, sortedMeans: ArrayLike<number> & Iterable<number>, examples: number, images: number | null, confidence: number): PairedDifference {
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
    images,
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
  /** Images resampled as units; null when the scores name none. */
  images: number | null;
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
 * Where the scores name images, the example level is the image level: a resample draws images
 * (each with all its examples) once, shared by every seed, and a seed's mean is over the
 * examples drawn; seeds × images, crossed.
 *
 * Draw order per resample: the example (image) indices, then the base's seed indices, then
 * (unpaired) the candidate's; a group of one seed draws no seed index, so one seed gives
 * exactly the single-run bootstrapInterval / pairedBootstrap of the same seed.
 */
export function seedGroupInterval(group: readonly SeedScores[], options: BootstrapOptions = {}, label = 'the seed group'): SeedGroupInterval {
  const { resamples, seed, confidence } = resolveOptions(options);
  const { matrix, examples, units } = alignSeedScores([{ label, group }]);
  const runs = matrix[0];
  const random = new SeededRandom(seed);
  const runSums = new Float64Array(runs.length);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const drawn = drawExamples(units, random);
    sumsAt(runs, drawn, runSums);
    means[r] = meanOverDrawnSeeds(runSums, drawn.length, drawSeeds(runs.length, random));
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
    images: units.images,
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
  const { matrix, examples, units } = alignSeedScores([
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
      const drawn = drawExamples(units, random);
      sumsAt(differences, drawn, sums);
      means[r] = meanOverDrawnSeeds(sums, drawn.length, drawSeeds(differences.length, random));
    }
  } else {
    const baseSums = new Float64Array(baseRuns.length);
    const candidateSums = new Float64Array(candidateRuns.length);
    for (let r = 0; r < resamples; r++) {
      const drawn = drawExamples(units, random);
      sumsAt(baseRuns, drawn, baseSums);
      sumsAt(candidateRuns, drawn, candidateSums);
      const baseMean = meanOverDrawnSeeds(baseSums, drawn.length, drawSeeds(baseRuns.length, random));
      means[r] = meanOverDrawnSeeds(candidateSums, drawn.length, drawSeeds(candidateRuns.length, random)) - baseMean;
    }
  }
  means.sort();
  const estimate = pairing
    ? mean(baseRuns.map((run, k) => mean(run.map((value, i) => candidateRuns[k][i] - value))))
    : mean(candidateRuns.map((run) => mean(run))) - mean(baseRuns.map((run) => mean(run)));
  return {
    ...summariseDifference(estimate, means, examples, units.images, confidence),
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
 * sorted, so a resample does not depend on the order the runs were stored in, and the
 * resampling units of that order (each example's image from any run that recorded it).
 */
function alignSeedScores(groups: readonly { label: string; group: readonly SeedScores[] }[]): { matrix: Float64Array[][]; examples: number; units: ResamplingUnits } {
  const first = groups.find((g) => g.group.length > 0);
  for (const { label, group } of groups) if (group.length === 0) throw new InputError(`${label} has no runs`);
  const reference = first!.group[0].scores;
  if (reference.length === 0) throw new InputError(`${first!.label} has no per-example scores`);
  const ids = reference.map((entry) => entry.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const referenceLabel = `${first!.label} (seed ${first!.group[0].seed ?? 'unknown'})`;
  const imageById = new Map<string, string>();
  const imageSource = new Map<string, string>();
  const matrix = groups.map(({ label, group }) =>
    group.map((run) => {
      const runLabel = `${label} (seed ${run.seed ?? 'unknown'})`;
      const matched = matchExampleScores(reference, run.scores, { base: referenceLabel, candidate: runLabel });
      for (const entry of run.scores) {
        if (entry.image === undefined) continue;
        const known = imageById.get(entry.id);
        if (known === undefined) {
          imageById.set(entry.id, entry.image);
          imageSource.set(entry.id, runLabel);
        } else if (known !== entry.image) {
          throw new InputError(`the runs did not score the same examples: "${entry.id}" is about image "${known}" in ${imageSource.get(entry.id)} and image "${entry.image}" in ${runLabel}`);
        }
      }
      const byId = new Map(matched.ids.map((id, index) => [id, matched.candidate[index]]));
      return Float64Array.from(ids, (id) => byId.get(id)!);
    }),
  );
  return { matrix, examples: ids.length, units: resamplingUnits(ids.map((id) => imageById.get(id))) };
}

function sumsAt(runs: readonly Float64Array[], drawn: Int32Array, into: Float64Array): void {
  for (let k = 0; k < runs.length; k++) {
    const run = runs[k];
    let sum = 0;
    for (let i = 0; i < drawn.length; i++) sum += run[drawn[i]];
    into[k] = sum;
  }
}

/** Seed indices drawn with replacement; one seed draws nothing (so one seed is the single-run bootstrap). */
function drawSeeds(seeds: number, random: SeededRandom): Int32Array {
  if (seeds === 1) return Int32Array.of(0);
  const drawn = new Int32Array(seeds);
  for (let k = 0; k < seeds; k++) drawn[k] = random.int(0, seeds - 1);
  return drawn;
}

/** `sums` are over the `examples` examples drawn (as many as there are, or more or fewer where images differ in size). */
function meanOverDrawnSeeds(sums: Float64Array, examples: number, drawn: Int32Array): number {
  let total = 0;
  for (const k of drawn) total += sums[k] / examples;
  return total / drawn.length;
}
