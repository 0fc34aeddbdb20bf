/**
 * How bench scripts time things, in one place: warm-up runs that are not counted (kernels
 * compile, caches and sessions fill), then N timed runs of which the best is reported (on a
 * shared machine the fastest run is the one least disturbed) beside their mean; and the baseline
 * measured in the same run printed beside ours with the ratio, so a number survives a busy machine.
 */
export interface Timing {
  /** Seconds of the fastest timed run. */
  best: number;
  /** Mean seconds over the timed runs. */
  mean: number;
  runs: number;
}

export async function timeRuns(work: () => unknown, { warmup = 1, runs = 3 }: { warmup?: number; runs?: number } = {}): Promise<Timing> {
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`runs must be a positive integer, got ${runs}`);
  for (let i = 0; i < warmup; i++) await work();
  const seconds: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await work();
    seconds.push((performance.now() - started) / 1000);
  }
  return { best: Math.min(...seconds), mean: seconds.reduce((sum, s) => sum + s, 0) / runs, runs };
}

/** One measured row: a rate (items per second) under a label, with a note on what it covers. */
export interface RateRow {
  label: string;
  rate: number;
  unit: string;
  note?: string;
}

/** Rows as aligned lines, the baseline first and every other row with its ratio to it ("2.31× baseline"). */
export function besideBaseline(baseline: RateRow, ours: readonly RateRow[]): string {
  const rows = [{ ...baseline, label: `baseline: ${baseline.label}` }, ...ours];
  const width = Math.max(...rows.map((row) => row.label.length));
  return rows
    .map((row, index) => {
      const ratio = index === 0 ? '' : `  ${(row.rate / baseline.rate).toFixed(2)}× baseline`;
      return `${row.label.padEnd(width)}  ${row.rate.toFixed(1).padStart(8)} ${row.unit}${ratio}${row.note ? `  (${row.note})` : ''}`;
    })
    .join('\n');
}
