import type { ExampleScore } from '../core/types.ts';
import { comparabilityKey, comparabilityKeyString, seedGroupKey, withoutRunSeed, type ComparabilityKey, type RunRecord, type TrainingCurvePoint } from './run-record.ts';
import { aggregateOverSeeds, bootstrapInterval, DEFAULT_BOOTSTRAP_SEED, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, seedGroupInterval, type Interval, type IntervalOver } from './statistics.ts';
import type { StoredRun } from './store.ts';
import { SeededRandom } from '../core/random.ts';
import { InputError } from '../core/errors.ts';

/**
 * The leaderboard as data, before any formatting: one section per comparability key (and
 * primary metric), rows ranked only inside their section, seed replicates folded into one
 * row. Every output format renders this same structure, so they cannot disagree.
 */
export interface BoardOptions {
  resamples?: number;
  /** Seed of the bootstrap; each run's interval uses a sub-stream named by its id, so rows do not depend on each other. */
  seed?: number;
  confidence?: number;
}

export interface MetricSummary {
  mean: number;
  /** Sample std over seeds; null for one seed. */
  std: number | null;
}

export interface BoardRow {
  rank: number;
  /** The run's name, or for a seed group the name its runs share (their common prefix), else the first name. */
  name: string;
  runIds: string[];
  runNames: string[];
  model: string;
  modelFingerprint: string | null;
  method: string;
  hyperparameters: Record<string, unknown>;
  backend: string | null;
  /** What the row's runs were computed with, per field the distinct values among them (null = unknown); scores can drift with these across machines. */
  execution: RowExecution;
  seeds: (number | null)[];
  /** Examples scored per run (0 when the run has no per-example scores). */
  examples: number;
  primary: MetricSummary & {
    n: number;
    /**
     * Bootstrap interval of the mean: over examples for a single run, over seeds and examples
     * (statistics.ts, seedGroupInterval) for a seed group whose every run has per-example
     * scores; null otherwise. Where the scores name their images, images are resampled (each
     * with all its examples) instead of single examples.
     */
    interval: Interval | null;
    /** What the interval resamples. */
    intervalOver: IntervalOver | null;
  };
  metrics: Record<string, MetricSummary>;
  /** Training curves of the group's runs (those that have one). */
  curves: { runId: string; runName: string; seed: number | null; points: TrainingCurvePoint[] }[];
}

export interface RowExecution {
  backend: (string | null)[];
  device: (string | null)[];
  dtype: (string | null)[];
  batchSize: (number | null)[];
  shardCount: (number | null)[];
}

export interface BoardSection {
  key: ComparabilityKey;
  metric: string;
  primaryMetric: string;
  /** Union of the metric names of the section's runs, in first-seen order. */
  metricNames: string[];
  rows: BoardRow[];
}

export interface Board {
  runCount: number;
  resamples: number;
  bootstrapSeed: number;
  confidence: number;
  sections: BoardSection[];
}

/** How the board gets a run's per-example scores: from the store (asynchronous) or from memory. */
export type ScoresOf = (runId: string) => ExampleScore[] | Promise<ExampleScore[]>;

export async function buildBoard(runs: readonly StoredRun[], scoresOf: ScoresOf, options: BoardOptions = {}): Promise<Board> {
  const resamples = options.resamples ?? DEFAULT_RESAMPLES;
  const bootstrapSeed = options.seed ?? DEFAULT_BOOTSTRAP_SEED;
  const confidence = options.confidence ?? DEFAULT_CONFIDENCE;
  const sectionsByKey = new Map<string, StoredRun[]>();
  for (const run of runs) {
    const key = JSON.stringify([comparabilityKeyString(comparabilityKey(run.record)), run.record.metric, run.record.primaryMetric]);
    const list = sectionsByKey.get(key) ?? [];
    list.push(run);
    sectionsByKey.set(key, list);
  }
  const sections: BoardSection[] = [];
  for (const sectionRuns of sectionsByKey.values()) sections.push(await buildSection(sectionRuns, scoresOf, { resamples, bootstrapSeed, confidence }));
  sections.sort((a, b) => compareText(a.key.task, b.key.task) || compareText(a.key.split, b.key.split) || compareText(a.key.taskVersion, b.key.taskVersion) || compareText(a.key.metricVersion, b.key.metricVersion) || compareText(a.key.splitFingerprint, b.key.splitFingerprint) || compareText(a.primaryMetric, b.primaryMetric));
  return { runCount: runs.length, resamples, bootstrapSeed, confidence, sections };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function buildSection(runs: StoredRun[], scoresOf: ScoresOf, options: { resamples: number; bootstrapSeed: number; confidence: number }): Promise<BoardSection> {
  const first = runs[0].record;
  const metricNames: string[] = [];
  for (const { record } of runs) for (const name of Object.keys(record.metrics)) if (!metricNames.includes(name)) metricNames.push(name);
  const groups = new Map<string, StoredRun[]>();
  for (const run of runs) {
    const key = seedGroupKey(run.record);
    const list = groups.get(key) ?? [];
    list.push(run);
    groups.set(key, list);
  }
  const rows: BoardRow[] = [];
  for (const group of groups.values()) rows.push(await buildRow(group, first.primaryMetric, metricNames, scoresOf, options));
  rows.sort((a, b) => b.primary.mean - a.primary.mean || compareText(a.name, b.name));
  // Competition ranking: equal means share a rank, the next rank skips ("1, 2, 2, 4").
  rows.forEach((row, index) => {
    row.rank = index > 0 && row.primary.mean === rows[index - 1].primary.mean ? rows[index - 1].rank : index + 1;
  });
  return { key: comparabilityKey(first), metric: first.metric, primaryMetric: first.primaryMetric, metricNames, rows };
}

async function buildRow(group: StoredRun[], primaryMetric: string, metricNames: string[], scoresOf: ScoresOf, options: { resamples: number; bootstrapSeed: number; confidence: number }): Promise<BoardRow> {
  const records = group.map((run) => run.record).sort((a, b) => (a.seed ?? 0) - (b.seed ?? 0) || compareText(a.createdAt, b.createdAt));
  const first = records[0];
  const primary = aggregateOverSeeds(records.map((record) => record.metrics[primaryMetric]));
  let interval: Interval | null = null;
  let intervalOver: BoardRow['primary']['intervalOver'] = null;
  const bootstrap = { resamples: options.resamples, seed: new SeededRandom(options.bootstrapSeed).fork(records.map((record) => record.id).join(' ')).seed, confidence: options.confidence };
  if (group.length === 1 && group[0].exampleCount > 0) {
    const scores = await scoresOf(first.id);
    const images = scores.map((entry) => entry.image);
    interval = bootstrapInterval(scores.map((entry) => entry.score), bootstrap, images);
    intervalOver = images.some((image) => image !== undefined) ? 'images' : 'examples';
  } else if (group.length > 1 && group.every((run) => run.exampleCount > 0)) {
    const seeds = [];
    for (const record of records) seeds.push({ seed: record.seed, scores: await scoresOf(record.id) });
    try {
      const { seeds: _seeds, examples: _examples, images, ...groupInterval } = seedGroupInterval(seeds, bootstrap, `seed group "${sharedName(records.map((record) => record.name))}"`);
      interval = groupInterval;
      intervalOver = images === null ? 'seeds and examples' : 'seeds and images';
    } catch (error) {
      // Seeds that scored different examples have no common interval; the row keeps mean ± std.
      if (!(error instanceof InputError)) throw error;
    }
  }
  const metrics: Record<string, MetricSummary> = {};
  for (const name of metricNames) {
    const values = records.map((record) => record.metrics[name]).filter((value): value is number => value !== undefined);
    // A metric some seeds lack is left out rather than averaged over fewer seeds than the row claims.
    if (values.length === records.length) {
      const { mean, std } = aggregateOverSeeds(values);
      metrics[name] = { mean, std };
    }
  }
  return {
    rank: 0,
    name: sharedName(records.map((record) => record.name)),
    runIds: records.map((record) => record.id),
    runNames: records.map((record) => record.name),
    model: first.model.name,
    modelFingerprint: first.model.fingerprint,
    method: first.method.spec,
    // A seed group's settings are what its runs share: without the first run's seed.
    hyperparameters: records.length > 1 ? withoutRunSeed(first.method.hyperparameters) : (first.method.hyperparameters as Record<string, unknown>),
    backend: first.backend,
    execution: {
      backend: distinct(records.map((record) => record.backend)),
      device: distinct(records.map((record) => record.execution?.device ?? null)),
      dtype: distinct(records.map((record) => record.execution?.dtype ?? null)),
      batchSize: distinct(records.map((record) => record.execution?.batchSize ?? null)),
      shardCount: distinct(records.map((record) => record.execution?.shardCount ?? null)),
    },
    seeds: records.map((record) => record.seed),
    examples: Math.max(...group.map((run) => run.exampleCount)),
    primary: { ...primary, interval, intervalOver },
    metrics,
    curves: records.filter((record) => record.curve && record.curve.length > 0).map((record) => ({ runId: record.id, runName: record.name, seed: record.seed, points: record.curve! })),
  };
}

function distinct<T>(values: T[]): T[] {
  return [...new Set(values)];
}

/** "villa-seed1", "villa-seed2" → "villa": the common prefix without its trailing separators and seed marker. */
function sharedName(names: string[]): string {
  if (names.length === 1) return names[0];
  let prefix = names[0];
  for (const name of names) while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
  const trimmed = prefix.replace(/(?:[-_ .]+(?:seed|s)?|[-_ .]*seed)$/i, '');
  return trimmed.length > 0 ? trimmed : names[0];
}

/** The whisker of a row: its bootstrap interval, or mean ± std over seeds, or nothing. */
export function rowSpread(row: BoardRow): { low: number; high: number; kind: 'interval' | 'std' } | null {
  if (row.primary.interval) return { low: row.primary.interval.lower, high: row.primary.interval.upper, kind: 'interval' };
  if (row.primary.std !== null) return { low: row.primary.mean - row.primary.std, high: row.primary.mean + row.primary.std, kind: 'std' };
  return null;
}
