import type { OutputEvent } from '../../runs/events.js';

export interface ProgressNotice {
  progress: number;
  message: string;
}

export interface ProgressOptions {
  /** Output is gathered this long before it is sent, so a fast loop makes few notifications. */
  batchMs: number;
  /** A silent run still reports this often (0: never), so that clients don't time out. */
  heartbeatMs: number;
  /** Characters of output one notification carries at most: the latest ones. */
  maxChars: number;
}

/**
 * Progress notifications for a running execution: the output printed since the previous one,
 * and in silences a note of how long it has been running. MCP clients reset their request
 * time-out on each, which is what lets a long run finish. `progress` counts notifications,
 * the only measure that always increases: an execution has no known total.
 */
export class ProgressReporter {
  private pending = '';
  private count = 0;
  private lastSent = Date.now();
  private readonly started = Date.now();
  private batch: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly send: (notice: ProgressNotice) => Promise<void>,
    private readonly options: ProgressOptions,
  ) {
    if (options.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.lastSent >= options.heartbeatMs && this.pending === '') {
          this.emit(`running for ${Math.round((Date.now() - this.started) / 1000)} s`);
        }
      }, options.heartbeatMs);
      this.heartbeat.unref();
    }
  }

  observe(event: OutputEvent | { type: string }): void {
    if (this.stopped) return;
    if (event.type === 'stdout' || event.type === 'stderr') {
      this.pending += (event as { text: string }).text;
      if (this.pending.length > this.options.maxChars) this.pending = this.pending.slice(this.pending.length - this.options.maxChars);
    } else if (event.type === 'result') {
      this.pending += '[a result or figure; it comes with the answer]\n';
    } else {
      return;
    }
    this.batch ??= setTimeout(() => {
      this.batch = undefined;
      this.flush();
    }, this.options.batchMs);
  }

  /** Sends what is pending and stops: the answer follows. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.batch);
    clearInterval(this.heartbeat);
  }

  private flush(): void {
    if (this.pending === '' || this.stopped) return;
    const message = this.pending;
    this.pending = '';
    this.emit(message);
  }

  private emit(message: string): void {
    this.lastSent = Date.now();
    // A client that went away cannot be told; the execution ends on the request's own signal.
    this.send({ progress: ++this.count, message }).catch(() => undefined);
  }
}
