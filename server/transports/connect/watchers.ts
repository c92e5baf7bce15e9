import { randomUUID } from 'node:crypto';
import { SandboxFileError, type SandboxFiles, type Watch, type WatchEvent } from '../../sandbox-files/types.js';

export interface WatchersOptions {
  /** Watches at once, streamed (WatchDir) and polled (CreateWatcher) together. */
  maxWatches: number;
  /** Events a polled watcher holds between two polls; one more ends it. */
  maxBufferedEvents: number;
  /** A polled watcher nobody asked for events for this long is removed. */
  idleMs: number;
}

export const DEFAULT_WATCHERS_OPTIONS: WatchersOptions = { maxWatches: 128, maxBufferedEvents: 10_000, idleMs: 5 * 60_000 };

interface Polled {
  watch: Watch;
  /** As the client named it: events' names are relative to it. */
  directory: string;
  includeEntry: boolean;
  events: WatchEvent[];
  /** Why it stopped (its watch failed, or its buffer overflowed): told to the next poll. */
  failure?: SandboxFileError;
  lastPolledAt: number;
}

/**
 * The server's directory watches: each one the client left running is a watch in the process
 * host, so they are counted (one bound for both kinds), a polled watcher that nobody polls any
 * more is removed, and `close()` (the listener's close) ends them all.
 */
export class Watchers {
  readonly #options: WatchersOptions;
  readonly #polled = new Map<string, Polled>();
  readonly #closing = new AbortController();
  #streams = 0;
  readonly #sweep: NodeJS.Timeout;

  constructor(
    private readonly files: SandboxFiles,
    options: Partial<WatchersOptions> = {},
  ) {
    this.#options = { ...DEFAULT_WATCHERS_OPTIONS, ...options };
    this.#sweep = setInterval(() => this.#removeIdle(), Math.max(Math.floor(this.#options.idleMs / 4), 10));
    this.#sweep.unref();
  }

  /** Aborts when the server closes: every stream reading a watch ends with it. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  get count(): number {
    return this.#streams + this.#polled.size;
  }

  #reserve(): void {
    if (this.#closing.signal.aborted) throw new SandboxFileError('EBUSY', 'the server is shutting down');
    if (this.count >= this.#options.maxWatches) {
      throw new SandboxFileError(
        'ELIMIT',
        `too many directory watches at once (${this.#options.maxWatches}); stop one (RemoveWatcher, or end its WatchDir stream) first`,
      );
    }
  }

  /** A watch for one WatchDir stream: counted until its events end. */
  async stream(path: string, recursive: boolean, signal: AbortSignal): Promise<Watch> {
    this.#reserve();
    this.#streams++;
    let counted = true;
    const uncount = () => {
      if (counted) this.#streams--;
      counted = false;
    };
    try {
      const watch = await this.files.watch(path, { recursive, signal: AbortSignal.any([signal, this.#closing.signal]) });
      const source = watch.events;
      return {
        close: () => {
          watch.close();
          uncount();
        },
        events: {
          async *[Symbol.asyncIterator]() {
            try {
              yield* source;
            } finally {
              watch.close();
              uncount();
            }
          },
        },
      };
    } catch (error) {
      uncount();
      throw error;
    }
  }

  async create(path: string, options: { recursive: boolean; includeEntry: boolean }): Promise<string> {
    this.#reserve();
    const id = randomUUID();
    // Reserved before the watch is in place, so that concurrent creations cannot pass the bound.
    const placeholder: Polled = {
      watch: { events: (async function* () {})(), close: () => undefined },
      directory: path,
      includeEntry: options.includeEntry,
      events: [],
      lastPolledAt: Date.now(),
    };
    this.#polled.set(id, placeholder);
    let watch: Watch;
    try {
      watch = await this.files.watch(path, { recursive: options.recursive, signal: this.#closing.signal });
    } catch (error) {
      this.#polled.delete(id);
      throw error;
    }
    if (this.#polled.get(id) !== placeholder) {
      // Removed (or the server closed) while the watch was being set up.
      watch.close();
      throw new SandboxFileError('EBUSY', 'the watcher was removed while it started');
    }
    placeholder.watch = watch;
    void this.#pump(placeholder);
    return id;
  }

  async #pump(polled: Polled): Promise<void> {
    try {
      for await (const event of polled.watch.events) {
        if (polled.events.length >= this.#options.maxBufferedEvents) {
          polled.failure = new SandboxFileError(
            'ELIMIT',
            `more than ${this.#options.maxBufferedEvents} events waited for GetWatcherEvents; the watcher stopped (create a new one and poll it more often)`,
          );
          polled.watch.close();
          return;
        }
        polled.events.push(event);
      }
    } catch (error) {
      polled.failure =
        error instanceof SandboxFileError ? error : new SandboxFileError('EIO', `the watch failed: ${(error as Error).message}`);
    }
  }

  /**
   * The events since the last poll. A watcher that stopped answers its remaining events, and
   * the next poll its reason (and it is gone).
   */
  take(id: string): { events: WatchEvent[]; directory: string; includeEntry: boolean } {
    const polled = this.#polled.get(id);
    if (!polled) throw new SandboxFileError('ENOENT', `watcher '${id.slice(0, 64)}' not found`);
    polled.lastPolledAt = Date.now();
    if (polled.events.length === 0 && polled.failure) {
      this.#polled.delete(id);
      throw polled.failure;
    }
    const events = polled.events;
    polled.events = [];
    return { events, directory: polled.directory, includeEntry: polled.includeEntry };
  }

  remove(id: string): void {
    const polled = this.#polled.get(id);
    if (!polled) throw new SandboxFileError('ENOENT', `watcher '${id.slice(0, 64)}' not found`);
    this.#polled.delete(id);
    polled.watch.close();
  }

  #removeIdle(): void {
    const cutoff = Date.now() - this.#options.idleMs;
    for (const [id, polled] of this.#polled) {
      if (polled.lastPolledAt > cutoff) continue;
      this.#polled.delete(id);
      polled.watch.close();
    }
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#closing.abort(new SandboxFileError('EBUSY', 'the server is shutting down'));
    for (const polled of this.#polled.values()) polled.watch.close();
    this.#polled.clear();
  }
}
