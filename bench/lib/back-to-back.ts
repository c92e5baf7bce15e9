import { formatNumber, formatRatio, max, median, now, percentile, ratio } from './stats.js';
import { roundOrder, table, type BenchEnv } from './suite.js';

/** One client of a back-to-back benchmark: `run` executes `1+1` and resolves with its result text. */
export interface BackToBackSide {
  key: string;
  label: string;
  run: () => Promise<string | null | undefined>;
}

export interface BackToBackStats {
  p50: number;
  p90: number;
  p99: number;
  n: number;
  /** The p50 of each round, in round order: ratios per round cancel the machine's drift. */
  roundP50: number[];
}

export interface BackToBackOptions {
  rounds: number;
  perRound: number;
  warmUp: number;
}

/**
 * Checks that every side answers `1+1` with 2, warms each up, then times `perRound` back-to-back
 * executions per side in each of `rounds` rounds, the sides interleaved (order rotated each
 * round). Percentiles pool every round.
 */
export async function measureBackToBack(
  env: BenchEnv,
  name: string,
  sides: readonly BackToBackSide[],
  { rounds, perRound, warmUp }: BackToBackOptions,
): Promise<Record<string, BackToBackStats>> {
  for (const side of sides) {
    const result = await side.run();
    if (result !== '2') throw new Error(`${side.label}: 1+1 gave ${JSON.stringify(result)}`);
    for (let i = 1; i < warmUp; i++) await side.run();
  }

  const samples = new Map<string, number[]>(sides.map((side) => [side.key, []]));
  const roundP50 = new Map<string, number[]>(sides.map((side) => [side.key, []]));
  for (let round = 0; round < rounds; round++) {
    env.progress(`${name} round ${round + 1}/${rounds}`);
    for (const side of roundOrder(sides, round)) {
      const times: number[] = [];
      for (let i = 0; i < perRound; i++) {
        const started = now();
        await side.run();
        times.push(now() - started);
      }
      samples.get(side.key)!.push(...times);
      roundP50.get(side.key)!.push(percentile(times, 50));
    }
  }

  return Object.fromEntries(
    sides.map((side) => {
      const all = samples.get(side.key)!;
      const stats: BackToBackStats = {
        p50: percentile(all, 50),
        p90: percentile(all, 90),
        p99: percentile(all, 99),
        n: all.length,
        roundP50: roundP50.get(side.key)!,
      };
      return [side.key, stats];
    }),
  );
}

/**
 * The table of a back-to-back benchmark: each side's percentiles, its p50 against the side
 * `baseKey`, and the per-round p50 ratios (median, min–max).
 */
export function backToBackTable(
  sides: readonly BackToBackSide[],
  stats: Record<string, BackToBackStats>,
  baseKey: string,
  baseName: string,
): string {
  const base = stats[baseKey]!;
  const rows = sides.map((side) => {
    const s = stats[side.key]!;
    const perRound = s.roundP50.map((value, i) => value / base.roundP50[i]!);
    const isBase = side.key === baseKey;
    return [
      side.label,
      formatNumber(s.p50, 2),
      formatNumber(s.p90, 2),
      formatNumber(s.p99, 2),
      isBase ? '1.00x' : formatRatio(ratio(s.p50, base.p50)),
      isBase ? '' : `${formatRatio(median(perRound))} (${formatRatio(Math.min(...perRound))}–${formatRatio(max(perRound))})`,
      String(s.n),
    ];
  });
  return table(['Client', 'p50 ms', 'p90 ms', 'p99 ms', `p50 / ${baseName}`, 'per-round p50 ratio: median (min–max)', 'n'], rows);
}
