import type { Socket } from 'node:net';
import { WebSocket } from 'ws';

/**
 * What may wait in one socket's send buffer before its readers stop pulling events. Beyond it a
 * socket's pumps wait for the buffer to empty: a slow client holds back its own executions (the
 * requester's kernel waits, see Execution.read) and nobody else's, and the server holds at most
 * this much plus one event per socket.
 */
export const SOCKET_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Replies to a client's frames (`accepted`, `request_error`) that may pile up beyond the mark:
 * a client that keeps sending frames without reading the answers is closed once they pass this.
 * Pongs are ws's own, bounded by its `maxPendingAutoPongs`.
 */
export const REPLY_ALLOWANCE_BYTES = 64 * 1024;

/** ws sends a Buffer as a binary frame unless told otherwise. */
const TEXT_FRAME = { binary: false } as const;

/**
 * Sends text frames on one socket and tells its readers when to wait. `bufferedAmount` is what
 * `ws` has not handed to the OS yet; the connection's `drain` says when it has all gone. One
 * shared wait serves every reader of the socket, however many executions it carries.
 */
export class FrameSender {
  private drained: Promise<void> | undefined;
  private corked = false;
  /** Reply bytes queued since the buffer last was under the mark. */
  private overdue = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly connection: Socket,
    /** Called once when the socket is closed for not reading its replies. */
    private readonly onUnread: () => void = () => {},
  ) {}

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /**
   * Sends a text frame, given as a string or as UTF-8 bytes (an event's line, sent without
   * decoding it again); false when the reader should `waitForRoom` before sending more.
   */
  send(text: string | Buffer): boolean {
    if (!this.isOpen) return true;
    this.corkUntilIdle();
    this.socket.send(text, TEXT_FRAME);
    return this.socket.bufferedAmount <= SOCKET_HIGH_WATER_BYTES;
  }

  /**
   * Sends the answer to a client's frame. Events wait for room (their readers pause), but
   * answers to frames cannot: they come as fast as the client sends. While the buffer is over
   * the mark they count against {@link REPLY_ALLOWANCE_BYTES}; past it the client is sending
   * without reading, and the socket is closed (there is no reading a close frame either), so
   * that it never holds more than about the mark plus the allowance.
   */
  reply(text: string): void {
    if (!this.isOpen) return;
    if (this.socket.bufferedAmount <= SOCKET_HIGH_WATER_BYTES) {
      this.overdue = 0;
    } else {
      this.overdue += Buffer.byteLength(text);
      if (this.overdue > REPLY_ALLOWANCE_BYTES) {
        this.socket.terminate();
        this.onUnread();
        return;
      }
    }
    this.send(text);
  }

  /**
   * The kernel's last messages of an execution (result, reply, idle) arrive together and become
   * several frames, each a write of its own: held until the event loop has run every promise
   * continuation of this turn (the readers are async iterators), they leave in one packet and
   * the client wakes once. The same reason as NdjsonResponse's cork, one turn longer.
   */
  private corkUntilIdle(): void {
    if (this.corked) return;
    this.corked = true;
    this.connection.cork();
    setImmediate(() => {
      this.corked = false;
      this.connection.uncork();
    });
  }

  /** Resolves once the buffer is back under the mark, or the socket closed. */
  async waitForRoom(): Promise<void> {
    while (this.isOpen && this.socket.bufferedAmount > SOCKET_HIGH_WATER_BYTES) {
      this.drained ??= this.nextDrain().finally(() => (this.drained = undefined));
      await this.drained;
    }
  }

  private nextDrain(): Promise<void> {
    return new Promise((resolve) => {
      // `drain` comes only after a write the connection refused; when ws still holds the bytes
      // itself (none did so far, but nothing promises it), look again shortly instead.
      if (!this.connection.writableNeedDrain) {
        setTimeout(resolve, 5);
        return;
      }
      const done = () => {
        this.connection.off('drain', done);
        this.connection.off('close', done);
        resolve();
      };
      this.connection.on('drain', done);
      this.connection.on('close', done);
    });
  }
}
