import { SandboxFileError } from './types.js';

/**
 * How many file operations (a transfer, a listing, a stat) may run at once, over every door.
 * One more is refused at once rather than queued: a queue is memory a flood of clients fills,
 * and e2b's SDKs retry nothing on their own, so the caller learns of the bound immediately.
 */
export class OperationLimit {
  #running = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
  }

  get running(): number {
    return this.#running;
  }

  /** Takes a slot, or throws ELIMIT; the returned function gives it back (once, however often it is called). */
  acquire(): () => void {
    if (this.#running >= this.max) {
      throw new SandboxFileError(
        'ELIMIT',
        `too many file operations at once (MAX_FILE_OPERATIONS=${this.max}); try again when one has finished`,
      );
    }
    this.#running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
    };
  }

  /** Runs `operation` in a slot. */
  async run<T>(operation: () => Promise<T>): Promise<T> {
    const release = this.acquire();
    try {
      return await operation();
    } finally {
      release();
    }
  }
}
