import { once } from 'node:events';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { serializeEvent, type OutputEvent } from './events.js';
import type { EventSink } from './execution.js';

/**
 * The body of a `POST /execute` response, written straight to the socket: each event is one
 * NDJSON line, sent as it comes. No stream sits in between, so a line costs one write, and the
 * last line goes out in the same write as the end of the response.
 *
 * `write` returns false once the socket's buffer is full (the client reads slower than the
 * kernel prints); the execution then pauses the kernel socket until `waitForDrain` resolves.
 */
export class NdjsonResponse implements EventSink {
  private corked = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, number | string | string[] | undefined>,
  ) {}

  private get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  write(event: OutputEvent): boolean {
    if (this.closed) return true;
    this.sendHeaders();
    this.corkUntilTickEnds();
    return this.res.write(serializeEvent(event));
  }

  /**
   * Kernel messages that arrive together (a result, the reply, the idle status) are handled in
   * one tick: corking until it ends sends their lines, and the end of the response, in one
   * packet rather than one each, which the client reads with one wake-up instead of several.
   * The socket is corked, not the response: on Node 24 a response ended while corked never
   * sends what it held.
   */
  private corkUntilTickEnds(): void {
    const socket = this.res.socket;
    if (this.corked || !socket) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  async waitForDrain(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return;
    // One signal removes both listeners whichever fires, so pause/resume cycles leave none behind.
    const done = new AbortController();
    try {
      await Promise.race([once(this.res, 'drain', { signal: done.signal }), once(this.res, 'close', { signal: done.signal })]);
    } catch {
      // Aborted by the finally below, or the response errored: either way stop waiting.
    } finally {
      done.abort();
    }
  }

  /** Writes `end_of_execution` and ends the response, in one write. */
  finish(): void {
    if (this.closed) return;
    this.sendHeaders();
    this.corkUntilTickEnds();
    this.res.end(serializeEvent({ type: 'end_of_execution' }));
  }

  private sendHeaders(): void {
    if (!this.res.headersSent) this.res.writeHead(200, this.headers as OutgoingHttpHeaders);
  }
}
