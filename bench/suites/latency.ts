import { backToBackTable, measureBackToBack, type BackToBackSide } from '../lib/back-to-back.js';
import { formatNumber, formatRatio, formatRatioAgainst, ratio } from '../lib/stats.js';
import { ApiClient } from '../lib/api-client.js';
import { spawnHelper } from '../lib/processes.js';
import { stopProcess } from '../../tests/helpers/processes.js';
import { startRawKernel, stopRawKernel } from '../lib/raw-kernel.js';
import { ServicesKernel } from '../lib/services-kernel.js';
import { type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const TARGET = 1.15;

/**
 * Back-to-back `1+1`, each side on a kernel of its own: the API (NDJSON read to its end) against
 * a raw kernel-WebSocket client, with @jupyterlab/services alone in between.
 */
export const latency: Suite = {
  name: 'latency',
  title: '1. Latency: back-to-back `1+1`',
  shared: true,
  async run(env: BenchEnv, { server, api, rest }: SharedServer): Promise<SuiteResult> {
    const rounds = env.quick ? 3 : 10;
    const perRound = env.quick ? 30 : 100;
    const warmUp = env.quick ? 10 : 30;

    const raw = await startRawKernel(rest, server.workspaceDir);
    const rawV1 = await startRawKernel(rest, server.workspaceDir, 'v1');
    const services = await ServicesKernel.start(rest.url, rest.token);
    const contextId = await api.createContext();
    const proxy = await spawnHelper('minimal-proxy.ts', [rest.url, rest.token]);
    const proxyClient = new ApiClient(proxy.url);
    try {
      const sides: BackToBackSide[] = [
        { key: 'raw', label: 'raw kernel WebSocket (`ws`, JSON protocol)', run: async () => (await raw.client.execute('1+1')).result },
        {
          key: 'rawV1',
          label: 'raw kernel WebSocket (`ws`, v1 binary protocol)',
          run: async () => (await rawV1.client.execute('1+1')).result,
        },
        { key: 'services', label: '@jupyterlab/services KernelConnection', run: async () => (await services.execute('1+1')).result },
        {
          key: 'proxy',
          label: 'minimal `node:http` + @jupyterlab/services proxy',
          run: async () => (await proxyClient.execute({ code: '1+1' })).result,
        },
        {
          key: 'api',
          label: 'API `POST /execute` (context_id)',
          run: async () => (await api.execute({ code: '1+1', context_id: contextId })).result,
        },
        { key: 'apiDefault', label: 'API `POST /execute` (default context)', run: async () => (await api.execute({ code: '1+1' })).result },
      ];

      const stats = await measureBackToBack(env, 'latency', sides, { rounds, perRound, warmUp });
      const rawStats = stats.raw!;
      const apiRatio = ratio(stats.api!.p50, rawStats.p50);
      const details = [
        `${rounds} rounds of ${perRound} back-to-back executions per side, sides interleaved (order rotated each round), ` +
          `after ${warmUp} warm-up executions per side. Each side has a kernel of its own on the same Jupyter. ` +
          "An execution is complete when the raw client has both `execute_reply` and IOPub `idle`, and when the API's NDJSON has been read to `end_of_execution`. " +
          "Percentiles pool every round. The minimal proxy (bench/lib/minimal-proxy.ts: `node:http` and @jupyterlab/services with no framework, validation, logging or queue, in a process of its own) prices the extra hop itself; the API's own cost is what remains above it. The baseline is the raw client on the JSON protocol; @jupyterlab/services, and so the API, negotiate the v1 binary protocol, which spares Jupyter decoding and re-encoding each message.",
        '',
        backToBackTable(sides, stats, 'raw', 'raw'),
      ].join('\n');

      return {
        summary: [
          {
            benchmark: 'Latency `1+1` p50',
            ours: `${formatNumber(stats.api!.p50, 2)} ms`,
            baseline: `${formatNumber(rawStats.p50, 2)} ms (raw WebSocket)`,
            ratio: formatRatioAgainst(apiRatio, TARGET),
            target: `≤ ${TARGET.toFixed(2)}x`,
            met: apiRatio <= TARGET,
          },
          {
            benchmark: 'Latency `1+1` p99',
            ours: `${formatNumber(stats.api!.p99, 2)} ms`,
            baseline: `${formatNumber(rawStats.p99, 2)} ms (raw WebSocket)`,
            ratio: formatRatio(ratio(stats.api!.p99, rawStats.p99)),
            target: '',
            met: undefined,
          },
        ],
        details,
        data: stats,
      };
    } finally {
      await proxyClient.close();
      await stopProcess(proxy.child);
      await api.deleteContext(contextId).catch(() => undefined);
      await services.stop().catch(() => undefined);
      await stopRawKernel(rest, raw).catch(() => undefined);
      await stopRawKernel(rest, rawV1).catch(() => undefined);
    }
  },
};
