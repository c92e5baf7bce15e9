import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import WebSocket from 'ws';

/**
 * The floor: a minimal hand-written Jupyter client. Kernels are started through Jupyter's REST
 * API and driven over the kernel WebSocket with JSON messages, as any Jupyter front end does.
 * Nothing here is shared with the server under test.
 */
export class JupyterRest {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  private async call(method: string, route: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.url}${route}`, {
      method,
      headers: { authorization: `token ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`Jupyter ${method} ${route} answered ${response.status}: ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : undefined;
  }

  /** `POST /api/kernels`; `cwd` is an absolute directory (Jupyter takes it relative to its root, `/` here). */
  async startKernel(cwd?: string, name = 'python3'): Promise<string> {
    const body: Record<string, string> = { name };
    if (cwd !== undefined) body.path = path.relative('/', cwd);
    const model = (await this.call('POST', '/api/kernels', body)) as { id: string };
    return model.id;
  }

  async shutdownKernel(id: string): Promise<void> {
    await this.call('DELETE', `/api/kernels/${id}`);
  }

  async status(): Promise<void> {
    await this.call('GET', '/api/status');
  }
}

interface JupyterMessage {
  header: { msg_id: string; msg_type: string };
  parent_header: { msg_id?: string };
  channel?: string;
  content: Record<string, unknown>;
}

export interface RawExecuteResult {
  status: string;
  /** Characters of stdout/stderr text received (bytes, for the ASCII output the benchmarks print). */
  streamChars: number;
  /** `text/plain` of the execute_result, if any. */
  result: string | undefined;
}

interface Pending {
  reply: JupyterMessage | undefined;
  idle: boolean;
  streamChars: number;
  result: string | undefined;
  resolve: (value: JupyterMessage) => void;
  reject: (error: Error) => void;
}

const REQUEST_TIMEOUT_MS = 120_000;

export class RawKernelClient {
  private readonly pending = new Map<string, Pending>();
  private readonly session = randomUUID();
  private closedError: Error | undefined;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      // jupyter_server sends binary frames only for messages that carry buffers; none here.
      if (isBinary) return;
      this.onMessage(JSON.parse(data.toString()) as JupyterMessage);
    });
    socket.on('close', () => this.failAll(new Error('kernel WebSocket closed')));
    socket.on('error', (error) => this.failAll(error));
  }

  static async connect(jupyterUrl: string, token: string, kernelId: string): Promise<RawKernelClient> {
    const wsUrl = `${jupyterUrl.replace(/^http/, 'ws')}/api/kernels/${kernelId}/channels?token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(wsUrl, { perMessageDeflate: false });
    const client = new RawKernelClient(socket);
    await once(socket, 'open');
    return client;
  }

  /** Sends kernel_info_request and resolves on the reply: the kernel is up and answering. */
  async kernelInfo(): Promise<void> {
    const reply = await this.request('kernel_info_request', {});
    if (reply.content.status !== 'ok') throw new Error(`kernel_info_reply status ${String(reply.content.status)}`);
  }

  /** Runs code; resolves once both execute_reply and the IOPub idle status for it arrived. */
  async execute(code: string): Promise<RawExecuteResult> {
    let pending: Pending | undefined;
    const reply = await this.request(
      'execute_request',
      { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: false },
      (entry) => (pending = entry),
    );
    return { status: String(reply.content.status), streamChars: pending!.streamChars, result: pending!.result };
  }

  close(): void {
    this.socket.close();
  }

  private request(msgType: string, content: Record<string, unknown>, onPending?: (entry: Pending) => void): Promise<JupyterMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    const msgId = randomUUID();
    const message = {
      header: { msg_id: msgId, msg_type: msgType, username: 'bench', session: this.session, date: new Date().toISOString(), version: '5.3' },
      parent_header: {},
      metadata: {},
      content,
      channel: 'shell',
      buffers: [],
    };
    return new Promise<JupyterMessage>((resolve, reject) => {
      // A benchmark must end with an error, never hang, when the kernel stops answering.
      const timer = setTimeout(() => this.fail(msgId, new Error(`no ${msgType.replace('_request', '_reply')} and idle within ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
      const entry: Pending = {
        reply: undefined,
        idle: false,
        streamChars: 0,
        result: undefined,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      onPending?.(entry);
      this.pending.set(msgId, entry);
      this.socket.send(JSON.stringify(message), (error) => {
        if (error) this.fail(msgId, error);
      });
    });
  }

  private onMessage(message: JupyterMessage): void {
    const parent = message.parent_header?.msg_id;
    if (!parent) return;
    const entry = this.pending.get(parent);
    if (!entry) return;
    switch (message.header.msg_type) {
      case 'stream':
        entry.streamChars += (message.content.text as string).length;
        break;
      case 'execute_result':
        entry.result = (message.content.data as Record<string, string>)['text/plain'];
        break;
      case 'status':
        if (message.content.execution_state === 'idle') entry.idle = true;
        break;
      default:
        if (message.channel === 'shell' && message.header.msg_type.endsWith('_reply')) entry.reply = message;
    }
    if (entry.reply && entry.idle) {
      this.pending.delete(parent);
      entry.resolve(entry.reply);
    }
  }

  private fail(msgId: string, error: Error): void {
    const entry = this.pending.get(msgId);
    if (!entry) return;
    this.pending.delete(msgId);
    entry.reject(error);
  }

  private failAll(error: Error): void {
    this.closedError ??= error;
    for (const id of [...this.pending.keys()]) this.fail(id, error);
  }
}

/** A kernel of its own, started through REST, with a raw WebSocket client connected to it. */
export interface RawKernel {
  id: string;
  client: RawKernelClient;
}

export async function startRawKernel(rest: JupyterRest, cwd?: string): Promise<RawKernel> {
  const id = await rest.startKernel(cwd);
  const client = await RawKernelClient.connect(rest.url, rest.token, id);
  await client.kernelInfo();
  return { id, client };
}

export async function stopRawKernel(rest: JupyterRest, kernel: RawKernel): Promise<void> {
  kernel.client.close();
  await rest.shutdownKernel(kernel.id);
}
