/**
 * Runs jobs one at a time in arrival order. A waiting job can be withdrawn (its caller went
 * away) without leaving anything behind, and the number of waiting jobs is capped so that a
 * flood of requests behind a busy kernel is refused rather than held forever.
 */
export class SerialQueue {
  private running = false;
  private readonly waiting: Array<{ start: () => void; cancel: (reason: unknown) => void }> = [];

  constructor(private readonly maxWaiting: number) {}

  get busy(): boolean {
    return this.running;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** True when one more job would have to wait beyond the cap. */
  get full(): boolean {
    return this.running && this.waiting.length >= this.maxWaiting;
  }

  /**
   * Runs `job` once every job before it has finished. Rejects with `signal.reason` if the
   * signal aborts while the job is still waiting; a job that has started is the job's business.
   */
  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await job();
    } finally {
      this.release();
    }
  }

  /** Rejects every waiting job with `reason`; the running one is left to finish. */
  rejectWaiting(reason: unknown): void {
    for (const entry of this.waiting.splice(0)) entry.cancel(reason);
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!this.running) {
      this.running = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiting.indexOf(entry);
        if (index !== -1) this.waiting.splice(index, 1);
        reject(signal?.reason);
      };
      const entry = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        cancel: (reason: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(reason);
        },
      };
      this.waiting.push(entry);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.running = false;
  }
}
