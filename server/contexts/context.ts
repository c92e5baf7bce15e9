import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import { ContextBusyError, KernelError, ShuttingDownError } from '../errors.js';
import { isJupyterNotFound, type JupyterClient } from '../jupyter/client.js';
import { KernelChannel, type ChannelEvents } from '../jupyter/kernel-channel.js';
import { KernelLostError, type Outcome } from '../runs/failures.js';
import { runExecution, type EventSink, type ExecuteRequest, type ExecutionHost, type RunControl, type RunOptions } from '../runs/run.js';
import type { KernelEvents } from './events.js';
import type { WarmKernel } from './kernel-pool.js';
import { kernelMoveCode } from './kernel-setup.js';
import { oomKillCount } from './oom-kills.js';
import { SerialQueue } from './serial-queue.js';

export interface ContextInfo {
  id: string;
  language: string;
  cwd: string;
}

/** How long a kernel taken from the pool may take to answer, or to be moved to the context's cwd. */
const WARM_KERNEL_ANSWER_MS = 3000;

/** Kernels started ahead of time, for restarts and replacements. */
export interface WarmKernelSource {
  /** A ready kernel for this context (its language, a cwd it can be moved to), or undefined. */
  take(): WarmKernel | undefined;
  /** Shuts down, in the background, a kernel this context no longer uses. */
  release(kernelId: string, channel?: KernelChannel): void;
}

export interface ContextOptions {
  language: string;
  kernelName: string;
  cwd: string;
  jupyter: JupyterClient;
  logger: Logger;
  execution: RunOptions;
  maxQueuedExecutions: number;
  /** Called once when the context is gone for good (deleted, or the server closing). */
  onClosed?: (context: KernelContext) => void;
  /** The largest kernel message accepted (as the Jupyter client was told), for messages. */
  maxMessageBytes: number;
  /** Called when the kernel socket stays down: Jupyter may have died or restarted. */
  onConnectionLost?: (context: KernelContext) => void;
  /** Told of kernel starts, restarts and deaths. */
  events?: KernelEvents;
  /** A kernel started ahead of time to use instead of starting one (creation only). */
  warm?: WarmKernel;
  /** Where restarts and replacements get a kernel started ahead of time. */
  warmKernels?: WarmKernelSource;
}

/**
 * One context: a kernel with a stable id, language and working directory, its persistent
 * WebSocket, and the queue that lets one execution at a time reach it.
 *
 * The kernel under a context can change (it died and Jupyter restarted it, or it vanished
 * and a new one was started); the context's id and cwd do not. Each kernel incarnation has a
 * "life" signal that aborts when it goes, so that an execution waiting on it ends at once.
 */
export class KernelContext {
  readonly id = randomUUID();
  readonly language: string;
  readonly kernelName: string;
  readonly cwd: string;

  private readonly jupyter: JupyterClient;
  private readonly logger: Logger;
  private readonly options: ContextOptions;
  private readonly queue: SerialQueue;
  private channel: KernelChannel | undefined;
  private life = new AbortController();
  private closed = false;
  /** Set while a replacement kernel or connection is being set up. */
  private replacing: Promise<void> | undefined;
  private readonly channelEvents: ChannelEvents;
  /**
   * Where the current kernel process was started: the cwd, or the pool's directory for a kernel
   * taken from the pool, which was moved to the cwd and must be again whenever Jupyter restarts
   * that process (a restart keeps the directory it was started in).
   */
  private kernelDirectory: string;
  /** The out-of-memory kill count when the kernel last started working: see kernelDeath(). */
  private oomKillsWhenBusy = oomKillCount();

  private constructor(options: ContextOptions) {
    this.language = options.language;
    this.kernelName = options.kernelName;
    this.cwd = options.cwd;
    this.kernelDirectory = options.cwd;
    this.jupyter = options.jupyter;
    this.options = options;
    this.queue = new SerialQueue(options.maxQueuedExecutions);
    this.logger = options.logger.child({ context: this.id });
    this.channelEvents = {
      onAutorestart: (channel) => {
        // Jupyter noticed the kernel process died and restarts it under the same kernel id.
        this.logger.warn({ kernel: channel.kernelId }, 'kernel died and is being restarted by Jupyter');
        this.options.events?.emit('kernel_died', { language: this.language });
        this.options.events?.emit('kernel_restarted', { language: this.language, reason: 'died' });
        this.reconnect(channel, this.kernelDeath(), { waitForOld: true, restarted: true });
      },
      onBusy: () => {
        // One small read per execution; it narrows an OOM kill down to the time this kernel worked.
        this.oomKillsWhenBusy = oomKillCount();
      },
      onGone: (channel) => {
        // The kernel is gone from Jupyter for good (shut down behind our back, or Jupyter was
        // replaced): a new one keeps the context's id and cwd.
        if (channel !== this.channel || this.closed) return;
        this.logger.warn({ kernel: channel.kernelId }, 'kernel is gone; starting a replacement');
        this.options.events?.emit('kernel_died', { language: this.language });
        void this.replaceKernel(
          this.kernelDeath('The kernel was shut down or lost and was replaced by a new one; its state was lost'),
        ).catch((error: unknown) => this.logger.error({ err: error }, 'could not replace the kernel'));
      },
      onConnectionLost: (channel) => {
        if (channel !== this.channel) return;
        // Output is lost, so an execution in flight ends now with an error; only the registry
        // can find out whether the kernel still exists and mend the context.
        this.endLife(new KernelLostError('JupyterUnavailable'));
        this.options.onConnectionLost?.(this);
      },
      onMessageTooLarge: (channel) => {
        // Jupyter would replay the same message to the same session forever: a new connection
        // (a new session) starts clean. The kernel keeps its state.
        this.logger.warn(
          { kernel: channel.kernelId, limit: this.options.maxMessageBytes },
          'the kernel sent a message over the size limit; reconnecting',
        );
        this.reconnect(
          channel,
          new KernelLostError(
            'OutputTooLarge',
            `The kernel sent a single output of more than ${this.options.maxMessageBytes} bytes, which was dropped; the execution was ended but may still be running in the kernel`,
          ),
          { waitForOld: false, restarted: false },
        );
      },
    };
  }

  /**
   * Starts a kernel and connects to it, or takes `options.warm` (moved to the cwd); resolves
   * once the kernel answers. A warm kernel that fails its hand-out is not shut down here: the
   * caller, who owns it, does.
   */
  static async create(options: ContextOptions): Promise<KernelContext> {
    const context = new KernelContext(options);
    if (options.warm) await context.adopt(options.warm, { counts: 'start' });
    else await context.startKernel();
    return context;
  }

  get info(): ContextInfo {
    return { id: this.id, language: this.language, cwd: this.cwd };
  }

  get kernelId(): string | undefined {
    return this.channel?.kernelId;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Queues one execution and resolves with its outcome when it has finished. Throws
   * ContextBusyError before queuing when too many executions already wait; events go to `sink`.
   */
  async execute(request: ExecuteRequest, sink: EventSink, control: RunControl): Promise<Outcome> {
    this.assertAcceptsWork();
    return this.queue.run(async () => {
      this.assertAcceptsWork();
      control.onStarted();
      if (this.replacing) await this.replacing.catch(() => undefined);
      // A kernel lost while Jupyter was away and not yet replaced is replaced now; if Jupyter
      // is still away this throws JupyterUnavailableError, which the stream reports.
      if (!this.channel) await this.replaceKernel(new KernelLostError('KernelDied', 'The kernel was lost; a new one was started'));
      const channel = this.channel!;
      await channel.waitForConnection();
      // The previous kernel life may have ended (it died and Jupyter restarted it, say); this
      // execution starts on the one there is now.
      if (this.life.signal.aborted) this.life = new AbortController();
      return runExecution(this.executionHost(channel), request, sink, control.stop, this.options.execution, {
        onInputRequest: control.onInputRequest,
        onUsage: control.onUsage,
      });
    }, control.cancel);
  }

  /** Throws if one more execution could not be queued. */
  assertAcceptsWork(): void {
    if (this.closed) throw new ShuttingDownError();
    if (this.queue.full) throw new ContextBusyError(this.id, this.queue.waitingCount);
  }

  /** Interrupts whatever runs in the kernel. */
  async interrupt(): Promise<void> {
    await this.channel?.interrupt();
  }

  /** Restarts the kernel: all state is wiped; id and cwd stay. A running execution ends with an error. */
  async restart(reason: 'requested' | 'unresponsive' = 'requested'): Promise<void> {
    this.options.events?.emit('kernel_restarted', { language: this.language, reason });
    if (this.replacing) await this.replacing.catch(() => undefined);
    const channel = this.channel;
    this.endLife(new KernelLostError('ContextRestarted'));
    if (!channel || channel.isDisposed) {
      await this.replaceKernel(new KernelLostError('ContextRestarted'));
      return;
    }
    // Jupyter restarts the process under the same kernel id, possibly on new ports; the
    // context then talks to it over a new connection, set up like any other (with the
    // handshake's retries), rather than through the old connection's own restart, which could
    // wait forever for a socket wired to the dead process.
    this.detachChannel();
    this.replacing = (async () => {
      // A kernel from the pool makes the restart a swap: the old kernel is shut down in the
      // background instead of being waited for.
      if (await this.adoptWarmKernel({ counts: 'restart' })) {
        this.options.warmKernels!.release(channel.kernelId);
        return;
      }
      try {
        await this.jupyter.restartKernel(channel.kernelId);
      } catch (error) {
        // A kernel Jupyter no longer knows (shut down behind our back) cannot be restarted: a
        // new one takes its place, which is what a restart promises. (Jupyter 1.x answers 500.)
        if (!isJupyterNotFound(error) && (await this.jupyter.hasKernel(channel.kernelId).catch(() => true))) throw error;
        await this.startKernel();
        return;
      }
      await this.openChannel(channel.model, { restarted: true });
    })().finally(() => {
      this.replacing = undefined;
    });
    await this.replacing;
  }

  /** Shuts the kernel down and refuses further work. */
  async delete(): Promise<void> {
    this.close(new KernelLostError('ContextDeleted'));
    const channel = this.detachChannel();
    if (channel) {
      await this.jupyter.shutdownKernel(channel.kernelId).catch((error: unknown) => {
        // The context is gone either way; a kernel Jupyter no longer answers for goes with it.
        this.logger.warn({ err: error, kernel: channel.kernelId }, 'could not shut the kernel down');
      });
    }
  }

  /**
   * Brings the context back after Jupyter was unreachable: a kernel Jupyter no longer knows
   * is replaced by a new one (same id and cwd, fresh state); a live one gets a new connection.
   */
  async recover(runningKernelIds: ReadonlySet<string>): Promise<void> {
    if (this.closed || this.replacing) return;
    const channel = this.channel;
    if (!channel || channel.isDisposed || !runningKernelIds.has(channel.kernelId)) {
      await this.replaceKernel(new KernelLostError('JupyterRestarted'));
    } else if (!channel.isConnected) {
      this.reconnect(channel, new KernelLostError('JupyterUnavailable'), { waitForOld: false, restarted: false });
      // reconnect() has just set it; TypeScript still holds it undefined from the check above.
      await (this.replacing as Promise<void> | undefined);
    }
  }

  /** Closes the kernel socket without shutting the kernel down (server shutdown). */
  disconnect(): void {
    this.close(new KernelLostError('ServerShuttingDown'));
    this.detachChannel();
  }

  /** Waits until the running and queued executions have finished. */
  async drain(): Promise<void> {
    await this.queue.run(async () => undefined);
  }

  /** Stops using the current channel and closes it; returns it. */
  private detachChannel(): KernelChannel | undefined {
    const channel = this.channel;
    this.channel = undefined;
    channel?.dispose();
    return channel;
  }

  private close(reason: KernelLostError): void {
    if (this.closed) return;
    this.closed = true;
    // Requests still waiting learn why they won't run: the context was deleted, or the server stops.
    this.queue.rejectWaiting(reason);
    this.endLife(reason);
    this.options.onClosed?.(this);
  }

  private endLife(reason: KernelLostError): void {
    if (!this.life.signal.aborted) this.life.abort(reason);
  }

  private executionHost(channel: KernelChannel): ExecutionHost {
    return {
      kernel: channel,
      language: this.language,
      lifeSignal: this.life.signal,
      interrupt: () => channel.interrupt(),
      restartAfterStuck: () => this.restart('unresponsive'),
      setPaused: (paused) => channel.setPaused(paused),
      verifyKernel: async () => {
        if (channel !== this.channel || this.replacing) return;
        if (await this.jupyter.hasKernel(channel.kernelId)) return;
        if (channel !== this.channel) return;
        this.logger.warn({ kernel: channel.kernelId }, 'the kernel no longer exists in Jupyter; starting a replacement');
        await this.replaceKernel(
          new KernelLostError('KernelDied', 'The kernel was shut down outside the server and replaced by a new one; its state was lost'),
        );
      },
    };
  }

  private async startKernel(): Promise<void> {
    const model = await this.jupyter.startKernel(this.kernelName, this.cwd);
    this.options.events?.emit('kernel_started', { language: this.language });
    try {
      this.kernelDirectory = this.cwd;
      await this.openChannel(model, { restarted: false });
    } catch (error) {
      await this.jupyter.shutdownKernel(model.id).catch(() => undefined);
      throw error;
    }
    // Deleted while its kernel started: the kernel goes too.
    if (this.closed) await this.jupyter.shutdownKernel(model.id).catch(() => undefined);
  }

  /**
   * Connects to a kernel. After Jupyter restarted its process (`restarted`), a kernel that was
   * started elsewhere (taken from the pool) is moved to the cwd again before anything runs.
   */
  private async openChannel(model: KernelChannel['model'], { restarted }: { restarted: boolean }): Promise<void> {
    const channel = await KernelChannel.open(this.jupyter, model, this.channelEvents, this.logger);
    if (restarted && this.kernelDirectory !== this.cwd) {
      try {
        await this.moveKernel(channel, this.kernelDirectory);
      } catch (error) {
        channel.dispose();
        throw error;
      }
    }
    this.useChannel(channel);
  }

  private useChannel(channel: KernelChannel): void {
    if (this.closed) {
      channel.dispose();
      return;
    }
    this.channel = channel;
    this.life = new AbortController();
  }

  /**
   * Makes a kernel started ahead of time this context's: it reports to this context from now
   * on, answers, and runs in the cwd. Throws (and closes its channel) when the kernel was lost
   * or does not answer; the kernel itself is left to the caller.
   */
  private async adopt(warm: WarmKernel, { counts }: { counts: 'start' | 'restart' }): Promise<void> {
    const channel = warm.channel;
    if (!channel.handTo(this.channelEvents)) {
      channel.dispose();
      throw new KernelError(`the pooled kernel ${channel.kernelId} was lost before it was handed out`);
    }
    try {
      await this.moveKernel(channel, warm.directory);
    } catch (error) {
      channel.dispose();
      throw error;
    }
    this.kernelDirectory = warm.directory;
    if (counts === 'start') this.options.events?.emit('kernel_started', { language: this.language });
    this.useChannel(channel);
  }

  /**
   * Takes a ready kernel from the pool, if there is one and it comes up; false otherwise (a
   * kernel that fails its hand-out is shut down and the caller starts one the usual way).
   */
  private async adoptWarmKernel(options: { counts: 'start' | 'restart' }): Promise<boolean> {
    const warm = this.options.warmKernels?.take();
    if (!warm) return false;
    try {
      await this.adopt(warm, options);
      return true;
    } catch (error) {
      this.logger.warn({ err: error, kernel: warm.channel.kernelId }, 'a pooled kernel could not be used; starting one instead');
      this.options.warmKernels!.release(warm.channel.kernelId, warm.channel);
      return false;
    }
  }

  /**
   * Moves a kernel started in `from` to the cwd (nothing to do when it started there), and in
   * every case proves it answers: a kernel that died unnoticed does not.
   */
  private async moveKernel(channel: KernelChannel, from: string): Promise<void> {
    if (from === this.cwd) return channel.ping(WARM_KERNEL_ANSWER_MS);
    const code = kernelMoveCode(this.language, from, this.cwd);
    if (code === undefined) throw new KernelError(`a ${this.language} kernel started in ${from} cannot be moved to ${this.cwd}`);
    await channel.runSilently(code, WARM_KERNEL_ANSWER_MS);
  }

  /**
   * Talks to the same kernel over a new connection, ending the current life with `reason`.
   * After Jupyter restarted a dead kernel under the same id, the old connection's session
   * bookkeeping may still expect the dead process, and replies it took for stale would leave
   * the next execution waiting forever; after a message too large, Jupyter would replay it to
   * the same session.
   */
  private reconnect(old: KernelChannel, reason: KernelLostError, options: { waitForOld: boolean; restarted: boolean }): void {
    if (old !== this.channel) return;
    this.endLife(reason);
    if (this.replacing) return;
    this.replacing = (async () => {
      if (options.waitForOld) {
        // Let the old connection finish the reconnect it starts on its own right after this
        // status (a macrotask from now): disposing it halfway would reject a promise inside
        // @jupyterlab/services that nobody awaits.
        await new Promise((resolve) => setImmediate(resolve));
        await old.waitForConnection().catch(() => undefined);
      }
      this.detachChannel();
      try {
        await this.openChannel(old.model, { restarted: options.restarted });
      } catch (error) {
        // A context deleted meanwhile gets no new kernel (nobody would ever shut it down).
        if (this.closed) return;
        this.logger.warn({ err: error, kernel: old.kernelId }, 'the kernel did not answer on a new connection; starting a new one');
        await this.startKernel();
      }
    })().finally(() => {
      this.replacing = undefined;
    });
    this.replacing.catch((error: unknown) => this.logger.error({ err: error }, 'could not bring the kernel back'));
  }

  /**
   * Why the kernel died: OutOfMemory when the out-of-memory killer killed a process since the
   * kernel last started working (kernels are its first choice), KernelDied otherwise.
   */
  private kernelDeath(message?: string): KernelLostError {
    const now = oomKillCount();
    const killed = now !== undefined && this.oomKillsWhenBusy !== undefined && now > this.oomKillsWhenBusy;
    this.oomKillsWhenBusy = now;
    return killed ? new KernelLostError('OutOfMemory') : new KernelLostError('KernelDied', message);
  }

  /** Starts a new kernel for this context after the old one was lost. */
  private replaceKernel(reason: KernelLostError): Promise<void> {
    this.endLife(reason);
    if (this.replacing) return this.replacing;
    this.detachChannel();
    this.replacing = (async () => {
      if (!(await this.adoptWarmKernel({ counts: 'start' }))) await this.startKernel();
    })().finally(() => {
      this.replacing = undefined;
    });
    return this.replacing;
  }
}
