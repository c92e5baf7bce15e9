import { once } from 'node:events';
import WebSocket from 'ws';
import { backToBackTable, measureBackToBack, type BackToBackSide } from '../lib/back-to-back.js';
import { formatNumber, formatRatio, formatRatioAgainst, ratio } from '../lib/stats.js';
import { startRawKernel, stopRawKernel } from '../lib/raw-kernel.js';
import { type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const TARGET = 1.05;

/**
 * The API's WebSocket (`GET /ws`) as a client uses it: one socket, `execute` frames sent one
 * after the other, each complete when its `end_of_execution` frame arrives. Every frame is
 * parsed, as a client must to find that one.
 */
class ApiSocket {
  private pending:
    | {
        id?: string;
        requestId: string;
        result: string | undefined;
        resolve: (result: string | undefined) => void;
        reject: (error: Error) => void;
      }
    | undefined;
  private counter = 0;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => this.onFrame(JSON.parse(data.toString('utf8')) as Record<string, unknown>));
    socket.on('close', () => this.pending?.reject(new Error('the API closed the WebSocket')));
  }

  static async connect(baseUrl: string): Promise<ApiSocket> {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
    const client = new ApiSocket(socket);
    await once(socket, 'open');
    return client;
  }

  execute(code: string, contextId: string): Promise<string | undefined> {
    const requestId = `r${++this.counter}`;
    return new Promise((resolve, reject) => {
      this.pending = { requestId, result: undefined, resolve, reject };
      this.socket.send(JSON.stringify({ type: 'execute', request_id: requestId, context_id: contextId, code }));
    });
  }

  close(): void {
    this.socket.close();
  }

  private onFrame(frame: Record<string, unknown>): void {
    const pending = this.pending;
    if (!pending) return;
    if (frame.type === 'request_error') {
      this.pending = undefined;
      pending.reject(new Error(`GET /ws refused the execution: ${JSON.stringify(frame)}`));
    } else if (frame.type === 'accepted' && frame.request_id === pending.requestId) {
      pending.id = frame.execution_id as string;
    } else if (frame.execution_id !== pending.id) {
      return;
    } else if (frame.type === 'result' && frame.is_main_result === true) {
      pending.result = frame.text as string;
    } else if (frame.type === 'error') {
      this.pending = undefined;
      pending.reject(new Error(`error event: ${JSON.stringify(frame)}`));
    } else if (frame.type === 'end_of_execution') {
      this.pending = undefined;
      pending.resolve(pending.result);
    }
  }
}

/**
 * Back-to-back `1+1` over one WebSocket to the API, against the raw kernel WebSocket client,
 * with POST /execute beside them: what a persistent socket saves over a request per execution.
 */
export const ws: Suite = {
  name: 'ws',
  title: 'WebSocket latency: back-to-back `1+1` over `GET /ws`',
  shared: true,
  async run(env: BenchEnv, { server, api, rest }: SharedServer): Promise<SuiteResult> {
    const rounds = env.quick ? 3 : 10;
    const perRound = env.quick ? 30 : 100;
    const warmUp = env.quick ? 10 : 30;

    const raw = await startRawKernel(rest, server.workspaceDir);
    const rawV1 = await startRawKernel(rest, server.workspaceDir, 'v1');
    const wsContext = await api.createContext();
    const httpContext = await api.createContext();
    const socket = await ApiSocket.connect(server.baseUrl);
    try {
      const sides: BackToBackSide[] = [
        { key: 'raw', label: 'raw kernel WebSocket (`ws`, JSON protocol)', run: async () => (await raw.client.execute('1+1')).result },
        {
          key: 'rawV1',
          label: 'raw kernel WebSocket (`ws`, v1 binary protocol)',
          run: async () => (await rawV1.client.execute('1+1')).result,
        },
        { key: 'ws', label: 'API `GET /ws` (one socket, `execute` frames)', run: () => socket.execute('1+1', wsContext) },
        {
          key: 'http',
          label: 'API `POST /execute` (context_id)',
          run: async () => (await api.execute({ code: '1+1', context_id: httpContext })).result,
        },
      ];

      const stats = await measureBackToBack(env, 'ws', sides, { rounds, perRound, warmUp });
      const rawStats = stats.raw!;
      const wsRatio = ratio(stats.ws!.p50, rawStats.p50);
      const details = [
        `${rounds} rounds of ${perRound} back-to-back executions per side, sides interleaved (order rotated each round), ` +
          `after ${warmUp} warm-up executions per side. Each side has a kernel of its own on the same Jupyter. ` +
          'The WebSocket side keeps one socket open and sends one `execute` frame at a time, complete when its `end_of_execution` frame has arrived (every frame parsed); ' +
          'the raw client is complete when it has both `execute_reply` and IOPub `idle`; `POST /execute` when its NDJSON has been read to the end.',
        '',
        backToBackTable(sides, stats, 'raw', 'raw'),
      ].join('\n');

      return {
        summary: [
          {
            benchmark: 'WebSocket `1+1` p50',
            ours: `${formatNumber(stats.ws!.p50, 2)} ms`,
            baseline: `${formatNumber(rawStats.p50, 2)} ms (raw WebSocket)`,
            ratio: formatRatioAgainst(wsRatio, TARGET),
            target: `≤ ${TARGET.toFixed(2)}x`,
            met: wsRatio <= TARGET,
          },
          {
            benchmark: 'WebSocket `1+1` p99',
            ours: `${formatNumber(stats.ws!.p99, 2)} ms`,
            baseline: `${formatNumber(rawStats.p99, 2)} ms (raw WebSocket)`,
            ratio: formatRatio(ratio(stats.ws!.p99, rawStats.p99)),
            target: '',
            met: undefined,
          },
        ],
        details,
        data: stats,
      };
    } finally {
      socket.close();
      await api.deleteContext(wsContext).catch(() => undefined);
      await api.deleteContext(httpContext).catch(() => undefined);
      await stopRawKernel(rest, raw).catch(() => undefined);
      await stopRawKernel(rest, rawV1).catch(() => undefined);
    }
  },
};
