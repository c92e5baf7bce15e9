import type { Logger } from '../logger.js';
import type { JupyterClient, KernelSpecInfo } from '../jupyter/client.js';
import { KernelChannel, type ChannelEvents } from '../jupyter/kernel-channel.js';
import type { KernelPoolObserver } from './events.js';

/** A kernel started ahead of time, connected and answering, in `directory`. */
export interface WarmKernel {
  channel: KernelChannel;
  language: string;
  kernelName: string;
  /** Where the kernel was started: its working directory until it is moved. */
  directory: string;
}

export interface PoolTarget {
  spec: KernelSpecInfo;
  size: number;
}

export interface KernelPoolOptions {
  jupyter: JupyterClient;
  logger: Logger;
  /** Where pooled kernels start: the workspace root, where most contexts run. */
  directory: string;
  /** The languages to keep kernels of, and how many each; resolved once Jupyter answers. */
  targets(): Promise<PoolTarget[]>;
  /** Whether one more kernel fits under MAX_CONTEXTS now (contexts, those starting and the pool's). */
  hasRoom(): boolean;
  observer?: KernelPoolObserver;
}

/** One kernel the pool holds or is starting. */
interface Slot {
  language: string;
  /** Set once the kernel answers. */
  kernel?: WarmKernel;
  /** While the kernel starts. */
  starting?: Promise<WarmKernel | undefined>;
  /** A context waits for this start: the kernel goes to it, not into the pool. */
  claimed: boolean;
  /** Given up (evicted, lost, or the pool closed): the kernel is shut down once it exists. */
  discarded: boolean;
  /** That shutdown, once under way. */
  released?: Promise<void>;
}

/**
 * How long a refill waits after a hand-out: whoever got the kernel usually runs code on it at
 * once, and a kernel start beside it (a second of CPU, and Jupyter's attention) would slow that
 * first execution, or let an interrupt miss its grace period on a loaded machine.
 */
const REFILL_DELAY_MS = 1000;
/** After a failed start, the next waits this long, doubling up to the maximum. */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

/**
 * Kernels started before anybody asks for them, so that a new context or a restart takes one
 * in milliseconds instead of waiting for a kernel to start. Each language is topped up to its
 * size in the background, one start at a time per language, and only while the kernels fit
 * under MAX_CONTEXTS: a pooled kernel holds a slot until a context needs it (see evict()).
 * A pooled kernel that dies or loses its connection is shut down and replaced; what is handed
 * out was connected and unreported a moment before, and the taker checks it answers.
 */
export class KernelPool {
  private readonly slots = new Set<Slot>();
  private readonly sizes = new Map<string, number>();
  private readonly retries = new Map<string, { delay: number; timer?: NodeJS.Timeout }>();
  private targets: Promise<PoolTarget[]> | undefined;
  private closed = false;
  /** Set by activate(): until then fill() starts nothing. */
  private active = false;
  private refillTimer: NodeJS.Timeout | undefined;
  /** Shutdowns in flight, so that close() can wait for them. */
  private readonly releasing = new Set<Promise<void>>();

  constructor(private readonly options: KernelPoolOptions) {}

  /** Kernels held or being started for the pool, each counted against MAX_CONTEXTS. */
  get size(): number {
    let count = 0;
    for (const slot of this.slots) if (!slot.claimed) count++;
    return count;
  }

  /** Whether the pool keeps kernels of `language` (as resolved: `python`, `r`). */
  serves(language: string): boolean {
    return (this.sizes.get(language) ?? 0) > 0;
  }

  /** A ready kernel of `language`, taken out of the pool; undefined when none is ready. */
  takeReady(language: string): WarmKernel | undefined {
    for (const slot of this.slots) {
      if (slot.language !== language || !slot.kernel || slot.claimed || slot.discarded) continue;
      const kernel = slot.kernel;
      this.slots.delete(slot);
      this.reportSize(language);
      if (kernel.channel.isConnected && !kernel.channel.isDisposed) return kernel;
      // Lost in a way not reported yet: not handed out, and the next one is looked at.
      this.discard(kernel);
    }
    return undefined;
  }

  /**
   * The kernel being started for the pool, claimed for whoever waits: it resolves with the
   * kernel (undefined if its start failed). Undefined when no start of `language` is under way.
   */
  claimStarting(language: string): Promise<WarmKernel | undefined> | undefined {
    for (const slot of this.slots) {
      if (slot.language !== language || !slot.starting || slot.claimed || slot.discarded) continue;
      slot.claimed = true;
      return slot.starting;
    }
    return undefined;
  }

  /**
   * Gives up one pooled kernel so that a context can have its slot; resolves once Jupyter has
   * shut it down. Undefined when the pool holds none.
   */
  evict(): Promise<void> | undefined {
    const candidates = [...this.slots].filter((slot) => !slot.claimed && !slot.discarded);
    const slot = candidates.find((candidate) => candidate.kernel) ?? candidates[0];
    if (!slot) return undefined;
    this.slots.delete(slot);
    slot.discarded = true;
    this.reportSize(slot.language);
    this.options.logger.debug({ language: slot.language }, 'a pooled kernel gives its slot to a context');
    if (slot.kernel) return this.release(slot.kernel.channel.kernelId, slot.kernel.channel);
    // Shut down by its start's own continuation once it exists (see topUp).
    return slot.starting?.then(() => slot.released);
  }

  /**
   * Shuts a kernel down in the background (a kernel the pool handed out and that was replaced,
   * or one that failed its hand-out) and tops the pool up once it is gone.
   */
  release(kernelId: string, channel?: KernelChannel): Promise<void> {
    channel?.dispose();
    const done = this.options.jupyter
      .shutdownKernel(kernelId)
      .catch((error: unknown) => this.options.logger.warn({ err: error, kernel: kernelId }, 'could not shut a kernel down'))
      .finally(() => {
        this.releasing.delete(done);
        this.fillSoon();
      });
    this.releasing.add(done);
    return done;
  }

  /**
   * Lets the pool start kernels from now on, and fills it. The server calls it once the first
   * context exists: at start-up the default context's kernel gets the CPUs to itself.
   */
  activate(): void {
    if (this.active) return;
    this.active = true;
    this.fill();
  }

  /** Fills the pool after REFILL_DELAY_MS: after a hand-out, once its taker had a moment. */
  fillSoon(): void {
    if (this.closed || !this.active || this.refillTimer) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, REFILL_DELAY_MS);
    this.refillTimer.unref();
  }

  /**
   * Starts what the pool lacks, within MAX_CONTEXTS; returns at once. `retryNow` cuts short the
   * pause after failed starts (Jupyter is known to be back).
   */
  fill({ retryNow = false }: { retryNow?: boolean } = {}): void {
    if (this.closed || !this.active) return;
    if (retryNow) {
      for (const retry of this.retries.values()) clearTimeout(retry.timer);
      this.retries.clear();
    }
    this.targets ??= this.options.targets().then(
      (targets) => {
        for (const { spec, size } of targets) {
          this.sizes.set(spec.language, size);
          this.reportSize(spec.language);
        }
        return targets;
      },
      (error: unknown) => {
        this.targets = undefined;
        throw error;
      },
    );
    this.targets.then(
      (targets) => {
        for (const { spec, size } of targets) this.topUp(spec, size);
      },
      (error: unknown) => this.options.logger.debug({ err: error }, 'the kernel pool waits for Jupyter'),
    );
  }

  /** Shuts every pooled kernel down; kernels still starting are shut down when they exist. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    for (const retry of this.retries.values()) clearTimeout(retry.timer);
    for (const slot of this.slots) {
      slot.discarded = true;
      if (slot.kernel) void this.release(slot.kernel.channel.kernelId, slot.kernel.channel);
    }
    this.slots.clear();
    await Promise.all([...this.releasing]);
  }

  private topUp(spec: KernelSpecInfo, size: number): void {
    if (this.closed || this.retries.get(spec.language)?.timer) return;
    const mine = [...this.slots].filter((slot) => slot.language === spec.language && !slot.claimed);
    // One start at a time per language: kernels starting side by side slow each other and
    // whatever runs, and the pool refills faster than contexts are usually asked for.
    if (mine.length >= size || mine.some((slot) => slot.starting !== undefined) || !this.options.hasRoom()) return;
    const slot: Slot = { language: spec.language, claimed: false, discarded: false };
    this.slots.add(slot);
    slot.starting = this.start(spec, slot).then(
      (kernel) => {
        slot.starting = undefined;
        this.retries.delete(spec.language);
        if (slot.discarded || this.closed) {
          slot.released = this.release(kernel.channel.kernelId, kernel.channel);
          return undefined;
        }
        if (slot.claimed) {
          this.slots.delete(slot);
          this.fill();
          return kernel;
        }
        slot.kernel = kernel;
        this.reportSize(spec.language);
        this.fill();
        return kernel;
      },
      (error: unknown) => {
        slot.starting = undefined;
        this.slots.delete(slot);
        if (this.closed) return undefined;
        const delay = Math.min((this.retries.get(spec.language)?.delay ?? RETRY_MIN_MS / 2) * 2, RETRY_MAX_MS);
        this.options.logger.warn({ err: error, language: spec.language, retryInMs: delay }, 'could not start a kernel for the pool');
        const timer = setTimeout(() => {
          this.retries.set(spec.language, { delay });
          this.fill();
        }, delay);
        timer.unref();
        this.retries.set(spec.language, { delay, timer });
        return undefined;
      },
    );
  }

  private async start(spec: KernelSpecInfo, slot: Slot): Promise<WarmKernel> {
    const { jupyter, logger, directory } = this.options;
    const model = await jupyter.startKernel(spec.name, directory);
    const lost = () => this.lost(slot);
    const events: ChannelEvents = { onAutorestart: lost, onGone: lost, onConnectionLost: lost, onMessageTooLarge: lost };
    try {
      const channel = await KernelChannel.open(jupyter, model, events, logger);
      return { channel, language: spec.language, kernelName: spec.name, directory };
    } catch (error) {
      await jupyter.shutdownKernel(model.id).catch(() => undefined);
      throw error;
    }
  }

  /** A pooled kernel died or lost its connection: it is shut down and replaced. */
  private lost(slot: Slot): void {
    if (!this.slots.has(slot) || !slot.kernel) return;
    this.options.logger.warn({ language: slot.language, kernel: slot.kernel.channel.kernelId }, 'a pooled kernel was lost; replacing it');
    this.slots.delete(slot);
    this.reportSize(slot.language);
    this.discard(slot.kernel);
  }

  private discard(kernel: WarmKernel): void {
    void this.release(kernel.channel.kernelId, kernel.channel);
  }

  private reportSize(language: string): void {
    let ready = 0;
    for (const slot of this.slots) if (slot.language === language && slot.kernel) ready++;
    this.options.observer?.size(language, ready);
  }
}
