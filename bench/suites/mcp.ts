import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { backToBackTable, measureBackToBack, type BackToBackSide } from '../lib/back-to-back.js';
import { formatNumber, formatRatio, ratio } from '../lib/stats.js';
import { type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

/**
 * What MCP costs on top of the HTTP API: back-to-back `1+1` through the official SDK's client
 * (`execute_code`, answered as one SSE message) against `POST /execute` with its NDJSON read to
 * the end, each on a context of its own on the same server. No target: the figure says what an
 * agent pays for speaking MCP.
 */
export const mcp: Suite = {
  name: 'mcp',
  title: 'MCP: `execute_code` against `POST /execute`',
  shared: true,
  async run(env: BenchEnv, { server, api }: SharedServer): Promise<SuiteResult> {
    const rounds = env.quick ? 3 : 8;
    const perRound = env.quick ? 20 : 60;
    const warmUp = env.quick ? 10 : 20;

    const contextId = await api.createContext();
    const client = new Client({ name: 'bench', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${server.baseUrl}/mcp`));
    await client.connect(transport);
    try {
      const callTool = async (args: Record<string, unknown>) => {
        const result = (await client.callTool({ name: 'execute_code', arguments: args })) as CallToolResult;
        const first = result.content[0];
        return first?.type === 'text' ? first.text : undefined;
      };
      const sides: BackToBackSide[] = [
        {
          key: 'api',
          label: 'API `POST /execute` (context_id)',
          run: async () => (await api.execute({ code: '1+1', context_id: contextId })).result ?? undefined,
        },
        { key: 'mcp', label: "MCP `execute_code` (the session's context)", run: () => callTool({ code: '1+1' }) },
        {
          key: 'mcpProgress',
          label: 'MCP `execute_code` with a progress token',
          run: async () => {
            const result = (await client.callTool({ name: 'execute_code', arguments: { code: '1+1' } }, undefined, {
              onprogress: () => undefined,
            })) as CallToolResult;
            const first = result.content[0];
            return first?.type === 'text' ? first.text : undefined;
          },
        },
      ];
      const stats = await measureBackToBack(env, 'mcp', sides, { rounds, perRound, warmUp });
      const base = stats.api!;
      const details = [
        `${rounds} rounds of ${perRound} back-to-back \`1+1\` per side, sides interleaved (order rotated each round), after ${warmUp} warm-up executions. ` +
          "The MCP side is the SDK's `Client` with `StreamableHTTPClientTransport`, in one session; a call is complete when its result has been parsed. " +
          'The API side reads the NDJSON to `end_of_execution`. Each side has a context of its own.',
        '',
        backToBackTable(sides, stats, 'api', 'API'),
      ].join('\n');
      return {
        summary: [
          {
            benchmark: 'MCP `execute_code` `1+1` p50',
            ours: `${formatNumber(stats.mcp!.p50, 2)} ms`,
            baseline: `${formatNumber(base.p50, 2)} ms (POST /execute)`,
            ratio: formatRatio(ratio(stats.mcp!.p50, base.p50)),
            target: '',
            met: undefined,
          },
        ],
        details,
        data: stats,
      };
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
      await api.deleteContext(contextId).catch(() => undefined);
    }
  },
};
