/** Small statistics helpers: the benchmarks report medians and percentiles, never means. */

/** Percentile by linear interpolation between closest ranks; `p` in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function max(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => (b > a ? b : a));
}

export function ratio(ours: number, baseline: number): number {
  return baseline === 0 ? Number.NaN : ours / baseline;
}

export const MiB = 2 ** 20;

export function formatNumber(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toFixed(digits);
}

export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a';
}

/** Like {@link formatRatio}, with a third decimal when two would hide which side of `target` it is on. */
export function formatRatioAgainst(value: number, target: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value !== target && value.toFixed(2) === target.toFixed(2) ? `${value.toFixed(3)}x` : `${value.toFixed(2)}x`;
}

export function formatMiB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MiB).toFixed(1)} MiB` : 'n/a';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** High-resolution milliseconds. */
export function now(): number {
  return performance.now();
}
