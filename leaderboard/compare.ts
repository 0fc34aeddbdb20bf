import { InputError } from '../core/errors.ts';
import type { ExampleScore } from '../core/types.ts';
import { comparabilityDifferences, type RunRecord } from './run-record.ts';
import { pairedBootstrap, type BootstrapOptions, type PairedDifference } from './statistics.ts';

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

export interface CompareOptions extends BootstrapOptions {
  /** Metric to compare; defaults to the base run's primary metric. */
  metric?: string;
  /** Tolerated drop in metric points (≥ 0). */
  maxDrop?: number;
}

export interface Comparison {
  base: { id: string; name: string; value: number };
  candidate: { id: string; name: string; value: number };
  metric: string;
  /** candidate − base, in metric points. */
  difference: number;
  maxDrop: number;
  paired: PairedDifference | null;
  /** Why there is no interval, when there is none. */
  pointOnlyReason: string | null;
  regression: boolean;
  exitCode: typeof EXIT_PASS | typeof EXIT_REGRESSION;
  verdict: string;
}

export function compareRuns(base: ComparedRun, candidate: ComparedRun, options: CompareOptions = {}): Comparison {
  const maxDrop = options.maxDrop ?? 0;
  if (!(Number.isFinite(maxDrop) && maxDrop >= 0)) throw new InputError(`expected a tolerance of 0 or more metric points, got ${maxDrop}`, { field: '--max-drop' });
  const differences = comparabilityDifferences(base.record, candidate.record);
  if (differences.length > 0) {
    const detail = differences.map((d) => `${d.field} differs (base ${JSON.stringify(d.base)}, candidate ${JSON.stringify(d.candidate)})`).join('; ');
    throw new InputError(`runs "${base.record.name}" and "${candidate.record.name}" are not comparable: ${detail}`);
  }
  const metric = options.metric ?? base.record.primaryMetric;
  for (const [role, run] of [['base', base], ['candidate', candidate]] as const) {
    if (!(metric in run.record.metrics)) {
      throw new InputError(`the ${role} run has no metric ${JSON.stringify(metric)} (it has: ${Object.keys(run.record.metrics).join(', ')})`, { record: run.record.id, field: 'metrics' });
    }
  }
  const baseValue = base.record.metrics[metric];
  const candidateValue = candidate.record.metrics[metric];
  const difference = candidateValue - baseValue;

  let pointOnlyReason: string | null = null;
  if (metric !== base.record.primaryMetric || metric !== candidate.record.primaryMetric) pointOnlyReason = `per-example scores exist only for the primary metric (${base.record.primaryMetric})`;
  else if (!base.perExample?.length) pointOnlyReason = 'the base run has no per-example scores';
  else if (!candidate.perExample?.length) pointOnlyReason = 'the candidate run has no per-example scores';

  const paired =
    pointOnlyReason === null
      ? pairedBootstrap(base.perExample!, candidate.perExample!, options, { base: `base run "${base.record.name}"`, candidate: `candidate run "${candidate.record.name}"` })
      : null;
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
  return {
    base: { id: base.record.id, name: base.record.name, value: baseValue },
    candidate: { id: candidate.record.id, name: candidate.record.name, value: candidateValue },
    metric,
    difference,
    maxDrop,
    paired,
    pointOnlyReason,
    regression,
    exitCode: regression ? EXIT_REGRESSION : EXIT_PASS,
    verdict,
  };
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
  const lines = [
    `base:       ${base.name} (${base.id})`,
    `candidate:  ${candidate.name} (${candidate.id})`,
    `${metric}: base ${base.value.toFixed(2)}, candidate ${candidate.value.toFixed(2)}, difference ${formatPoints(comparison.difference)} points`,
  ];
  if (paired) {
    lines.push(
      `paired bootstrap over ${paired.examples} matched examples (${paired.resamples} resamples): mean difference ${formatPoints(paired.estimate)}, ` +
        `${percent(paired.confidence)} interval [${formatPoints(paired.lower)}, ${formatPoints(paired.upper)}]`,
      `p (candidate worse, one-sided) ${formatP(paired.pWorse, paired.resamples)}; p (two-sided) ${formatP(paired.pTwoSided, paired.resamples)}`,
    );
  } else {
    lines.push(`no interval: ${comparison.pointOnlyReason}`);
  }
  lines.push(`tolerance (--max-drop): ${comparison.maxDrop} points`, comparison.verdict);
  return lines.join('\n') + '\n';
}
