import os from 'node:os';
import { cpuBetween, cpuSnapshot } from '../lib/proc-cpu.js';
import { formatNumber, formatRatio, formatRatioAgainst, median, now, ratio } from '../lib/stats.js';
import { startRawKernel, stopRawKernel, type RawKernel } from '../lib/raw-kernel.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const LANES = [1, 2, 4, 8];
const TARGET = 0.9;

type Lane = () => Promise<void>;
type SideKey = 'raw' | 'rawV1' | 'api';

const SIDE_LABELS: Record<SideKey, string> = {
  raw: 'raw client, JSON protocol (the baseline)',
  rawV1: 'raw client, v1 binary protocol',
  api: 'API',
};

/** Drives every lane back to back for `durationMs`; returns completed executions per second and their count. */
async function drive(lanes: Lane[], durationMs: number): Promise<{ rate: number; count: number }> {
  const started = now();
  const deadline = started + durationMs;
  const counts = await Promise.all(
    lanes.map(async (lane) => {
      let count = 0;
      while (now() < deadline) {
        await lane();
        count += 1;
      }
      return count;
    }),
  );
  const count = counts.reduce((a, b) => a + b, 0);
  // The last execution of each lane ends after the deadline: divide by the real elapsed time.
  return { rate: count / ((now() - started) / 1000), count };
}

/** N contexts driven in parallel, each with a kernel of its own, against N raw clients on N kernels. */
export const throughput: Suite = {
  name: 'throughput',
  title: '2. Throughput: parallel contexts',
  shared: true,
  async run(env: BenchEnv, { server, api, rest }: SharedServer): Promise<SuiteResult> {
    const rounds = env.quick ? 2 : 5;
    const durationMs = env.quick ? 1000 : 3000;
    const warmUpMs = env.quick ? 300 : 1000;
    const most = Math.max(...LANES);

    const rawKernels: RawKernel[] = [];
    const v1Kernels: RawKernel[] = [];
    const contexts: string[] = [];
    try {
      env.progress(`throughput: starting ${2 * most} raw kernels and ${most} contexts`);
      // A few at a time: faster than one by one, without starving the machine.
      for (let i = 0; i < most; i += 2) {
        rawKernels.push(...(await Promise.all([startRawKernel(rest, server.workspaceDir), startRawKernel(rest, server.workspaceDir)])));
        v1Kernels.push(
          ...(await Promise.all([startRawKernel(rest, server.workspaceDir, 'v1'), startRawKernel(rest, server.workspaceDir, 'v1')])),
        );
        contexts.push(...(await Promise.all([api.createContext(), api.createContext()])));
      }

      const rawLane =
        (kernel: RawKernel): Lane =>
        async () => {
          const { result } = await kernel.client.execute('1+1');
          if (result !== '2') throw new Error(`raw client: 1+1 gave ${JSON.stringify(result)}`);
        };
      const apiLane =
        (contextId: string): Lane =>
        async () => {
          const { result } = await api.execute({ code: '1+1', context_id: contextId });
          if (result !== '2') throw new Error(`API: 1+1 gave ${JSON.stringify(result)}`);
        };

      const results: ({ lanes: number } & Record<SideKey, number[]>)[] = [];
      // CPU seconds per process, summed over every measured round, and the executions they ran.
      const zero = () => ({ api: 0, jupyter: 0, kernels: 0, client: 0, count: 0 });
      const cpu: Record<SideKey, ReturnType<typeof zero>> = { raw: zero(), rawV1: zero(), api: zero() };
      for (const n of LANES) {
        const sides: { key: SideKey; lanes: Lane[] }[] = [
          { key: 'raw', lanes: rawKernels.slice(0, n).map(rawLane) },
          { key: 'rawV1', lanes: v1Kernels.slice(0, n).map(rawLane) },
          { key: 'api', lanes: contexts.slice(0, n).map(apiLane) },
        ];
        for (const side of sides) await drive(side.lanes, warmUpMs);
        const measured = { lanes: n, raw: [] as number[], rawV1: [] as number[], api: [] as number[] };
        for (let round = 0; round < rounds; round++) {
          env.progress(`throughput ${n} lane(s), round ${round + 1}/${rounds}`);
          for (const side of roundOrder(sides, round)) {
            const before = cpuSnapshot(server.apiPid, server.jupyterPid);
            const { rate, count } = await drive(side.lanes, durationMs);
            const used = cpuBetween(before, cpuSnapshot(server.apiPid, server.jupyterPid));
            measured[side.key].push(rate);
            const total = cpu[side.key];
            total.api += used.api;
            total.jupyter += used.jupyter;
            total.kernels += used.kernels;
            total.client += used.client;
            total.count += count;
          }
        }
        results.push(measured);
      }

      const rows = results.map((r) => {
        const [apiRate, rawRate, v1Rate] = [median(r.api), median(r.raw), median(r.rawV1)];
        return [
          String(r.lanes),
          formatNumber(apiRate, 0),
          formatNumber(rawRate, 0),
          formatNumber(v1Rate, 0),
          formatRatio(ratio(apiRate, rawRate)),
          formatRatio(ratio(apiRate, v1Rate)),
          r.api.map((v) => v.toFixed(0)).join(', '),
          r.raw.map((v) => v.toFixed(0)).join(', '),
        ];
      });
      const details = [
        `Each lane runs \`1+1\` back to back on a kernel of its own (a context through the API; a kernel started through Jupyter's REST API for the raw clients). ` +
          `${rounds} rounds of ${durationMs / 1000} s per side and lane count, sides alternated, after a ${warmUpMs / 1000} s warm-up; the table shows medians over the rounds.`,
        '',
        table(
          ['Lanes', 'API exec/s', 'raw JSON exec/s', 'raw v1 exec/s', 'API / raw JSON', 'API / raw v1', 'API rounds', 'raw JSON rounds'],
          rows,
        ),
        '',
        `CPU time per execution, over every measured round (all lane counts), from /proc/<pid>/stat. This machine has ${os.cpus().length} CPUs: ` +
          'once they are saturated, throughput is their number divided by the total, so this says what an execution costs and who pays. "client" is the benchmark process itself.',
        '',
        table(
          ['Side', 'API process ms', 'Jupyter ms', 'kernels ms', 'client ms', 'total ms'],
          (['raw', 'rawV1', 'api'] as const).map((key) => {
            const c = cpu[key];
            const per = (seconds: number) => formatNumber((seconds * 1000) / c.count, 2);
            return [
              SIDE_LABELS[key],
              key === 'api' ? per(c.api) : '',
              per(c.jupyter),
              per(c.kernels),
              per(c.client),
              per((key === 'api' ? c.api : 0) + c.jupyter + c.kernels + c.client),
            ];
          }),
        ),
      ].join('\n');

      return {
        summary: results.map((r) => {
          const value = ratio(median(r.api), median(r.raw));
          return {
            benchmark: `Throughput, ${r.lanes} context${r.lanes > 1 ? 's' : ''} in parallel`,
            ours: `${formatNumber(median(r.api), 0)} exec/s`,
            baseline: `${formatNumber(median(r.raw), 0)} exec/s (raw, ${r.lanes} kernel${r.lanes > 1 ? 's' : ''})`,
            ratio: formatRatioAgainst(value, TARGET),
            target: `≥ ${TARGET.toFixed(2)}x`,
            met: value >= TARGET,
          };
        }),
        details,
        data: { results, cpu },
      };
    } finally {
      await Promise.all(contexts.map((id) => api.deleteContext(id).catch(() => undefined)));
      await Promise.all([...rawKernels, ...v1Kernels].map((kernel) => stopRawKernel(rest, kernel).catch(() => undefined)));
    }
  },
};
