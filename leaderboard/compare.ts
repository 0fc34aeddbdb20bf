import { InputError } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import { comparabilityDifferences, executionDifferences, type FieldDifference, type RunRecord } from './run-record.ts';
import { mean, pairedBootstrap, seedGroupDifference, type BootstrapOptions, type IntervalOver, type PairedDifference, type SeedGroupDifference } from './statistics.ts';

/**
 * The regression gate a CI pipeline runs.
 *
 * With per-example scores for the compared metric (the primary metric), the gate looks at
 * the paired-bootstrap interval of the mean difference d = candidate − base (in metric
 * points) and calls a regression exactly when the interval's upper bound is below −maxDrop:
 * the data say, at the chosen confidence, that the candidate lost more than the tolerance.
 * A drop whose interval still reaches above −maxDrop is noise or within tolerance: pass.
 * With maxDrop = 0 this is a one-sided test at level (1 − confidence) / 2 (2.5% for 95%).
 *
 * Without per-example scores (a metric other than the primary one, or a run recorded
 * without them) there is no interval; the gate then compares the point values and calls
 * a regression when d < −maxDrop, and says so in its output.
 */
export const EXIT_PASS = 0;
export const EXIT_REGRESSION = 1;

export interface ComparedRun {
  record: RunRecord;
  /** Per-example scores of the primary metric; null when the run has none. */
  perExample: ExampleScore[] | null;
}

/** The runs of one seed group (one configuration, several seeds), as `compare` resolves a name or `--seeds`. */
export interface ComparedGroup {
  name: string;
  runs: ComparedRun[];
}

export interface CompareOptions extends BootstrapOptions {
  /** Metric to compare; defaults to the base run's primary metric. */
  metric?: string;
  /** Tolerated drop in metric points (≥ 0). */
  maxDrop?: number;
}

export interface ComparedSide {
  /** The run id; for a seed group, the id of its first run (all are in runIds). */
  id: string;
  name: string;
  /** The metric; for a seed group, its mean over seeds. */
  value: number;
  runIds: string[];
  seeds: (number | null)[];
}

export interface Comparison {
  base: ComparedSide;
  candidate: ComparedSide;
  metric: string;
  /** candidate − base, in metric points. */
  difference: number;
  maxDrop: number;
  /** Paired bootstrap over examples (two runs) or two-way bootstrap over seeds and examples (seed groups). */
  paired: PairedDifference | SeedGroupDifference | null;
  /** What the interval resamples, when there is one. */
  intervalOver: IntervalOver | null;
  /** Why there is no interval, when there is none. */
  pointOnlyReason: string | null;
  /**
   * Execution settings that differ between the two sides (backend, device, dtype, batch size,
   * shard count): scores can drift with them, so they are named, but they do not stop the gate.
   */
  executionDifferences: FieldDifference[];
  regression: boolean;
  exitCode: typeof EXIT_PASS | typeof EXIT_REGRESSION;
  verdict: string;
}

export function compareRuns(base: ComparedRun, candidate: ComparedRun, options: CompareOptions = {}): Comparison {
  return compareGroups({ name: base.record.name, runs: [base] }, { name: candidate.record.name, runs: [candidate] }, options);
}

/**
 * The gate on seed groups: d = (mean over the candidate's seeds) − (mean over the base's seeds),
 * with the interval of the two-way bootstrap over seeds and examples (statistics.ts,
 * seedGroupDifference), and the same verdict rule as for two runs. Groups of one run each are
 * exactly `compareRuns`: the paired bootstrap over examples.
 */
export function compareSeedGroups(base: ComparedGroup, candidate: ComparedGroup, options: CompareOptions = {}): Comparison {
  return compareGroups(base, candidate, options);
}

function compareGroups(base: ComparedGroup, candidate: ComparedGroup, options: CompareOptions): Comparison {
  const maxDrop = options.maxDrop ?? 0;
  if (!(Number.isFinite(maxDrop) && maxDrop >= 0)) throw new InputError(`expected a tolerance of 0 or more metric points, got ${maxDrop}`, { field: '--max-drop' });
  for (const group of [base, candidate]) if (group.runs.length === 0) throw new InputError(`"${group.name}" resolves to no runs`);
  const baseRecord = base.runs[0].record;
  const candidateRecord = candidate.runs[0].record;
  // A group's own runs share one seed group key, hence one comparability key; checked anyway, as a group may be built by hand.
  for (const group of [base, candidate]) {
    for (const run of group.runs.slice(1)) {
      const inside = comparabilityDifferences(group.runs[0].record, run.record);
      if (inside.length > 0) throw new InputError(`the runs of "${group.name}" are not comparable with each other: ${describeDifferences(inside)}`);
    }
  }
  const differences = comparabilityDifferences(baseRecord, candidateRecord);
  if (differences.length > 0) {
    throw new InputError(`runs "${base.name}" and "${candidate.name}" are not comparable: ${describeDifferences(differences)}`);
  }
  const metric = options.metric ?? baseRecord.primaryMetric;
  for (const [role, group] of [['base', base], ['candidate', candidate]] as const) {
    for (const run of group.runs) {
      if (!(metric in run.record.metrics)) {
        throw new InputError(`the ${role} run has no metric ${JSON.stringify(metric)} (it has: ${Object.keys(run.record.metrics).join(', ')})`, { record: run.record.id, field: 'metrics' });
      }
    }
  }
  const valueOf = (group: ComparedGroup) => mean(group.runs.map((run) => run.record.metrics[metric]));
  const baseValue = valueOf(base);
  const candidateValue = valueOf(candidate);
  const difference = candidateValue - baseValue;
  const seedGroups = base.runs.length > 1 || candidate.runs.length > 1;

  let pointOnlyReason: string | null = null;
  if (metric !== baseRecord.primaryMetric || metric !== candidateRecord.primaryMetric) pointOnlyReason = `per-example scores exist only for the primary metric (${baseRecord.primaryMetric})`;
  else if (base.runs.some((run) => !run.perExample?.length)) pointOnlyReason = seedGroups ? 'a run of the base group has no per-example scores' : 'the base run has no per-example scores';
  else if (candidate.runs.some((run) => !run.perExample?.length)) pointOnlyReason = seedGroups ? 'a run of the candidate group has no per-example scores' : 'the candidate run has no per-example scores';

  const labels = { base: `${seedGroups ? 'base group' : 'base run'} "${base.name}"`, candidate: `${seedGroups ? 'candidate group' : 'candidate run'} "${candidate.name}"` };
  let paired: PairedDifference | SeedGroupDifference | null = null;
  if (pointOnlyReason === null) {
    paired = seedGroups
      ? seedGroupDifference(
          base.runs.map((run) => ({ seed: run.record.seed, scores: run.perExample! })),
          candidate.runs.map((run) => ({ seed: run.record.seed, scores: run.perExample! })),
          options,
          labels,
        )
      : pairedBootstrap(base.runs[0].perExample!, candidate.runs[0].perExample!, options, labels);
  }
  const regression = paired ? paired.upper < -maxDrop : difference < -maxDrop;
  const tolerance = formatPoints(-maxDrop);
  const verdict = paired
    ? regression
      ? `REGRESSION: the whole ${percent(paired.confidence)} interval of the difference lies below ${tolerance} (upper bound ${formatPoints(paired.upper)})`
      : paired.lower < -maxDrop
        ? `pass: the difference is not significantly below ${tolerance} (interval reaches up to ${formatPoints(paired.upper)})`
        : `pass: the whole ${percent(paired.confidence)} interval lies at or above ${tolerance}`
    : regression
      ? `REGRESSION: the difference ${formatPoints(difference)} is below ${tolerance} (point values only: ${pointOnlyReason})`
      : `pass: the difference ${formatPoints(difference)} is not below ${tolerance} (point values only: ${pointOnlyReason})`;
  const side = (group: ComparedGroup, value: number): ComparedSide => ({
    id: group.runs[0].record.id,
    name: group.name,
    value,
    runIds: group.runs.map((run) => run.record.id),
    seeds: group.runs.map((run) => run.record.seed),
  });
  return {
    base: side(base, baseValue),
    candidate: side(candidate, candidateValue),
    metric,
    difference,
    maxDrop,
    paired,
    intervalOver: paired ? ((seedGroups ? 'seeds and ' : '') + (paired.images === null ? 'examples' : 'images')) as IntervalOver : null,
    pointOnlyReason,
    executionDifferences: groupExecutionDifferences(base, candidate),
    regression,
    exitCode: regression ? EXIT_REGRESSION : EXIT_PASS,
    verdict,
  };
}

function describeDifferences(differences: readonly FieldDifference[]): string {
  return differences.map((d) => `${d.field} differs (base ${JSON.stringify(d.base)}, candidate ${JSON.stringify(d.candidate)})`).join('; ');
}

/** Execution differences between the sides; for groups, between every base run and every candidate run (each field named once). */
function groupExecutionDifferences(base: ComparedGroup, candidate: ComparedGroup): FieldDifference[] {
  const found = new Map<string, FieldDifference>();
  for (const b of base.runs) {
    for (const c of candidate.runs) {
      for (const difference of executionDifferences(b.record, c.record)) if (!found.has(difference.field)) found.set(difference.field, difference);
    }
  }
  return [...found.values()];
}

function formatPoints(value: number): string {
  const rounded = Math.abs(value) < 0.005 ? 0 : value;
  return `${rounded > 0 ? '+' : rounded < 0 ? '−' : ''}${Math.abs(rounded).toFixed(2)}`;
}

function percent(confidence: number): string {
  return `${Math.round(confidence * 1000) / 10}%`;
}

function formatP(p: number, resamples: number): string {
  // A share of 0 only says p < 1/resamples, not p = 0.
  return p === 0 ? `< ${(1 / resamples).toPrecision(2)}` : `= ${p.toFixed(4)}`;
}

/** The human-readable report `vlbench compare` prints. */
export function formatComparison(comparison: Comparison): string {
  const { base, candidate, metric, paired } = comparison;
  const describe = (side: ComparedSide) =>
    side.runIds.length === 1 ? `${side.name} (${side.id})` : `${side.name}: seed group of ${side.runIds.length} runs (seeds ${side.seeds.map((seed) => seed ?? 'unknown').join(', ')})`;
  const lines = [
    `base:       ${describe(base)}`,
    `candidate:  ${describe(candidate)}`,
    `${metric}${base.runIds.length > 1 || candidate.runIds.length > 1 ? ' (mean over seeds)' : ''}: base ${base.value.toFixed(2)}, candidate ${candidate.value.toFixed(2)}, difference ${formatPoints(comparison.difference)} points`,
  ];
  // "2000 matched examples" or "2000 matched examples in 400 images (resampled by image)".
  const examples = paired ? `${paired.examples} matched examples${paired.images === null ? '' : ` in ${paired.images} images (resampled by image)`}` : '';
  if (paired && 'pairedSeeds' in paired) {
    lines.push(
      `two-way bootstrap over seeds (${paired.baseSeeds} base, ${paired.candidateSeeds} candidate; ${paired.pairedSeeds ? 'paired by seed' : 'seeds differ, drawn separately'}) and ${examples} ` +
        `(${paired.resamples} resamples): mean difference ${formatPoints(paired.estimate)}, ${percent(paired.confidence)} interval [${formatPoints(paired.lower)}, ${formatPoints(paired.upper)}]`,
    );
  } else if (paired) {
    lines.push(
      `paired bootstrap over ${examples} (${paired.resamples} resamples): mean difference ${formatPoints(paired.estimate)}, ` +
        `${percent(paired.confidence)} interval [${formatPoints(paired.lower)}, ${formatPoints(paired.upper)}]`,
    );
  } else {
    lines.push(`no interval: ${comparison.pointOnlyReason}`);
  }
  if (paired) lines.push(`p (candidate worse, one-sided) ${formatP(paired.pWorse, paired.resamples)}; p (two-sided) ${formatP(paired.pTwoSided, paired.resamples)}`);
  for (const d of comparison.executionDifferences) {
    lines.push(`note: ${d.field} differs (base ${formatSetting(d.base)}, candidate ${formatSetting(d.candidate)}); scores can drift with it across machines, the gate still applies`);
  }
  lines.push(`tolerance (--max-drop): ${comparison.maxDrop} points`, comparison.verdict);
  return lines.join('\n') + '\n';
}

function formatSetting(value: string | number | null): string {
  return value === null ? 'unknown' : JSON.stringify(value);
}
