import { SandboxFileError, type Watch, type WatchEvent } from './types.js';

/** Events a watch holds for a reader that has not read them yet, before it gives up (ELIMIT). */
export const DEFAULT_MAX_QUEUED_EVENTS = 10_000;

/**
 * The events of one watch, waiting for their reader: a {@link Watch} fed by pushes (a watcher's
 * callbacks, or frames from the process host), on both ends of the host's socket. The queue is bounded: a write repeated to the name the last queued event names is
 * coalesced into it, and past `limit` waiting events the watch ends with ELIMIT instead of
 * growing, so a reader that stops reading costs at most `limit` events of memory.
 */
export class WatchQueue implements Watch {
  private queue: WatchEvent[] = [];
  private head = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  /** `onEnd` releases what feeds the queue (the watcher); it runs once, however the watch ends. */
  constructor(
    private readonly limit: number,
    private readonly onEnd: () => void,
  ) {}

  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Queues an event; false once the watch has ended (the source should stop). */
  push(event: WatchEvent): boolean {
    if (this.ended) return false;
    const last = this.waiting > 0 ? this.queue[this.queue.length - 1] : undefined;
    if (last && event.type === 'write' && last.type === 'write' && last.name === event.name) return true;
    if (this.waiting >= this.limit) {
      this.fail(new SandboxFileError('ELIMIT', `more than ${this.limit} events waited for a reader that did not keep up`));
      return false;
    }
    this.queue.push(event);
    this.notify();
    return true;
  }

  /** Ends the watch with `error`, thrown to the reader once the events before it are read. */
  fail(error: Error): void {
    if (this.ended) return;
    this.failure = error;
    this.finish();
  }

  close(): void {
    if (this.ended) return;
    this.finish();
  }

  readonly events: AsyncIterable<WatchEvent> = { [Symbol.asyncIterator]: () => this.iterate() };

  private async *iterate(): AsyncGenerator<WatchEvent> {
    try {
      for (;;) {
        if (this.waiting > 0) {
          const event = this.queue[this.head++]!;
          if (this.head > 1024 && this.head * 2 > this.queue.length) {
            this.queue = this.queue.slice(this.head);
            this.head = 0;
          }
          yield event;
        } else if (this.ended) {
          if (this.failure) throw this.failure;
          return;
        } else {
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      }
    } finally {
      // The reader stopped (break, return, error): nothing reads this watch any more.
      this.close();
    }
  }

  private finish(): void {
    this.ended = true;
    this.onEnd();
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
