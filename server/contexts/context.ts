import { randomUUID } from 'node:crypto';
import type { Kernel } from '@jupyterlab/services';
import type { Logger } from '../logger.js';
import type WebSocket from 'ws';
import { ContextBusyError, JupyterUnavailableError, KernelError, ShuttingDownError } from '../errors.js';
import type { JupyterClient } from '../jupyter/client.js';
import type { ExecutionTarget, RunControl } from '../execution/execution.js';
import { KernelLostError, type Outcome } from '../execution/failures.js';
import { runExecution, type EventSink, type ExecuteRequest, type ExecutionHost, type ExecutionOptions } from '../execution/run.js';
import type { KernelEvents } from './events.js';
import { oomKillCount } from './oom-kills.js';
import { SerialQueue } from './serial-queue.js';

/** How long a kernel may take to answer its first kernel_info request. */
const KERNEL_READY_MS = 60_000;
/** How long to wait for that answer before reopening the kernel socket. */
const KERNEL_INFO_RETRY_MS = 1_500;

/** How long a dropped kernel socket may take to come back before Jupyter is taken for gone. */
const RECONNECT_GRACE_MS = 2000;

export interface ContextInfo {
  id: string;
  language: string;
  cwd: string;
}

export interface ContextOptions {
  language: string;
  kernelName: string;
  cwd: string;
  jupyter: JupyterClient;
  logger: Logger;
  execution: ExecutionOptions;
  maxQueuedExecutions: number;
  /** Called once when the context is gone for good (deleted, or the server closing). */
  onClosed?: (context: KernelContext) => void;
  /** Called when the kernel socket stays down: Jupyter may have died or restarted. */
  onConnectionLost?: (context: KernelContext) => void;
  /** Told of kernel starts, restarts and deaths. */
  events?: KernelEvents;
}

/**
 * One context: a kernel with a stable id, language and working directory, its persistent
 * WebSocket, and the queue that lets one execution at a time reach it.
 *
 * The kernel under a context can change (it died and Jupyter restarted it, or it vanished
 * and a new one was started); the context's id and cwd do not. Each kernel incarnation has a
 * "life" signal that aborts when it goes, so that an execution waiting on it ends at once.
 */
export class KernelContext implements ExecutionTarget {
  readonly id = randomUUID();
  readonly language: string;
  readonly kernelName: string;
  readonly cwd: string;

  private readonly jupyter: JupyterClient;
  private readonly logger: Logger;
  private readonly options: ContextOptions;
  private readonly queue: SerialQueue;
  private kernel: Kernel.IKernelConnection | undefined;
  private life = new AbortController();
  private closed = false;
  /** Set while a replacement kernel is being started. */
  private replacing: Promise<void> | undefined;
  /** Fires when the socket has not come back by itself in time. */
  private reconnectWatchdog: NodeJS.Timeout | undefined;
  /** The out-of-memory kill count when the kernel last started working: see kernelDeath(). */
  private oomKillsWhenBusy = oomKillCount();

  private constructor(options: ContextOptions) {
    this.language = options.language;
    this.kernelName = options.kernelName;
    this.cwd = options.cwd;
    this.jupyter = options.jupyter;
    this.options = options;
    this.queue = new SerialQueue(options.maxQueuedExecutions);
    this.logger = options.logger.child({ context: this.id });
  }

  /** Starts a kernel and connects to it; resolves once the kernel answers. */
  static async create(options: ContextOptions): Promise<KernelContext> {
    const context = new KernelContext(options);
    await context.startKernel();
    return context;
  }

  get info(): ContextInfo {
    return { id: this.id, language: this.language, cwd: this.cwd };
  }

  get kernelId(): string | undefined {
    return this.kernel?.id;
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
      if (!this.kernel) await this.replaceKernel(new KernelLostError('KernelDied', 'The kernel was lost; a new one was started'));
      await this.waitForConnection(this.kernel!);
      // The previous kernel life may have ended (it died and Jupyter restarted it, say); this
      // execution starts on the one there is now.
      if (this.life.signal.aborted) this.life = new AbortController();
      return runExecution(this.executionHost(), request, sink, control.stop, this.options.execution, {
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
    await this.kernel?.interrupt();
  }

  /** Restarts the kernel: all state is wiped; id and cwd stay. A running execution ends with an error. */
  async restart(reason: 'requested' | 'unresponsive' = 'requested'): Promise<void> {
    this.options.events?.emit('kernel_restarted', { language: this.language, reason });
    const kernel = this.kernel;
    if (!kernel || kernel.isDisposed) {
      await this.replaceKernel(new KernelLostError('ContextRestarted', 'The context was restarted'));
      return;
    }
    this.endLife(new KernelLostError('ContextRestarted', 'The context was restarted; its state was lost'));
    await kernel.restart();
    this.life = new AbortController();
  }

  /** Shuts the kernel down and refuses further work. */
  async delete(): Promise<void> {
    this.close(new KernelLostError('ContextDeleted', 'The context was deleted'));
    const kernel = this.detachKernel();
    if (kernel) {
      await this.jupyter.shutdownKernel(kernel.id).catch((error: unknown) => {
        // The context is gone either way; a kernel Jupyter no longer answers for goes with it.
        this.logger.warn({ err: error, kernel: kernel.id }, 'could not shut the kernel down');
      });
    }
  }

  /**
   * Brings the context back after Jupyter was unreachable: a kernel Jupyter no longer knows
   * is replaced by a new one (same id and cwd, fresh state); a live one gets its socket back.
   */
  async recover(runningKernelIds: ReadonlySet<string>): Promise<void> {
    if (this.closed || this.replacing) return;
    const kernel = this.kernel;
    if (!kernel || kernel.isDisposed || !runningKernelIds.has(kernel.id)) {
      await this.replaceKernel(new KernelLostError('JupyterRestarted', 'Jupyter restarted and the kernel was lost; a new one was started'));
    } else if (kernel.connectionStatus !== 'connected') {
      await kernel.reconnect();
    }
  }

  /** Closes the kernel socket without shutting the kernel down (server shutdown). */
  disconnect(): void {
    this.close(new KernelLostError('ServerShuttingDown', 'The server is shutting down'));
    this.detachKernel();
  }

  /** Waits until the running and queued executions have finished. */
  async drain(): Promise<void> {
    await this.queue.run(async () => undefined);
  }

  /** Stops listening to the current kernel connection and disposes it; returns it. */
  private detachKernel(): Kernel.IKernelConnection | undefined {
    const kernel = this.kernel;
    this.kernel = undefined;
    clearTimeout(this.reconnectWatchdog);
    if (kernel) {
      kernel.statusChanged.disconnect(this.onStatus, this);
      kernel.connectionStatusChanged.disconnect(this.onConnectionStatus, this);
      if (!kernel.isDisposed) kernel.dispose();
    }
    return kernel;
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

  private executionHost(): ExecutionHost {
    const kernel = this.kernel;
    if (!kernel) throw new ShuttingDownError();
    return {
      kernel,
      language: this.language,
      lifeSignal: this.life.signal,
      interrupt: () => kernel.interrupt(),
      restartAfterStuck: () => this.restart('unresponsive'),
      setPaused: (paused) => {
        // The connection's socket is private to @jupyterlab/services but it is the `ws`
        // WebSocket we supplied; pausing it stops reading from Jupyter, which is how a slow
        // client pushes back on a kernel that prints faster than it reads.
        const socket = (kernel as unknown as { _ws?: WebSocket | null })._ws;
        if (!socket || typeof socket.pause !== 'function') return;
        if (paused) socket.pause();
        else socket.resume();
      },
    };
  }

  private async startKernel(): Promise<void> {
    const model = await this.jupyter.startKernel(this.kernelName, this.cwd);
    this.options.events?.emit('kernel_started', { language: this.language });
    try {
      await this.connectKernel(model);
    } catch (error) {
      await this.jupyter.shutdownKernel(model.id).catch(() => undefined);
      throw error;
    }
  }

  /** Opens a connection to a running kernel; resolves once the kernel answers. */
  private async connectKernel(model: Kernel.IModel): Promise<void> {
    const kernel = this.jupyter.connect(model);
    this.kernel = kernel;
    this.life = new AbortController();
    kernel.statusChanged.connect(this.onStatus, this);
    kernel.connectionStatusChanged.connect(this.onConnectionStatus, this);
    try {
      await this.waitUntilAnswering(kernel, model.id);
    } catch (error) {
      if (this.kernel === kernel) this.detachKernel();
      throw error;
    }
    this.logger.debug({ kernel: model.id }, 'kernel connected');
  }

  /**
   * Resolves on the kernel's first kernel_info reply, which proves the socket and the kernel
   * are both up. Jupyter connects a WebSocket to the kernel's ZeroMQ ports when the socket
   * opens; a socket opened while Jupyter is restarting the kernel on new ports can be wired to
   * the old ones and never hear back, so without a reply in a few seconds the connection is
   * reopened, until KERNEL_READY_MS have passed.
   */
  private async waitUntilAnswering(kernel: Kernel.IKernelConnection, kernelId: string): Promise<void> {
    const deadline = Date.now() + KERNEL_READY_MS;
    let answered = false;
    const info = kernel.info.then(() => {
      answered = true;
    });
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const wait = Math.min(KERNEL_INFO_RETRY_MS, Math.max(0, deadline - Date.now()));
      await Promise.race([info, new Promise((resolve) => (timer = setTimeout(resolve, wait)))]);
      clearTimeout(timer);
      if (answered) return;
      if (kernel.isDisposed) throw new KernelError(`the connection to kernel ${kernelId} was closed`);
      if (Date.now() >= deadline) throw new KernelError(`kernel ${kernelId} did not answer within ${KERNEL_READY_MS / 1000} seconds`);
      this.logger.debug({ kernel: kernelId }, 'no kernel_info reply yet; reopening the kernel socket');
      await kernel.reconnect().catch(() => undefined);
    }
  }

  /**
   * After Jupyter restarted a dead kernel under the same id, talks to it over a new
   * connection: the old one's session bookkeeping may still expect the dead process, and
   * replies it took for stale would leave the next execution waiting forever.
   */
  private reconnectAfterRestart(reason: KernelLostError): void {
    this.endLife(reason);
    if (this.replacing) return;
    const old = this.kernel;
    if (!old) return;
    this.replacing = (async () => {
      // Let the old connection finish the reconnect it starts on its own right after this
      // status (a macrotask from now): disposing it halfway would reject a promise inside
      // @jupyterlab/services that nobody awaits.
      await new Promise((resolve) => setImmediate(resolve));
      await this.waitForConnection(old).catch(() => undefined);
      this.detachKernel();
      try {
        await this.connectKernel(old.model);
      } catch (error) {
        this.logger.warn({ err: error, kernel: old.id }, 'the restarted kernel did not answer; starting a new one');
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

  private onStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (kernel !== this.kernel) return;
    // One small read per execution; it narrows an OOM kill down to the time this kernel worked.
    if (status === 'busy') this.oomKillsWhenBusy = oomKillCount();
    if (status === 'autorestarting') {
      // Jupyter noticed the kernel process died and restarts it under the same kernel id.
      this.logger.warn({ kernel: kernel.id }, 'kernel died and is being restarted by Jupyter');
      this.options.events?.emit('kernel_died', { language: this.language });
      this.options.events?.emit('kernel_restarted', { language: this.language, reason: 'died' });
      this.reconnectAfterRestart(this.kernelDeath());
    } else if (status === 'dead' && !this.closed) {
      // The kernel is gone from Jupyter for good (or Jupyter itself was replaced): start a new
      // one so the context keeps its id and cwd.
      this.logger.warn({ kernel: kernel.id }, 'kernel is gone; starting a replacement');
      this.options.events?.emit('kernel_died', { language: this.language });
      void this.replaceKernel(this.kernelDeath('The kernel died and was replaced by a new one; its state was lost')).catch(
        (error: unknown) => this.logger.error({ err: error }, 'could not replace the kernel'),
      );
    }
  }

  /** Resolves once the kernel socket is connected; a socket that stays down means Jupyter is away. */
  private async waitForConnection(kernel: Kernel.IKernelConnection, timeoutMs = 10_000): Promise<void> {
    if (kernel.connectionStatus === 'connected') return;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        kernel.connectionStatusChanged.disconnect(onChange);
        if (error) reject(error);
        else resolve();
      };
      const onChange = (_sender: unknown, status: Kernel.ConnectionStatus) => {
        if (status === 'connected') done();
        else if (status === 'disconnected') done(new JupyterUnavailableError('the kernel connection is down'));
      };
      const timer = setTimeout(() => done(new JupyterUnavailableError(`no kernel connection within ${timeoutMs / 1000} seconds`)), timeoutMs);
      kernel.connectionStatusChanged.connect(onChange);
    });
  }

  private onConnectionStatus(kernel: Kernel.IKernelConnection, status: Kernel.ConnectionStatus): void {
    if (kernel !== this.kernel) return;
    clearTimeout(this.reconnectWatchdog);
    if (status === 'connected') return;
    // A socket that comes back quickly loses nothing: Jupyter buffers the kernel's messages
    // for the session and replays them. One that stays down means Jupyter went away: output
    // is lost, so an execution in flight ends now with an error, and only the registry can
    // find out whether the kernel still exists and mend the context.
    this.reconnectWatchdog = setTimeout(() => {
      if (kernel !== this.kernel || kernel.connectionStatus === 'connected') return;
      this.endLife(new KernelLostError('JupyterUnavailable', 'The connection to Jupyter was lost during the execution'));
      this.options.onConnectionLost?.(this);
    }, RECONNECT_GRACE_MS);
  }

  /** Starts a new kernel for this context after the old one was lost. */
  private replaceKernel(reason: KernelLostError): Promise<void> {
    this.endLife(reason);
    if (this.replacing) return this.replacing;
    this.detachKernel();
    this.replacing = this.startKernel().finally(() => {
      this.replacing = undefined;
    });
    return this.replacing;
  }
}
