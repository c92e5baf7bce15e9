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

  /** `POST /api/kernels/{id}/restart`: answers once Jupyter has started the new process. */
  async restartKernel(id: string): Promise<void> {
    await this.call('POST', `/api/kernels/${id}/restart`);
  }

  async listKernels(): Promise<Array<{ id: string; name: string }>> {
    return (await this.call('GET', '/api/kernels')) as Array<{ id: string; name: string }>;
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

/**
 * How messages travel on the kernel WebSocket: `json` (the original protocol: one JSON text
 * frame per message, which Jupyter decodes and re-encodes), or `v1`
 * (`v1.kernel.websocket.jupyter.org`: binary frames holding the message's ZMQ parts, which
 * Jupyter forwards without decoding; what @jupyterlab/services, and so the server, negotiates).
 */
export type WireProtocol = 'json' | 'v1';

const V1_SUBPROTOCOL = 'v1.kernel.websocket.jupyter.org';

/** Encodes a message as a v1 frame: offsets, channel, then header, parent_header, metadata, content. */
function encodeV1(channel: string, parts: Buffer[]): Buffer {
  const channelBytes = Buffer.from(channel, 'utf8');
  const offsets = [8 * (1 + 1 + parts.length + 1)];
  offsets.push(offsets[0]! + channelBytes.length);
  for (const part of parts) offsets.push(offsets.at(-1)! + part.length);
  const head = Buffer.alloc(8 * (offsets.length + 1));
  head.writeBigUInt64LE(BigInt(offsets.length), 0);
  offsets.forEach((offset, i) => head.writeBigUInt64LE(BigInt(offset), 8 * (i + 1)));
  return Buffer.concat([head, channelBytes, ...parts]);
}

function decodeV1(frame: Buffer): JupyterMessage {
  const count = Number(frame.readBigUInt64LE(0));
  const offsets = Array.from({ length: count }, (_, i) => Number(frame.readBigUInt64LE(8 * (i + 1))));
  const part = (i: number) => frame.subarray(offsets[i], i + 1 < count ? offsets[i + 1]! : frame.length);
  const json = (i: number) => JSON.parse(part(i).toString('utf8')) as Record<string, unknown>;
  return {
    channel: part(0).toString('utf8'),
    header: json(1) as JupyterMessage['header'],
    parent_header: json(2),
    content: json(4),
  };
}

export class RawKernelClient {
  private readonly pending = new Map<string, Pending>();
  private readonly session = randomUUID();
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: WebSocket,
    readonly protocol: WireProtocol,
  ) {
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (protocol === 'v1') {
        this.onMessage(decodeV1(data as Buffer));
      } else if (!isBinary) {
        // With the JSON protocol, binary frames carry messages with buffers only; none here.
        this.onMessage(JSON.parse((data as Buffer).toString('utf8')) as JupyterMessage);
      }
    });
    socket.on('close', () => this.failAll(new Error('kernel WebSocket closed')));
    socket.on('error', (error) => this.failAll(error));
  }

  static async connect(jupyterUrl: string, token: string, kernelId: string, protocol: WireProtocol = 'json'): Promise<RawKernelClient> {
    const wsUrl = `${jupyterUrl.replace(/^http/, 'ws')}/api/kernels/${kernelId}/channels?token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(wsUrl, protocol === 'v1' ? [V1_SUBPROTOCOL] : [], { perMessageDeflate: false });
    const client = new RawKernelClient(socket, protocol);
    await once(socket, 'open');
    if (protocol === 'v1' && socket.protocol !== V1_SUBPROTOCOL) {
      socket.close();
      throw new Error(`Jupyter did not accept the ${V1_SUBPROTOCOL} subprotocol`);
    }
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
    const header = {
      msg_id: msgId,
      msg_type: msgType,
      username: 'bench',
      session: this.session,
      date: new Date().toISOString(),
      version: '5.3',
    };
    const frame =
      this.protocol === 'v1'
        ? encodeV1(
            'shell',
            [header, {}, {}, content].map((part) => Buffer.from(JSON.stringify(part), 'utf8')),
          )
        : JSON.stringify({ header, parent_header: {}, metadata: {}, content, channel: 'shell', buffers: [] });
    return new Promise<JupyterMessage>((resolve, reject) => {
      // A benchmark must end with an error, never hang, when the kernel stops answering.
      const timer = setTimeout(
        () => this.fail(msgId, new Error(`no ${msgType.replace('_request', '_reply')} and idle within ${REQUEST_TIMEOUT_MS / 1000} s`)),
        REQUEST_TIMEOUT_MS,
      );
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
      this.socket.send(frame, (error) => {
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

export async function startRawKernel(rest: JupyterRest, cwd?: string, protocol: WireProtocol = 'json'): Promise<RawKernel> {
  const id = await rest.startKernel(cwd);
  const client = await RawKernelClient.connect(rest.url, rest.token, id, protocol);
  await client.kernelInfo();
  return { id, client };
}

export async function stopRawKernel(rest: JupyterRest, kernel: RawKernel): Promise<void> {
  kernel.client.close();
  await rest.shutdownKernel(kernel.id);
}
