import { describe, expect, it } from 'vitest';
import {
  descriptorsGrew,
  ErrorLog,
  flatness,
  OpenLoopSchedule,
  p99Stability,
  parseMinutes,
  perMinute,
  stabilityWindow,
  warmUpSeconds,
  type OpRecord,
} from '../../bench/lib/soak-stats.js';

describe('the soak: open-loop schedule', () => {
  it('hands out every due time once, at a fixed rate from the phase', () => {
    const schedule = new OpenLoopSchedule(500, 0, 100);
    expect(schedule.due(50)).toEqual([]);
    expect(schedule.due(100)).toEqual([100]);
    expect(schedule.due(100)).toEqual([]);
    expect(schedule.due(1200)).toEqual([600, 1100]);
  });

  it('does not slow down when the caller falls behind: a late look gets the whole backlog', () => {
    const schedule = new OpenLoopSchedule(1000, 0);
    expect(schedule.due(0)).toEqual([0]);
    // Nobody looked for 5 s (a stalled loop): the missed times are all there, none skipped.
    expect(schedule.due(5000)).toEqual([1000, 2000, 3000, 4000, 5000]);
  });

  it('schedules nothing at or after the end of the run', () => {
    const schedule = new OpenLoopSchedule(1000, 0);
    expect(schedule.due(10_000, 3000)).toEqual([0, 1000, 2000]);
  });

  it('refuses an interval that is not positive', () => {
    expect(() => new OpenLoopSchedule(0, 0)).toThrow(/positive/);
  });
});

describe('the soak: per-minute figures and verdicts', () => {
  const record = (kind: string, due: number, latency: number, ok = true, startDelay = 0): OpRecord => ({
    kind,
    due,
    latency,
    ok,
    startDelay,
  });

  it('buckets by due time, keeps errors out of the percentiles and counts late starts', () => {
    const records = [
      ...Array.from({ length: 100 }, (_, i) => record('a', i * 100, i + 1)),
      record('a', 500, 99_999, false),
      record('a', 600, 5, true, 1500),
      record('a', 61_000, 10),
    ];
    const table = perMinute(records, 2).get('a')!;
    expect(table[0]).toMatchObject({ count: 102, errors: 1, late: 1 });
    expect(table[0]!.p99).toBeLessThan(101);
    // 1..100 and the late one (5): 101 successes, the median is 50.
    expect(table[0]!.p50).toBe(50);
    expect(table[1]).toMatchObject({ count: 1, errors: 0, late: 0, p50: 10, p99: 10 });
  });

  it('puts an operation due after the last minute (a drained backlog) into the last minute', () => {
    expect(perMinute([record('a', 125_000, 1)], 2).get('a')![1]!.count).toBe(1);
  });

  it('warms up for 20% of the run in whole minutes, at least one, and 20 s in a one-minute run', () => {
    expect(warmUpSeconds(1)).toBe(20);
    expect(warmUpSeconds(2)).toBe(60);
    expect(warmUpSeconds(30)).toBe(360);
    expect(warmUpSeconds(31)).toBe(420);
  });

  it('judges flatness on medians after the warm-up, so that a warm-up climb and one spike do not count', () => {
    const samples = Array.from({ length: 10 * 12 }, (_, i) => ({ t: i * 5, value: i * 5 < 120 ? 50 + i : 100 }));
    samples[samples.length - 3]!.value = 500;
    const result = flatness(samples, 10);
    expect(result).toMatchObject({ base: 100, last: 100, growth: 0, flat: true });
  });

  it('finds a steady growth past 10%', () => {
    const samples = Array.from({ length: 30 * 12 }, (_, i) => ({ t: i * 5, value: 100 + i }));
    const result = flatness(samples, 30);
    expect(result.flat).toBe(false);
    expect(result.growth).toBeGreaterThan(1);
  });

  it('fails descriptors only past both 10% and the slack of connections in flight', () => {
    expect(descriptorsGrew({ base: 40, last: 48, growth: 0.2, flat: false })).toBe(false);
    expect(descriptorsGrew({ base: 40, last: 60, growth: 0.5, flat: false })).toBe(true);
    expect(descriptorsGrew({ base: 400, last: 430, growth: 0.075, flat: true })).toBe(false);
  });

  it('compares the median p99 of the last 20% of the run with that of the first 20% after the warm-up', () => {
    const minute = (p99: number) => ({ count: 10, errors: 0, late: 0, p50: 5, p99 });
    const table = new Map([
      // One slow minute in each window (a neighbour's burst) does not move the medians.
      ['steady', [1000, 1000, 10, 500, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 400, 10].map(minute)],
      // A slow drift does: minutes 5-8 against 17-20.
      ['drifting', Array.from({ length: 20 }, (_, m) => minute(10 + 5 * m))],
    ]);
    const result = p99Stability(table, 20);
    expect(result.find((s) => s.kind === 'steady')).toMatchObject({ first: 10, last: 10, stable: true });
    expect(result.find((s) => s.kind === 'drifting')).toMatchObject({ first: 37.5, last: 97.5, stable: false });
  });

  it('compares a one-minute run with itself, and a short run on whole minutes', () => {
    const table = new Map([['a', [{ count: 1, errors: 0, late: 0, p50: 1, p99: 7 }]]]);
    expect(p99Stability(table, 1)).toEqual([{ kind: 'a', first: 7, last: 7, ratio: 1, stable: true }]);
    expect(stabilityWindow(1)).toBe(1);
    expect(stabilityWindow(30)).toBe(6);
  });
});

describe('the soak: --minutes and errors', () => {
  it('takes whole minutes from 1 to 720, 30 by default', () => {
    expect(parseMinutes(undefined)).toBe(30);
    expect(parseMinutes('1')).toBe(1);
    expect(parseMinutes('720')).toBe(720);
    for (const bad of ['0', '721', '1.5', '-3', 'ten', '', '1e3']) expect(() => parseMinutes(bad)).toThrow(/1 to 720/);
  });

  it('groups errors whose messages differ only in numbers and ids, keeping the first', () => {
    const log = new ErrorLog();
    log.add('exec', 'POST /execute answered 500: context 4c1f0a2b-1111-2222-3333-444455556666 failed', 1);
    log.add('exec', 'POST /execute answered 500: context 9d9d0a2b-1111-2222-3333-444455556666 failed', 2);
    log.add('exec', 'the stream ended early', 3);
    log.add('ws', 'the stream ended early', 4);
    expect(log.total).toBe(4);
    expect(log.groups.size).toBe(3);
    expect([...log.groups.values()][0]).toMatchObject({ count: 2, at: 1, first: expect.stringContaining('4c1f0a2b') as unknown });
  });
});
