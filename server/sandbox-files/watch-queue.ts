import { SandboxFileError, type Watch, type WatchEvent } from './types.js';

/** Events a watch holds for a consumer that has not read them yet, before it gives up (ELIMIT). */
export const DEFAULT_MAX_QUEUED_EVENTS = 10_000;

/**
 * A Watch fed by pushes (a watcher's callbacks, frames from the host): events wait in a queue of
 * at most `maxQueued`; one more means the consumer does not keep up, and the watch ends with
 * ELIMIT instead of growing. `onClose` runs once, whichever way the watch ends, so the source can
 * stop.
 */
export class QueuedWatch implements Watch {
  readonly events: AsyncIterable<WatchEvent>;
  private readonly queue: WatchEvent[] = [];
  private failure: SandboxFileError | undefined;
  private ended = false;
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly onClose: () => void,
    private readonly maxQueued = DEFAULT_MAX_QUEUED_EVENTS,
  ) {
    this.events = { [Symbol.asyncIterator]: () => this.iterate() };
  }

  /** Queues an event; false once the watch has ended (the source should stop). */
  push(event: WatchEvent): boolean {
    if (this.ended) return false;
    if (this.queue.length >= this.maxQueued) {
      this.fail(new SandboxFileError('ELIMIT', `more than ${this.maxQueued} watch events were waiting: the reader did not keep up`));
      return false;
    }
    this.queue.push(event);
    this.notify();
    return true;
  }

  /** Ends the watch with an error, thrown by the iterator after the events already queued. */
  fail(error: SandboxFileError): void {
    if (this.ended) return;
    this.failure = error;
    this.finish();
  }

  /** Ends the watch: the iterator returns after the events already queued. */
  close(): void {
    this.finish();
  }

  private finish(): void {
    this.ended = true;
    this.notify();
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async *iterate(): AsyncGenerator<WatchEvent> {
    try {
      for (;;) {
        const event = this.queue.shift();
        if (event) {
          yield event;
          continue;
        }
        if (this.ended) {
          if (this.failure) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // A consumer that stops reading (break, return) ends the watch too.
      this.finish();
    }
  }
}
