import { formatNumber, formatRatio, now, percentile, ratio } from '../lib/stats.js';
import { RawKernelClient } from '../lib/raw-kernel.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

/**
 * `POST /contexts` until its 200, against what Jupyter itself needs for the same: `POST
 * /api/kernels`, then the kernel WebSocket and the first kernel_info_reply over it.
 */
export const contexts: Suite = {
  name: 'contexts',
  title: '5. Context creation',
  shared: true,
  async run(env: BenchEnv, { server, api, rest }: SharedServer): Promise<SuiteResult> {
    const rounds = env.quick ? 3 : 10;

    const sides = [
      {
        key: 'api' as const,
        run: async (): Promise<number> => {
          const started = now();
          const id = await api.createContext();
          const elapsed = now() - started;
          await api.deleteContext(id);
          return elapsed;
        },
      },
      {
        key: 'raw' as const,
        run: async (): Promise<number> => {
          const started = now();
          const id = await rest.startKernel(server.workspaceDir);
          const client = await RawKernelClient.connect(rest.url, rest.token, id);
          await client.kernelInfo();
          const elapsed = now() - started;
          client.close();
          await rest.shutdownKernel(id);
          return elapsed;
        },
      },
    ];

    for (const side of sides) await side.run();
    const times = { api: [] as number[], raw: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      env.progress(`context creation round ${round + 1}/${rounds}`);
      for (const side of roundOrder(sides, round)) times[side.key].push(await side.run());
    }

    const p50 = { api: percentile(times.api, 50), raw: percentile(times.raw, 50) };
    const value = ratio(p50.api, p50.raw);
    const details = [
      `${rounds} creations per side after one warm-up each, alternated; each kernel is shut down (untimed) before the next is created.`,
      '',
      table(
        ['Side', 'p50 ms', 'p90 ms', 'min ms', 'max ms'],
        [
          ['API `POST /contexts` → 200', ...[50, 90, 0, 100].map((p) => formatNumber(percentile(times.api, p), 0))],
          ['Jupyter `POST /api/kernels` + WebSocket + kernel_info_reply', ...[50, 90, 0, 100].map((p) => formatNumber(percentile(times.raw, p), 0))],
        ],
      ),
    ].join('\n');

    return {
      summary: [
        {
          benchmark: 'Context creation p50',
          ours: `${formatNumber(p50.api, 0)} ms`,
          baseline: `${formatNumber(p50.raw, 0)} ms (Jupyter kernel start + kernel_info_reply)`,
          ratio: formatRatio(value),
          target: '',
          met: undefined,
        },
      ],
      details,
      data: times,
    };
  },
};
