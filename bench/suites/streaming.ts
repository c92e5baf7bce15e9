import { cpuBetween, cpuSnapshot, type CpuUsage } from '../lib/proc-cpu.js';
import { MemorySampler, type MemoryPeak } from '../lib/proc-memory.js';
import { formatMiB, formatNumber, formatRatioAgainst, max, median, MiB, now, ratio } from '../lib/stats.js';
import { startRawKernel, stopRawKernel, type RawKernel } from '../lib/raw-kernel.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

/** Against the raw client on the v1 binary protocol: Jupyter forwards its frames undecoded, the best a client can do. */
const THROUGHPUT_TARGET = 0.9;
const MEMORY_BUDGET = 64 * MiB;

/** Python that prints `chunks` lines of 1 MiB each, flushing each so that each is one message. */
function printCode(chunks: number): string {
  return [
    'import sys',
    "_chunk = 'x' * (1024 * 1024 - 1) + '\\n'",
    `for _ in range(${chunks}):`,
    '    sys.stdout.write(_chunk)',
    '    sys.stdout.flush()',
    'del _chunk',
  ].join('\n');
}

interface Run {
  seconds: number;
  memory?: MemoryPeak;
  cpu?: CpuUsage;
}

/**
 * Megabytes of stdout through the API against a raw client on a kernel of its own, with the
 * API's resident memory sampled throughout; then a client that reads slowly, to show that the
 * API's memory stays bounded when the kernel prints faster than the client reads.
 */
export const streaming: Suite = {
  name: 'streaming',
  title: '3. Output streaming',
  shared: true,
  async run(env: BenchEnv, { server, api, rest }: SharedServer): Promise<SuiteResult> {
    const chunks = env.quick ? 16 : 50;
    const rounds = env.quick ? 2 : 5;
    const slowRate = (env.quick ? 8 : 5) * MiB;
    const expected = chunks * MiB;
    const code = printCode(chunks);

    const raw = await startRawKernel(rest, server.workspaceDir);
    const rawV1 = await startRawKernel(rest, server.workspaceDir, 'v1');
    const contextId = await api.createContext();
    try {
      const rawSide = (key: 'raw' | 'rawV1', kernel: RawKernel) => ({
        key,
        run: async (): Promise<Run> => {
          const started = now();
          const outcome = await kernel.client.execute(code);
          const seconds = (now() - started) / 1000;
          if (outcome.streamChars !== expected)
            throw new Error(`raw client (${kernel.client.protocol}) received ${outcome.streamChars} of ${expected} bytes`);
          return { seconds };
        },
      });
      const sides = [
        rawSide('raw', raw),
        rawSide('rawV1', rawV1),
        {
          key: 'api' as const,
          run: async (): Promise<Run> => {
            const sampler = new MemorySampler(server.apiPid);
            const started = now();
            const outcome = await api.execute({ code, context_id: contextId });
            const seconds = (now() - started) / 1000;
            const memory = sampler.stop();
            if (outcome.streamChars !== expected) throw new Error(`API client received ${outcome.streamChars} of ${expected} bytes`);
            return { seconds, memory };
          },
        },
      ];

      // Warm-up: a quarter of the size, once per side.
      await raw.client.execute(printCode(Math.ceil(chunks / 4)));
      await rawV1.client.execute(printCode(Math.ceil(chunks / 4)));
      await api.execute({ code: printCode(Math.ceil(chunks / 4)), context_id: contextId });

      const runs = { raw: [] as Run[], rawV1: [] as Run[], api: [] as Run[] };
      for (let round = 0; round < rounds; round++) {
        env.progress(`streaming ${chunks} MiB, round ${round + 1}/${rounds}`);
        for (const side of roundOrder(sides, round)) {
          const before = cpuSnapshot(server.apiPid, server.jupyterPid);
          const run = await side.run();
          run.cpu = cpuBetween(before, cpuSnapshot(server.apiPid, server.jupyterPid));
          runs[side.key].push(run);
        }
      }

      env.progress(`streaming ${chunks} MiB to a client reading ${slowRate / MiB} MiB/s`);
      const apiSampler = new MemorySampler(server.apiPid);
      const jupyterSampler = new MemorySampler(server.jupyterPid);
      const slowStarted = now();
      const slowOutcome = await api.execute({ code, context_id: contextId }, { readBytesPerSecond: slowRate });
      const slowSeconds = (now() - slowStarted) / 1000;
      const slowApi = apiSampler.stop();
      const slowJupyter = jupyterSampler.stop();
      if (slowOutcome.streamChars !== expected) throw new Error(`slow client received ${slowOutcome.streamChars} of ${expected} bytes`);

      // Bounded means independent of the size: four times the output, read at full speed.
      const bigChunks = 4 * chunks;
      env.progress(`streaming ${bigChunks} MiB once, to show memory does not grow with the output`);
      const bigSampler = new MemorySampler(server.apiPid);
      const bigStarted = now();
      const bigOutcome = await api.execute({ code: printCode(bigChunks), context_id: contextId });
      const bigSeconds = (now() - bigStarted) / 1000;
      const big = bigSampler.stop();
      if (bigOutcome.streamChars !== bigChunks * MiB)
        throw new Error(`API client received ${bigOutcome.streamChars} of ${bigChunks * MiB} bytes`);

      const rate = (list: Run[]) => list.map((run) => expected / MiB / run.seconds);
      const apiRate = median(rate(runs.api));
      const rawRate = median(rate(runs.raw));
      const rawV1Rate = median(rate(runs.rawV1));
      const apiMemory = runs.api.map((run) => run.memory!);
      const idle = median(apiMemory.map((m) => m.before));
      const growth = max(apiMemory.map((m) => m.peak - m.before));
      const medianGrowth = median(apiMemory.map((m) => m.peak - m.before));
      const peak = max(apiMemory.map((m) => m.peak));
      const slowGrowth = slowApi.peak - slowApi.before;
      const throughputRatio = ratio(apiRate, rawV1Rate);

      const details = [
        `The kernel prints ${chunks} MiB as ${chunks} lines of 1 MiB, flushing each (one IOPub message each). ` +
          `${rounds} rounds per side, alternated, after a warm-up; MiB/s of stdout text, median over the rounds. ` +
          "The API process's RSS is read from /proc/<pid>/status every 10 ms during each run, and its VmHWM (reset through /proc/<pid>/clear_refs before each run) catches peaks between samples. " +
          '"Peak − before" is the largest growth of any run over the RSS just before it: the first fast run usually grows V8\'s heap to a working size that later runs reuse, so the median run says whether memory keeps growing.',
        '',
        table(
          ['Side', 'MiB/s (median)', 'rounds MiB/s', 'API RSS before', 'API peak RSS', 'API peak − before'],
          [
            [
              'raw kernel WebSocket, JSON protocol',
              formatNumber(rawRate),
              rate(runs.raw)
                .map((v) => v.toFixed(0))
                .join(', '),
              '',
              '',
              '',
            ],
            [
              'raw kernel WebSocket, v1 binary protocol (the baseline)',
              formatNumber(rawV1Rate),
              rate(runs.rawV1)
                .map((v) => v.toFixed(0))
                .join(', '),
              '',
              '',
              '',
            ],
            [
              'API `POST /execute`',
              formatNumber(apiRate),
              rate(runs.api)
                .map((v) => v.toFixed(0))
                .join(', '),
              formatMiB(idle),
              formatMiB(peak),
              `${formatMiB(growth)} (median run ${formatMiB(medianGrowth)})`,
            ],
            [
              `API, client reading ${slowRate / MiB} MiB/s`,
              formatNumber(expected / MiB / slowSeconds),
              '',
              formatMiB(slowApi.before),
              formatMiB(slowApi.peak),
              formatMiB(slowGrowth),
            ],
            [
              `API, ${bigChunks} MiB in one run`,
              formatNumber(bigChunks / bigSeconds),
              '',
              formatMiB(big.before),
              formatMiB(big.peak),
              formatMiB(big.peak - big.before),
            ],
          ],
        ),
        '',
        'CPU time per MiB of output, by process (median over the rounds; "client" is the benchmark process):',
        '',
        table(
          ['Side', 'API process ms/MiB', 'Jupyter ms/MiB', 'kernel ms/MiB', 'client ms/MiB'],
          (['raw', 'rawV1', 'api'] as const).map((key) => {
            const per = (pick: (cpu: CpuUsage) => number) =>
              formatNumber(median(runs[key].map((run) => (pick(run.cpu!) * 1000) / (expected / MiB))), 1);
            return [
              { raw: 'raw kernel WebSocket, JSON protocol', rawV1: 'raw kernel WebSocket, v1 binary protocol', api: 'API `POST /execute`' }[
                key
              ],
              key === 'api' ? per((cpu) => cpu.api) : '',
              per((cpu) => cpu.jupyter),
              per((cpu) => cpu.kernels),
              per((cpu) => cpu.client),
            ];
          }),
        ),
        '',
        `With the slow client, Jupyter's own RSS went from ${formatMiB(slowJupyter.before)} to a peak of ${formatMiB(slowJupyter.peak)} ` +
          `(+${formatMiB(slowJupyter.peak - slowJupyter.before)}): the API stops reading the kernel socket when the client falls behind, so the backlog waits upstream (socket buffers, Jupyter's write buffer), not in the API.`,
      ].join('\n');

      return {
        summary: [
          {
            benchmark: `Streaming ${chunks} MiB of stdout`,
            ours: `${formatNumber(apiRate)} MiB/s`,
            baseline: `${formatNumber(rawV1Rate)} MiB/s (raw WebSocket, v1 protocol)`,
            ratio: formatRatioAgainst(throughputRatio, THROUGHPUT_TARGET),
            target: `≥ ${THROUGHPUT_TARGET.toFixed(2)}x`,
            met: throughputRatio >= THROUGHPUT_TARGET,
          },
          {
            benchmark: 'Streaming: API peak memory',
            ours: `+${formatMiB(growth)} (peak ${formatMiB(peak)}; median run +${formatMiB(medianGrowth)})`,
            baseline: `idle ${formatMiB(idle)}`,
            ratio: '',
            target: '≤ idle + 64 MiB',
            met: growth <= MEMORY_BUDGET,
          },
          {
            benchmark: `Streaming to a slow reader (${slowRate / MiB} MiB/s): API peak memory`,
            ours: `+${formatMiB(slowGrowth)} (peak ${formatMiB(slowApi.peak)})`,
            baseline: `idle ${formatMiB(slowApi.before)}`,
            ratio: '',
            target: '≤ idle + 64 MiB',
            met: slowGrowth <= MEMORY_BUDGET,
          },
        ],
        details,
        data: {
          chunks,
          runs,
          slow: { rate: slowRate, seconds: slowSeconds, api: slowApi, jupyter: slowJupyter },
          big: { chunks: bigChunks, seconds: bigSeconds, api: big },
        },
      };
    } finally {
      await api.deleteContext(contextId).catch(() => undefined);
      await stopRawKernel(rest, raw).catch(() => undefined);
      await stopRawKernel(rest, rawV1).catch(() => undefined);
    }
  },
};
