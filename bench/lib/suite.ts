import type { ApiClient } from './api-client.js';
import type { ServerUnderTest } from './processes.js';
import type { JupyterRest } from './raw-kernel.js';

/** What every benchmark gets. */
export interface BenchEnv {
  quick: boolean;
  /** The server's LOG_LEVEL. */
  logLevel: string;
  /** Scratch directory of this run (removed at the end). */
  tmpDir: string;
  progress(message: string): void;
}

/** The server every benchmark but cold start shares, and clients for both sides. */
export interface SharedServer {
  server: ServerUnderTest;
  api: ApiClient;
  rest: JupyterRest;
}

/** One line of the summary table: the server against its baseline, measured in the same run. */
export interface SummaryRow {
  benchmark: string;
  ours: string;
  baseline: string;
  ratio: string;
  target: string;
  /** undefined when the row has no target. */
  met: boolean | undefined;
}

export interface SuiteResult {
  summary: SummaryRow[];
  /** Markdown with the details: every side, every percentile, how it was measured. */
  details: string;
  /** Raw numbers for the JSON record. */
  data: unknown;
}

interface SuiteInfo {
  name: string;
  title: string;
}

/** A benchmark on the shared server, or one that starts its own processes (cold start). */
export type Suite =
  | (SuiteInfo & { shared: true; run(env: BenchEnv, shared: SharedServer): Promise<SuiteResult> })
  | (SuiteInfo & { shared: false; run(env: BenchEnv): Promise<SuiteResult> });

/** A Markdown table from a header and rows. */
export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Rotates the order of the sides each round (A B, B A, ...) so that drift hits both alike. */
export function roundOrder<T>(sides: readonly T[], round: number): T[] {
  const shift = round % sides.length;
  return [...sides.slice(shift), ...sides.slice(0, shift)];
}
