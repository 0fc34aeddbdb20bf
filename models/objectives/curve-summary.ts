/**
 * Reading an objective's values off the training curve for its report: the steps that carry
 * a value, and the means of the first and last tenth of them ("at the start", "at the end").
 */
export function curveValues(curve: readonly Readonly<Record<string, number>>[], name: string): number[] {
  return curve.flatMap((parts) => (Number.isFinite(parts[name]) ? [parts[name]] : []));
}

export function startAndEnd(values: readonly number[]): { start: number; end: number } {
  const n = Math.max(1, Math.floor(values.length / 10));
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { start: mean(values.slice(0, n)), end: mean(values.slice(-n)) };
}

export function meanOf(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}

/** Short numbers for log lines: 3 significant digits, exponent form when small. */
export function formatValue(value: number): string {
  return value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential(1) : value.toPrecision(3);
}
