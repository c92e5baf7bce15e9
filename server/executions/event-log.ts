import { serializeEvent, type OutputEvent } from '../runs/events.js';

/** One event of an execution, as stored: its index in the execution and its NDJSON line. */
export interface LogEntry {
  readonly index: number;
  /**
   * The event serialized once, as UTF-8 with its newline: what the transports write as is and
   * what the budget counts, byte for byte.
   */
  readonly line: Buffer;
  readonly type: OutputEvent['type'];
  readonly event: OutputEvent;
}

/**
 * An entry of the log. The bytes the log is allowed are the lines' bytes, so for stdout and
 * stderr, nearly all of them, the line is all it keeps: their event is parsed from it again
 * when a reader asks (the HTTP and WebSocket transports only write the line), instead of the
 * text being held a second time as a string.
 */
class StoredEntry implements LogEntry {
  readonly line: Buffer;
  readonly type: OutputEvent['type'];
  private readonly kept: OutputEvent | undefined;

  constructor(
    readonly index: number,
    event: OutputEvent,
  ) {
    this.line = serializeEvent(event);
    this.type = event.type;
    this.kept = event.type === 'stdout' || event.type === 'stderr' ? undefined : event;
  }

  get event(): OutputEvent {
    return this.kept ?? (JSON.parse(this.line.toString('utf8')) as OutputEvent);
  }
}

/** Shared by every log of the server: the server-wide cap on buffered bytes. */
export interface LogBudget {
  /** Called with the bytes a log takes (positive) or gives back (negative). */
  charge(bytes: number): void;
}

/**
 * The events of one execution, in order, within a byte budget. When the budget is exceeded the
 * oldest events go first, but never one that the pinned reader (the requester, while attached)
 * has not read yet: that reader loses nothing, the producer is made to wait instead (see
 * `lagBytes`). A reader asking for an event that has gone learns how many it missed.
 */
export class EventLog {
  private readonly entries: LogEntry[] = [];
  /** Index of entries[0]. */
  private first = 0;
  private bytes = 0;
  /** Bytes ever appended; with `pinnedBytes` it measures how far the pinned reader lags. */
  private appendedBytes = 0;
  private pinnedIndex: number | undefined;
  private pinnedBytes = 0;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly limitBytes: number,
    private readonly budget?: LogBudget,
  ) {}

  /** Index the next event will get: the number of events ever appended. */
  get length(): number {
    return this.first + this.entries.length;
  }

  /** Index of the oldest event still held. */
  get firstIndex(): number {
    return this.first;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get bufferedBytes(): number {
    return this.bytes;
  }

  /** How many appended bytes the pinned reader has not read yet (0 when none is pinned). */
  get lagBytes(): number {
    return this.pinnedIndex === undefined ? 0 : this.appendedBytes - this.pinnedBytes;
  }

  append(event: OutputEvent): LogEntry {
    if (this.closed) throw new Error('append to a closed event log');
    const entry = new StoredEntry(this.length, event);
    const size = entry.line.length;
    this.entries.push(entry);
    this.bytes += size;
    this.appendedBytes += size;
    this.budget?.charge(size);
    if (this.bytes > this.limitBytes) this.trim(this.bytes - this.limitBytes);
    if (event.type === 'end_of_execution') this.closed = true;
    this.wake();
    return entry;
  }

  /** The event at `index`, or undefined when it has been dropped or not yet appended. */
  at(index: number): LogEntry | undefined {
    return this.entries[index - this.first];
  }

  /**
   * Drops the oldest events until `bytes` are freed or the pinned reader's position is
   * reached. Returns the bytes freed.
   */
  trim(bytes: number): number {
    const stop = this.pinnedIndex ?? Number.POSITIVE_INFINITY;
    let freed = 0;
    let count = 0;
    // Never the last event: a finished log keeps its end so late readers see it.
    while (freed < bytes && count < this.entries.length - 1 && this.first + count < stop) {
      freed += this.entries[count]!.line.length;
      count++;
    }
    if (count > 0) {
      this.entries.splice(0, count);
      this.first += count;
      this.bytes -= freed;
      this.budget?.charge(-freed);
    }
    return freed;
  }

  /** Gives every byte back to the budget (the execution is forgotten). */
  release(): void {
    this.budget?.charge(-this.bytes);
    this.first = this.length;
    this.entries.length = 0;
    this.bytes = 0;
  }

  /** Marks the reader that must not lose events; it has read everything before `index`. */
  pin(index: number): void {
    this.pinnedIndex = index;
    this.pinnedBytes = this.appendedBytes - this.bytesFrom(index);
  }

  /** The pinned reader has read the event at `index`. */
  advancePin(entry: LogEntry): void {
    if (this.pinnedIndex === undefined) return;
    this.pinnedIndex = entry.index + 1;
    this.pinnedBytes += entry.line.length;
  }

  unpin(): void {
    this.pinnedIndex = undefined;
    this.pinnedBytes = 0;
    this.wake();
  }

  /**
   * The events from index `from`, then the live ones, until `end_of_execution`; events that
   * have left the buffer come as one `events_dropped` with their count. Ends early when
   * `signal` aborts. `onRead` sees each stored entry before it is yielded (the pinned reader
   * advances its pin there). Executions and processes read their logs through this one loop.
   */
  async *read(options: { from?: number; signal?: AbortSignal; onRead?: (entry: LogEntry) => void } = {}): AsyncGenerator<LogEntry> {
    const { signal, onRead } = options;
    let position = Math.max(0, options.from ?? 0);
    while (!signal?.aborted) {
      if (position < this.first) {
        const count = this.first - position;
        position = this.first;
        const event: OutputEvent = { type: 'events_dropped', count };
        yield { index: position - count, line: serializeEvent(event), type: event.type, event };
        continue;
      }
      const entry = this.at(position);
      if (entry) {
        position++;
        onRead?.(entry);
        yield entry;
        if (entry.type === 'end_of_execution') return;
        continue;
      }
      if (this.closed && position >= this.length) {
        // Asked for events at or past the end of a finished log: there are none left to send,
        // but a reader always ends on the closing event.
        const last = this.at(this.length - 1);
        if (last) yield last;
        return;
      }
      await this.changed(signal);
    }
  }

  /** Resolves on the next append (or at once when closed, or when `signal` aborts). */
  changed(signal?: AbortSignal): Promise<void> {
    if (this.closed || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private bytesFrom(index: number): number {
    let total = 0;
    for (let i = Math.max(index, this.first) - this.first; i < this.entries.length; i++) total += this.entries[i]!.line.length;
    return total;
  }
}
