import { AlreadyAttachedError, InvalidRequestError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { ProcessManager } from '../../processes/manager.js';
import { READER_DETACHED, type ManagedProcess } from '../../processes/process.js';
import type {
  ProcessAttachFrame,
  ProcessCloseStdinFrame,
  ProcessDetachFrame,
  ProcessInputFrame,
  ProcessResizeFrame,
  ProcessSignalFrame,
  ProcessStartFrame,
} from '../../schemas/ws.js';
import { toStartProcess, type BoundContext } from '../start-process.js';
import type { FrameIds } from './frames.js';
import type { FrameSender } from './sender.js';

type Entry = ManagedProcess['read'] extends (options: never) => AsyncIterable<infer T> ? T : never;

export type ProcessFrame =
  | ProcessStartFrame
  | ProcessInputFrame
  | ProcessCloseStdinFrame
  | ProcessResizeFrame
  | ProcessSignalFrame
  | ProcessAttachFrame
  | ProcessDetachFrame;

/** What the processes of a socket need of the socket's session. */
export interface SocketProcessesOptions {
  processes: ProcessManager;
  /** The context a `process_start` binds to (its cwd is the default); throws when there is none. */
  findContext: (id: string) => BoundContext;
  sender: FrameSender;
  log: Logger;
  /** The socket's id: the owner of the processes started on it. */
  socketId: string;
  /** Answers a refused frame with `request_error`. */
  refuse: (error: unknown, ids: FrameIds) => void;
  /** Sends an answer to a frame (accepted, detached). */
  reply: (frame: Record<string, unknown>) => void;
}

/**
 * The commands and terminals of one `GET /ws` socket, next to its executions: starts them,
 * writes their input, signals and resizes them, and sends the events of each process it
 * follows with the process's id, through the socket's one sender (so a slow client pauses its
 * processes' pipes as it holds back its executions). A process started here belongs to the
 * socket: when the socket closes it is killed with its tree unless it asked to `continue`.
 */
export class SocketProcesses {
  /** Each process whose events this socket receives, and the signal that stops its reader. */
  private readonly readers = new Map<string, AbortController>();
  /** Processes started here that die with the socket; forgotten once they end. */
  private readonly owned = new Map<string, ManagedProcess>();
  private closed = false;
  started = 0;

  constructor(private readonly options: SocketProcessesOptions) {}

  get following(): number {
    return this.readers.size;
  }

  handle(frame: ProcessFrame): void {
    const ids: FrameIds = { request_id: frame.request_id ?? null };
    if (frame.type !== 'process_start') ids.process_id = frame.process_id;
    try {
      switch (frame.type) {
        case 'process_start':
          this.start(frame, ids);
          break;
        case 'process_input':
          this.input(frame, ids);
          break;
        case 'process_close_stdin':
          this.options.processes.get(frame.process_id).closeStdin();
          break;
        case 'process_resize':
          this.options.processes.get(frame.process_id).resize(frame.cols, frame.rows);
          break;
        case 'process_signal':
          this.options.processes.get(frame.process_id).signal(frame.signal);
          break;
        case 'process_attach':
          this.attach(frame, ids);
          break;
        case 'process_detach':
          this.detach(frame, ids);
          break;
      }
    } catch (error) {
      this.options.refuse(error, ids);
    }
  }

  /** The socket closed: every reader stops, and every process started here without `continue` is killed. */
  close(): void {
    this.closed = true;
    for (const reader of this.readers.values()) reader.abort();
    this.readers.clear();
    for (const process of this.owned.values()) void this.options.processes.kill(process);
    this.owned.clear();
  }

  private start(frame: ProcessStartFrame, ids: FrameIds): void {
    const { type: _type, request_id: _requestId, context_id: contextId, ...fields } = frame;
    const context = contextId === undefined ? undefined : this.options.findContext(contextId);
    const request = toStartProcess(fields, { owner: { kind: 'ws', id: this.options.socketId }, context });
    this.options.processes.start(request).then(
      (process) => {
        this.started++;
        if (request.onDisconnect !== 'continue') {
          // Started while the socket was closing: it goes at once, as it would have with the socket.
          if (this.closed) void this.options.processes.kill(process);
          else {
            this.owned.set(process.id, process);
            void process.finished.then(() => this.owned.delete(process.id));
          }
        }
        this.follow(process, ids.request_id, { requester: true });
      },
      (error: unknown) => this.options.refuse(error, ids),
    );
  }

  private input(frame: ProcessInputFrame, ids: FrameIds): void {
    const { data, data_base64: base64 } = frame;
    if ((data === undefined) === (base64 === undefined)) throw new InvalidRequestError('send either data or data_base64');
    const process = this.options.processes.get(frame.process_id);
    const bytes = data !== undefined ? Buffer.from(data, 'utf8') : Buffer.from(base64!, 'base64');
    process.write(bytes, process.pty ? 'pty' : 'stdin').catch((error: unknown) => this.options.refuse(error, ids));
  }

  private attach(frame: ProcessAttachFrame, ids: FrameIds): void {
    const process = this.options.processes.get(frame.process_id);
    // A finished process's reader ends on its own after the log it has: attaching again replays it.
    if (this.readers.has(process.id) && process.isRunning) throw new AlreadyAttachedError(`process ${process.id}`);
    this.follow(process, ids.request_id, { requester: false, from: frame.from ?? 0 });
  }

  private detach(frame: ProcessDetachFrame, ids: FrameIds): void {
    const process = this.options.processes.get(frame.process_id);
    // Not a client gone: the process runs on, and still dies with the socket unless it asked to continue.
    this.readers.get(process.id)?.abort(READER_DETACHED);
    this.readers.delete(process.id);
    this.options.reply({ type: 'detached', request_id: ids.request_id, process_id: process.id });
  }

  /** Says `accepted`, then sends the process's events until its end, a detach or the socket's end. */
  private follow(process: ManagedProcess, requestId: string | null, read: { requester: boolean; from?: number }): void {
    const reader = new AbortController();
    // Gone already: reading once with an aborted signal is what applies the disconnect policy.
    if (this.closed) reader.abort();
    else {
      this.readers.get(process.id)?.abort(READER_DETACHED);
      this.readers.set(process.id, reader);
    }
    this.options.reply({ type: 'accepted', request_id: requestId, process_id: process.id, pid: process.pid ?? null });
    void this.pump(process, reader, { ...read, signal: reader.signal });
  }

  private async pump(process: ManagedProcess, reader: AbortController, read: { requester: boolean; from?: number; signal: AbortSignal }) {
    const suffix = Buffer.from(`,"process_id":${JSON.stringify(process.id)}}`);
    const { sender } = this.options;
    try {
      for await (const entry of process.read(read)) {
        if (!sender.send(toFrame(entry, suffix))) await sender.waitForRoom();
      }
    } catch (error) {
      this.options.log.warn({ err: error, process: process.id }, 'websocket reader failed');
    } finally {
      if (this.readers.get(process.id) === reader) this.readers.delete(process.id);
    }
  }
}

/** The event's NDJSON line with the process's id as its last field; `process_started` carries it already. */
function toFrame(entry: Entry, suffix: Buffer): Buffer {
  const { line } = entry;
  if (entry.type === 'process_started') return line.subarray(0, line.length - 1);
  return Buffer.concat([line.subarray(0, line.length - 2), suffix], line.length - 2 + suffix.length);
}
