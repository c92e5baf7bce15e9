import { Readable } from 'node:stream';
import { once } from 'node:events';
import { serializeEvent, type OutputEvent } from './events.js';
import type { EventSink } from './execution.js';

/**
 * The body of a `POST /execute` response: events become NDJSON lines as they are written.
 * `write` returns false once the client has a high-water mark of unread output, which the
 * execution answers by pausing the kernel socket until `drain`.
 */
export class NdjsonStream extends Readable implements EventSink {
  private wanted = true;

  constructor(highWaterMark = 1024 * 1024) {
    super({ highWaterMark });
  }

  override _read(): void {
    if (!this.wanted) {
      this.wanted = true;
      this.emit('drain');
    }
  }

  write(event: OutputEvent): boolean {
    if (this.destroyed || this.readableEnded) return true;
    this.wanted = this.push(serializeEvent(event));
    return this.wanted;
  }

  async waitForDrain(): Promise<void> {
    if (this.wanted || this.destroyed) return;
    // One signal removes both listeners whichever fires, so pause/resume cycles leave none behind.
    const done = new AbortController();
    try {
      await Promise.race([once(this, 'drain', { signal: done.signal }), once(this, 'close', { signal: done.signal })]);
    } catch {
      // Aborted by the finally below, or the stream errored: either way stop waiting.
    } finally {
      done.abort();
    }
  }

  /** Writes `end_of_execution` and ends the stream. */
  finish(): void {
    if (this.destroyed || this.readableEnded) return;
    this.push(serializeEvent({ type: 'end_of_execution' }));
    this.push(null);
  }
}
