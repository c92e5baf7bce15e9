import type { EventLog, LogBudget } from './event-log.js';

/** What is kept: something with an id, an event log, and the time it finished (undefined while it runs). */
export interface Retainable {
  readonly id: string;
  readonly log: EventLog;
  readonly finishedAtMs: number | undefined;
}

export interface RetentionOptions {
  /** How long a finished one is kept, in ms. */
  retentionMs: number;
  /** How many finished ones are kept at most. */
  maxRetained: number;
  /** Events kept over all of them, in bytes, when no shared budget is given. */
  totalBufferBytes: number;
}

/** The longest delay a Node timer can hold (2^31 - 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One bound on the events that executions and processes keep, together (EXECUTION_BUFFER_TOTAL):
 * over it, the oldest events go first, from finished ones before running ones, whatever their
 * kind (an event log never drops what its requester has yet to read).
 */
export class SharedLogBudget implements LogBudget {
  private bufferedBytes = 0;
  private readonly members: RetainedLogs<Retainable>[] = [];

  constructor(readonly totalBytes: number) {}

  /** Events buffered by every member, in bytes. */
  get buffered(): number {
    return this.bufferedBytes;
  }

  join(member: RetainedLogs<Retainable>): void {
    this.members.push(member);
  }

  charge(bytes: number): void {
    this.bufferedBytes += bytes;
    if (bytes <= 0 || this.bufferedBytes <= this.totalBytes) return;
    const all = this.members.flatMap((member) => member.values());
    const order = [...all.filter((item) => item.finishedAtMs !== undefined), ...all.filter((item) => item.finishedAtMs === undefined)];
    for (const item of order) {
      const excess = this.bufferedBytes - this.totalBytes;
      if (excess <= 0) return;
      item.log.trim(excess);
    }
  }
}

/**
 * The executions (or processes) a manager holds, in creation order, and the rules both kinds
 * live by: a finished one is kept for `retentionMs` so that a client can still read it, at most
 * `maxRetained` of them (the oldest go first), and their events count against a budget shared
 * with the other kind (`SharedLogBudget`; one of its own unless given).
 */
export class RetainedLogs<T extends Retainable> {
  /** Hand this to every log: it charges and credits the shared budget. */
  readonly budget: SharedLogBudget;
  private readonly items = new Map<string, T>();
  /** The finished items held, oldest first. */
  private readonly finishedOrder = new Set<T>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly options: RetentionOptions,
    shared: SharedLogBudget = new SharedLogBudget(options.totalBufferBytes),
  ) {
    this.budget = shared;
    shared.join(this);
  }

  add(item: T): void {
    this.items.set(item.id, item);
  }

  get(id: string): T | undefined {
    return this.items.get(id);
  }

  /** Oldest first. */
  values(): T[] {
    return [...this.items.values()];
  }

  /** Events buffered under the budget (this kind's and the other's, when it is shared), in bytes. */
  get totalBufferedBytes(): number {
    return this.budget.buffered;
  }

  /** Drops one now, and gives its events back to the budget. */
  forget(item: T): void {
    this.finishedOrder.delete(item);
    if (!this.items.delete(item.id)) return;
    item.log.release();
  }

  /** Records that `item` has finished, then forgets what is past retention or beyond the cap. */
  finished(item: T): void {
    if (this.items.get(item.id) === item) this.finishedOrder.add(item);
    this.sweep();
  }

  /**
   * Forgets finished ones past their retention and the oldest finished beyond the cap. Runs on
   * every execution's end, so it looks at the oldest finished ones only, in the order they
   * finished (which is the order of their expiry), rather than at every item held.
   */
  sweep(): void {
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    if (this.stopped) return;
    const now = Date.now();
    let excess = this.finishedOrder.size - this.options.maxRetained;
    // Deleting from a Set while iterating it visits every remaining entry once.
    for (const item of this.finishedOrder) {
      if (excess <= 0 && item.finishedAtMs! + this.options.retentionMs > now) break;
      this.forget(item);
      excess--;
    }
    const oldest = this.finishedOrder.values().next();
    if (oldest.done !== true) {
      const expires = oldest.value.finishedAtMs! + this.options.retentionMs;
      this.sweepTimer = setTimeout(() => this.sweep(), Math.min(expires - now + 10, MAX_TIMER_MS));
      this.sweepTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.sweepTimer);
  }
}
