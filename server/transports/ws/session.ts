import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { AlreadyAttachedError, InvalidFrameError } from '../../errors.js';
import type { ExecutionManager } from '../../executions/manager.js';
import type { Logger } from '../../logger.js';
import type { ProcessManager } from '../../processes/manager.js';
import type { WorkspaceWatches } from '../../workspace/watches.js';
import type { BoundContext } from '../start-process.js';
import { toContractError } from '../errors.js';
import { toStartExecution } from '../start-execution.js';
import type { AttachFrame, ExecuteFrame, InputFrame, InterruptFrame } from '../../schemas/ws.js';
import { FrameRefusal, parseFrame, type FrameIds } from './frames.js';
import { SocketProcesses } from './processes.js';
import { SocketWatches } from './watches.js';
import { FrameSender, REPLY_ALLOWANCE_BYTES, SOCKET_HIGH_WATER_BYTES } from './sender.js';

type Execution = Awaited<ReturnType<ExecutionManager['start']>>;
type Entry = Execution['read'] extends (options: never) => AsyncIterable<infer T> ? T : never;

export interface SessionOptions {
  executions: ExecutionManager;
  processes: ProcessManager;
  watches: WorkspaceWatches;
  /** The context a `process_start` names; throws when there is none. */
  findContext: (id: string) => BoundContext;
  log: Logger;
  /** The upgrade request's id: what an ERR_INTERNAL message points the operator to in the log. */
  socketId: string;
  /** Ping interval in ms; a socket that has not answered the previous ping is closed. 0: none. */
  keepaliveIntervalMs: number;
}

/**
 * One client socket of `GET /ws`: a thin transport over the executions, like POST /execute.
 * It reads frames, hands them to the execution manager and writes each execution's events
 * back with its id. Executions it starts read as their requester: when the socket goes, each
 * follows its `on_disconnect` policy.
 */
export class SocketSession {
  /** Each execution whose events this socket receives, and the signal that stops its reader. */
  private readonly readers = new Map<string, AbortController>();
  /** `execute` frames are started one after the other, so that one context runs them in order. */
  private starting: Promise<unknown> = Promise.resolve();
  private readonly sender: FrameSender;
  private readonly processes: SocketProcesses;
  private readonly watches: SocketWatches;
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private answered = true;
  private closed = false;
  private readonly openedAt = Date.now();
  private executionCount = 0;

  constructor(
    private readonly socket: WebSocket,
    connection: Socket,
    private readonly options: SessionOptions,
  ) {
    this.sender = new FrameSender(socket, connection, () =>
      options.log.info(
        { highWaterBytes: SOCKET_HIGH_WATER_BYTES, allowanceBytes: REPLY_ALLOWANCE_BYTES },
        'websocket closed: the client sends frames but does not read the answers',
      ),
    );
    this.processes = new SocketProcesses({
      processes: options.processes,
      findContext: options.findContext,
      sender: this.sender,
      log: options.log,
      socketId: options.socketId,
      refuse: (error, ids) => this.refuse(error, ids),
      reply: (frame) => this.sendJson(frame),
    });
    this.watches = new SocketWatches({
      watches: options.watches,
      sender: this.sender,
      log: options.log,
      socketId: options.socketId,
      refuse: (error, ids) => this.refuse(error, ids),
      reply: (frame) => this.sendJson(frame),
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    socket.on('pong', () => (this.answered = true));
    socket.on('close', (code: number) => this.onClose(code));
    if (options.keepaliveIntervalMs > 0) {
      this.heartbeat = setInterval(() => this.ping(), options.keepaliveIntervalMs);
    }
  }

  private ping(): void {
    if (!this.answered) {
      // No pong for a whole interval: the peer or the path to it is gone, and a close
      // handshake would wait for it too.
      this.options.log.info({ intervalMs: this.options.keepaliveIntervalMs }, 'websocket closed: no answer to ping');
      this.socket.terminate();
      return;
    }
    this.answered = false;
    this.socket.ping();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    // Whatever comes in shows the peer is there.
    this.answered = true;
    if (isBinary) {
      this.refuse(new InvalidFrameError('Binary frames are not accepted: send JSON text frames'), { request_id: null });
      return;
    }
    const frame = parseFrame(data.toString('utf8'));
    if (frame instanceof FrameRefusal) {
      this.refuse(frame.error, frame.ids);
      return;
    }
    switch (frame.type) {
      case 'execute':
        this.execute(frame);
        break;
      case 'input':
        this.input(frame);
        break;
      case 'interrupt':
        this.interrupt(frame);
        break;
      case 'attach':
        this.attach(frame);
        break;
      case 'watch_start':
      case 'watch_stop':
        this.watches.handle(frame);
        break;
      default:
        this.processes.handle(frame);
        break;
    }
  }

  private execute(frame: ExecuteFrame): void {
    const ids = { request_id: frame.request_id ?? null };
    const request = toStartExecution(frame);
    // A socket closed while earlier frames were starting runs nothing more.
    const started = this.starting.then(() => (this.closed ? undefined : this.options.executions.start(request)));
    this.starting = started.catch(() => undefined);
    started.then(
      (execution) => {
        if (!execution) return;
        this.executionCount++;
        this.follow(execution, ids.request_id, { requester: true });
      },
      (error: unknown) => this.refuse(error, ids),
    );
  }

  private input(frame: InputFrame): void {
    try {
      this.options.executions.get(frame.execution_id).provideInput(frame.value, frame.input_id);
    } catch (error) {
      this.refuse(error, { request_id: frame.request_id ?? null, execution_id: frame.execution_id });
    }
  }

  private interrupt(frame: InterruptFrame): void {
    try {
      this.options.executions.get(frame.execution_id).interrupt();
    } catch (error) {
      this.refuse(error, { request_id: frame.request_id ?? null, execution_id: frame.execution_id });
    }
  }

  private attach(frame: AttachFrame): void {
    const ids = { request_id: frame.request_id ?? null, execution_id: frame.execution_id };
    try {
      const execution = this.options.executions.get(frame.execution_id);
      // A finished execution's reader ends on its own, after the log it has: another attach in
      // the same burst replays it again rather than being refused for a reader about to end.
      if (this.readers.has(execution.id) && !execution.isFinished) throw new AlreadyAttachedError(`execution ${execution.id}`);
      this.follow(execution, ids.request_id, { requester: false, from: frame.from ?? 0 });
    } catch (error) {
      this.refuse(error, ids);
    }
  }

  /** Says `accepted`, then sends the execution's events until its end or the socket's. */
  private follow(execution: Execution, requestId: string | null, read: { requester: boolean; from?: number }): void {
    const reader = new AbortController();
    // Gone already: reading once with an aborted signal is what applies the disconnect policy.
    if (this.closed) reader.abort();
    else this.readers.set(execution.id, reader);
    this.sendJson({ type: 'accepted', request_id: requestId, execution_id: execution.id, context_id: execution.contextId });
    void this.pump(execution, reader, { ...read, signal: reader.signal });
  }

  private async pump(execution: Execution, reader: AbortController, read: { requester: boolean; from?: number; signal: AbortSignal }) {
    const suffix = Buffer.from(`,"execution_id":${JSON.stringify(execution.id)}}`);
    try {
      for await (const entry of execution.read(read)) {
        if (!this.sender.send(toFrame(entry, suffix))) await this.sender.waitForRoom();
      }
    } catch (error) {
      this.options.log.warn({ err: error, execution: execution.id }, 'websocket reader failed');
    } finally {
      if (this.readers.get(execution.id) === reader) this.readers.delete(execution.id);
    }
  }

  /** `request_error` with the status and code HTTP answers the same request with. */
  private refuse(error: unknown, ids: FrameIds): void {
    const answer = toContractError(error, { id: this.options.socketId, headers: {} }).toBody();
    if (answer.statusCode >= 500) this.options.log.error({ err: error, code: answer.code }, 'websocket request failed');
    else this.options.log.debug({ code: answer.code, message: answer.message }, 'websocket request refused');
    this.sendJson({ type: 'request_error', ...ids, status: answer.statusCode, code: answer.code, message: answer.message });
  }

  /** An answer to a client's frame (accepted, request_error). */
  private sendJson(frame: Record<string, unknown>): void {
    this.sender.reply(JSON.stringify(frame));
  }

  private onClose(code: number): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    const running = this.readers.size;
    const followingProcesses = this.processes.following;
    for (const reader of this.readers.values()) reader.abort();
    this.readers.clear();
    this.processes.close();
    this.watches.close();
    this.options.log.info(
      {
        code,
        executions: this.executionCount,
        following: running,
        processes: this.processes.started,
        followingProcesses,
        durationMs: Date.now() - this.openedAt,
      },
      'websocket closed',
    );
  }
}

/**
 * The event's NDJSON line with the execution's id added as its last field: the line is
 * serialized once for every reader, and splicing bytes costs less than serializing again.
 * `number_of_executions` carries the id already. A line always ends with `}` and a newline.
 */
function toFrame(entry: Entry, suffix: Buffer): Buffer {
  const { line } = entry;
  if (entry.type === 'number_of_executions') return line.subarray(0, line.length - 1);
  return Buffer.concat([line.subarray(0, line.length - 2), suffix], line.length - 2 + suffix.length);
}
