import { EventEmitter, once } from 'node:events';
import { connect, type Socket } from 'node:net';
import {
  encodeControl,
  encodeFrame,
  FrameDecoder,
  FrameKind,
  MAX_FRAME_BYTES,
  parseHostEvent,
  type ExitEvent,
  type ProcessSignal,
  type StartErrorCode,
  type StartMessage,
} from '../process-host/protocol.js';

export type OutputStream = 'stdout' | 'stderr' | 'pty';

export interface HostConnectionEvents {
  started: [pid: number];
  output: [stream: OutputStream, data: Buffer];
  exit: [ExitEvent];
  /** The start failed (the host said why), before any `started`. */
  refused: [code: StartErrorCode, message: string];
  /** The connection ended without an exit: the host died or spoke out of turn. */
  lost: [reason: string];
}

/** Input frames stay well under the frame cap, whatever the size of one write. */
const INPUT_CHUNK_BYTES = Math.min(64 * 1024, MAX_FRAME_BYTES - 1);

/**
 * The API's end of one process on the process host: one Unix-socket connection, framed as
 * process-host/protocol.ts says. The connection owns the process: closing it makes the host kill
 * the tree. What the host sends is checked like any input (frame caps, schema), and a peer that
 * breaks the protocol loses the connection, never the API's memory.
 *
 * Reading is paused and resumed by the owner (`pause`/`resume`): a paused connection fills the
 * host's socket buffer, which makes the host pause that child's pipes, which makes the child
 * block in write(2). That is how a slow reader slows the one process it reads, and no other.
 */
export class HostConnection extends EventEmitter<HostConnectionEvents> {
  private readonly socket: Socket;
  private readonly decoder = new FrameDecoder();
  /** No more frames go out: the process ended or its owner closed the connection. */
  private ended = false;
  /** The host said how the process ended (or that it never started), or the loss was reported. */
  private settled = false;
  private closedByOwner = false;

  /** Throws ProtocolError, before any connection is opened, when the start does not fit in a frame. */
  constructor(socketPath: string, start: StartMessage) {
    super();
    const frame = encodeControl(start);
    this.socket = connect(socketPath);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error: Error) => this.end(`process host connection failed: ${error.message}`));
    this.socket.on('close', () => this.end('the process host closed the connection'));
    this.socket.write(frame);
  }

  signal(signal: ProcessSignal): void {
    this.send(encodeControl({ op: 'signal', signal }));
  }

  resize(cols: number, rows: number): void {
    this.send(encodeControl({ op: 'resize', cols, rows }));
  }

  closeStdin(): void {
    this.send(encodeControl({ op: 'close_stdin' }));
  }

  /** Sends input bytes; resolves once the socket took them (after a drain when it was full). */
  async write(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length; offset += INPUT_CHUNK_BYTES) {
      if (this.ended) return;
      if (!this.socket.write(encodeFrame(FrameKind.input, data.subarray(offset, offset + INPUT_CHUNK_BYTES)))) {
        const waiting = new AbortController();
        await Promise.race([once(this.socket, 'drain', waiting), once(this.socket, 'close', waiting)]).catch(() => undefined);
        waiting.abort();
      }
    }
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Ends the connection, and with it the process's tree (the host kills it). */
  close(): void {
    this.ended = true;
    this.closedByOwner = true;
    this.socket.destroy();
  }

  private send(frame: Buffer): void {
    if (!this.ended) this.socket.write(frame);
  }

  private onData(chunk: Buffer): void {
    try {
      for (const frame of this.decoder.push(chunk)) {
        switch (frame.kind) {
          case FrameKind.stdout:
            this.emit('output', 'stdout', frame.body);
            break;
          case FrameKind.stderr:
            this.emit('output', 'stderr', frame.body);
            break;
          case FrameKind.pty:
            this.emit('output', 'pty', frame.body);
            break;
          case FrameKind.control:
            this.onControl(frame.body);
            break;
          default:
            throw new Error(`the process host sent a frame of kind ${frame.kind}`);
        }
      }
    } catch (error) {
      this.end(`the process host broke the protocol: ${(error as Error).message}`);
      this.socket.destroy();
    }
  }

  private onControl(body: Buffer): void {
    const event = parseHostEvent(body);
    switch (event.ev) {
      case 'started':
        this.emit('started', event.pid);
        return;
      case 'exit':
        this.settled = true;
        this.ended = true;
        this.emit('exit', event);
        this.socket.destroy();
        return;
      case 'error':
        this.settled = true;
        this.ended = true;
        this.emit('refused', event.code, event.message);
        this.socket.destroy();
        return;
      default:
        throw new Error(`unexpected ${event.ev}`);
    }
  }

  private end(reason: string): void {
    this.ended = true;
    if (this.settled || this.closedByOwner) return;
    this.settled = true;
    this.emit('lost', reason);
  }
}
