import { once } from 'node:events';
import WebSocket from 'ws';
import { authHeaders, baseUrl } from '../helpers/api.js';

export interface Frame {
  type: string;
  execution_id?: string;
  request_id?: string | null;
  [key: string]: unknown;
}

export const wsUrl = (base: string = baseUrl) => `${base.replace(/^http/, 'ws')}/ws`;

/**
 * A `ws` client of GET /ws that keeps every frame it receives, in order, and lets a test wait
 * for the ones it expects.
 */
export class WsClient {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) throw new Error('the server sent a binary frame');
      this.frames.push(JSON.parse(data.toString('utf8')) as Frame);
      this.wake();
    });
    socket.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.wake();
    });
  }

  static async open(
    options: { url?: string; headers?: Record<string, string>; protocols?: string[]; autoPong?: boolean } = {},
  ): Promise<WsClient> {
    const socket = new WebSocket(options.url ?? wsUrl(), options.protocols ?? [], {
      headers: options.headers ?? authHeaders(),
      autoPong: options.autoPong ?? true,
    });
    const client = new WsClient(socket);
    await once(socket, 'open');
    return client;
  }

  send(frame: Record<string, unknown> | string): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends `execute` and resolves with its `accepted` (or throws with the `request_error`). */
  async execute(requestId: string, fields: Record<string, unknown>): Promise<string> {
    this.send({ type: 'execute', request_id: requestId, ...fields });
    const answer = await this.waitFor(
      (frame) => frame.request_id === requestId && (frame.type === 'accepted' || frame.type === 'request_error'),
    );
    if (answer.type !== 'accepted') throw new Error(`execute ${requestId} refused: ${JSON.stringify(answer)}`);
    return answer.execution_id as string;
  }

  /** The first frame received so far or later that matches. */
  async waitFor(match: (frame: Frame) => boolean, timeoutMs = 30_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before the frame came`);
      if (Date.now() > deadline) throw new Error(`no such frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Every event of one execution, through its `end_of_execution`. */
  async events(executionId: string, timeoutMs = 30_000): Promise<Frame[]> {
    await this.waitFor((frame) => frame.execution_id === executionId && frame.type === 'end_of_execution', timeoutMs);
    return this.frames.filter((frame) => frame.execution_id === executionId && frame.type !== 'accepted' && frame.type !== 'request_error');
  }

  async waitForClose(timeoutMs = 30_000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`the socket is still open after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.closed;
  }

  close(): void {
    this.socket.close();
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** Connects and resolves with the HTTP answer of a refused upgrade. */
export async function refusedUpgrade(options: {
  url?: string;
  headers?: Record<string, string>;
  protocols?: string[];
}): Promise<{ status: number; body: Record<string, unknown> }> {
  const socket = new WebSocket(options.url ?? wsUrl(), options.protocols ?? [], { headers: options.headers ?? {} });
  socket.on('error', () => undefined);
  const [, response] = (await Promise.race([
    once(socket, 'unexpected-response'),
    once(socket, 'open').then(() => {
      socket.close();
      throw new Error('the upgrade was accepted');
    }),
  ])) as [unknown, import('node:http').IncomingMessage];
  let text = '';
  for await (const chunk of response) text += String(chunk);
  return { status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> };
}

export const stdoutOf = (frames: Frame[]) =>
  frames
    .filter((frame) => frame.type === 'stdout')
    .map((frame) => frame.text as string)
    .join('');
export const mainResultOf = (frames: Frame[]) => frames.find((frame) => frame.type === 'result' && frame.is_main_result === true);
