import { EventEmitter } from 'node:events';

/**
 * What happens to kernels and contexts, for whoever counts it (the metrics plugin) or owns
 * something of a context (its commands). Listeners run synchronously inside the context's own
 * bookkeeping: they must be cheap and must not throw.
 */
export interface KernelEventMap {
  /**
   * A context got a new kernel: created, or one that replaces a lost kernel; started for it or
   * taken from the pool (a restart is `kernel_restarted`, whichever way it is carried out).
   */
  kernel_started: [{ language: string }];
  /**
   * A context's kernel was restarted under the same id: `requested` by a client, `unresponsive`
   * after it ignored an interrupt, `died` when Jupyter brought a dead kernel back by itself.
   */
  kernel_restarted: [{ language: string; reason: 'requested' | 'unresponsive' | 'died' }];
  /** A kernel process died under a context (crashed, exited, killed). */
  kernel_died: [{ language: string }];
  /** A context was deleted (by a client, or with the MCP session that owned it): what it owned goes too. */
  context_deleted: [{ id: string; language: string }];
}

export type KernelEvents = EventEmitter<KernelEventMap>;

export function createKernelEvents(): KernelEvents {
  return new EventEmitter<KernelEventMap>();
}

/**
 * What a pool of pre-started kernels reports, so that its size and usefulness can be watched.
 * `size` is the number of ready kernels of a language now; a `hit` is a context served from the
 * pool, a `miss` one that had to wait for a fresh kernel.
 */
export interface KernelPoolObserver {
  size(language: string, ready: number): void;
  hit(language: string): void;
  miss(language: string): void;
}
