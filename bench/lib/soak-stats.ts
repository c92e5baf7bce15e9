/**
 * The soak's pure parts: the open-loop schedule, per-minute aggregation and the verdicts. No I/O
 * here, so that tests/unit/soak-stats.test.ts can check them.
 */
import { median, percentile } from './stats.js';

/** An operation started later than this after its scheduled time counts as late. */
export const LATE_MS = 1000;

/**
 * A fixed-rate schedule: operation k is due at `start + phase + k * interval`, whatever happened
 * to the ones before (open loop). A slow server does not slow the schedule down: what it cannot
 * start on time is started late and counted late, never skipped.
 */
export class OpenLoopSchedule {
  private next: number;

  constructor(
    private readonly intervalMs: number,
    start: number,
    phaseMs = 0,
  ) {
    if (!(intervalMs > 0)) throw new Error(`the interval must be positive, not ${intervalMs}`);
    this.next = start + phaseMs;
  }

  /** Scheduled times that have come by `now` (and not before `until`), each returned once. */
  due(now: number, until = Number.POSITIVE_INFINITY): number[] {
    const times: number[] = [];
    while (this.next <= now && this.next < until) {
      times.push(this.next);
      this.next += this.intervalMs;
    }
    return times;
  }
}

/** One finished operation. */
export interface OpRecord {
  kind: string;
  /** When it was due, in ms since the run started. */
  due: number;
  /** How long after `due` it started. */
  startDelay: number;
  /** From `due` to its end: the latency a client on the schedule saw. */
  latency: number;
  ok: boolean;
}

export interface KindMinute {
  count: number;
  errors: number;
  late: number;
  p50: number;
  p99: number;
}

/** Per kind, per minute (by due time): count, errors, late starts, latency percentiles of the successes. */
export function perMinute(records: readonly OpRecord[], minutes: number): Map<string, KindMinute[]> {
  const buckets = new Map<string, { latencies: number[]; count: number; errors: number; late: number }[]>();
  for (const record of records) {
    const minute = Math.min(minutes - 1, Math.max(0, Math.floor(record.due / 60_000)));
    let list = buckets.get(record.kind);
    if (!list) {
      list = Array.from({ length: minutes }, () => ({ latencies: [], count: 0, errors: 0, late: 0 }));
      buckets.set(record.kind, list);
    }
    const bucket = list[minute]!;
    bucket.count += 1;
    if (!record.ok) bucket.errors += 1;
    else bucket.latencies.push(record.latency);
    if (record.startDelay > LATE_MS) bucket.late += 1;
  }
  const result = new Map<string, KindMinute[]>();
  for (const [kind, list] of buckets) {
    result.set(
      kind,
      list.map((b) => ({
        count: b.count,
        errors: b.errors,
        late: b.late,
        p50: percentile(b.latencies, 50),
        p99: percentile(b.latencies, 99),
      })),
    );
  }
  return result;
}

/**
 * Warm-up: the first 20% of the run, in whole minutes, at least one; a one-minute run has no
 * whole minute to spare, so its warm-up is its first 20 s. Returns seconds.
 */
export function warmUpSeconds(minutes: number): number {
  return minutes <= 1 ? 20 : Math.max(1, Math.ceil(minutes * 0.2)) * 60;
}

/** A resource reading, at `t` seconds since the run started. */
export interface ResourceSample {
  t: number;
  value: number;
}

export interface Flatness {
  /** Median of the samples in the first window after the warm-up. */
  base: number;
  /** Median of the samples in the last window. */
  last: number;
  /** (last − base) / base. */
  growth: number;
  flat: boolean;
}

/**
 * Whether a resource stayed flat after the warm-up: the median of the last window against the
 * median of the first window after the warm-up (a minute each, 20 s in a one-minute run).
 * Medians, so that a reading taken mid-collection or mid-request does not decide alone.
 */
export function flatness(samples: readonly ResourceSample[], minutes: number, tolerance = 0.1): Flatness {
  const warm = warmUpSeconds(minutes);
  const window = minutes <= 1 ? 20 : 60;
  const end = minutes * 60;
  const pick = (from: number, to: number) => samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.value);
  let first = pick(warm, warm + window);
  let lastValues = pick(end - window, end + window);
  if (first.length === 0) first = samples.map((s) => s.value).slice(0, 1);
  if (lastValues.length === 0) lastValues = samples.map((s) => s.value).slice(-1);
  const base = median(first);
  const last = median(lastValues);
  const growth = base > 0 ? (last - base) / base : Number.NaN;
  return { base, last, growth, flat: !(growth > tolerance) };
}

/**
 * Descriptors leak one at a time, and a reading counts the connections in flight at that moment:
 * growth fails a long run only when it is both over 10% and over this many descriptors.
 */
export const DESCRIPTOR_SLACK = 10;

export function descriptorsGrew(result: Flatness): boolean {
  return result.growth > 0.1 && result.last - result.base > DESCRIPTOR_SLACK;
}

export interface Stability {
  kind: string;
  /** Median of the per-minute p99s of the first window after the warm-up. */
  first: number;
  /** The same over the last window. */
  last: number;
  ratio: number;
  stable: boolean;
}

/** Minutes in each window p99 stability compares: 20% of the run, at least one. */
export function stabilityWindow(minutes: number): number {
  return Math.max(1, Math.round(minutes * 0.2));
}

/**
 * p99 stability per kind: the median of the per-minute p99s over the last 20% of the run against
 * the same over the first 20% after the warm-up, within `factor`. One minute's p99 is its one or
 * two slowest operations, and a neighbour's burst on a shared machine moves it by several times;
 * the median over a few minutes moves only when the server does. Kinds with no success in a
 * window are left out.
 */
export function p99Stability(table: Map<string, KindMinute[]>, minutes: number, factor = 2): Stability[] {
  const window = stabilityWindow(minutes);
  const firstStart = Math.min(minutes - window, Math.ceil(warmUpSeconds(minutes) / 60));
  const out: Stability[] = [];
  for (const [kind, list] of table) {
    const p99s = (from: number) =>
      list
        .slice(from, from + window)
        .map((m) => m.p99)
        .filter(Number.isFinite);
    const first = median(p99s(firstStart));
    const last = median(p99s(minutes - window));
    if (!Number.isFinite(first) || !Number.isFinite(last)) continue;
    const ratio = first > 0 ? last / first : Number.NaN;
    out.push({ kind, first, last, ratio, stable: ratio <= factor });
  }
  return out;
}

/** Checks a `--minutes` value: a whole number from 1 to 720. */
export function parseMinutes(text: string | undefined): number {
  if (text === undefined) return 30;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(value) || value < 1 || value > 720) {
    throw new Error(`--minutes must be a whole number from 1 to 720 (12 hours), not "${text}"`);
  }
  return value;
}

/** Groups unexpected errors by kind and message (numbers and ids blanked), keeping the first message of each. */
export class ErrorLog {
  readonly groups = new Map<string, { kind: string; count: number; first: string; at: number }>();

  add(kind: string, message: string, at: number): void {
    const firstLine = message.split('\n')[0]!.slice(0, 400);
    const key = `${kind}: ${firstLine.replace(/[0-9a-f]{8}-[0-9a-f-]{27,}/gi, '<id>').replace(/\d+/g, 'N')}`;
    const group = this.groups.get(key);
    if (group) group.count += 1;
    else this.groups.set(key, { kind, count: 1, first: firstLine, at });
  }

  get total(): number {
    let total = 0;
    for (const group of this.groups.values()) total += group.count;
    return total;
  }
}
