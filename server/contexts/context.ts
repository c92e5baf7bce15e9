import { randomUUID } from 'node:crypto';
import type { Kernel } from '@jupyterlab/services';
import type { Logger } from '../logger.js';
import type WebSocket from 'ws';
import { ContextBusyError, ShuttingDownError } from '../errors.js';
import type { JupyterClient } from '../jupyter/client.js';
import { KernelLostError, runExecution, type EventSink, type ExecuteRequest, type ExecutionHost, type ExecutionOptions } from '../execution/execution.js';
import { SerialQueue } from './serial-queue.js';

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
  /** Called once when the context is gone for good (deleted, or its kernel lost beyond repair). */
  onClosed?: (context: KernelContext) => void;
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
  private kernel: Kernel.IKernelConnection | undefined;
  private life = new AbortController();
  private closed = false;
  /** Set while a replacement kernel is being started. */
  private replacing: Promise<void> | undefined;

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
   * Queues one execution and resolves when it has finished. Throws ContextBusyError before
   * queuing when too many executions already wait; events go to `sink`.
   */
  async execute(request: ExecuteRequest, sink: EventSink, signal: AbortSignal): Promise<void> {
    this.assertAcceptsWork();
    await this.queue.run(async () => {
      this.assertAcceptsWork();
      if (this.replacing) await this.replacing;
      await runExecution(this.executionHost(), request, sink, signal, this.options.execution);
    }, signal);
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
  async restart(): Promise<void> {
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
    const kernel = this.kernel;
    this.kernel = undefined;
    if (kernel) {
      kernel.dispose();
      await this.jupyter.shutdownKernel(kernel.id);
    }
  }

  /** Closes the kernel socket without shutting the kernel down (server shutdown). */
  disconnect(): void {
    this.close(new KernelLostError('ServerShuttingDown', 'The server is shutting down'));
    this.kernel?.dispose();
    this.kernel = undefined;
  }

  /** Waits until the running and queued executions have finished. */
  async drain(): Promise<void> {
    await this.queue.run(async () => undefined);
  }

  private close(reason: KernelLostError): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.rejectWaiting(new ShuttingDownError());
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
      restartAfterStuck: () => this.restart(),
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
    const kernel = this.jupyter.connect(model);
    this.kernel = kernel;
    this.life = new AbortController();
    kernel.statusChanged.connect(this.onStatus, this);
    try {
      // The first kernel_info reply proves the socket and the kernel are both up.
      await kernel.info;
    } catch (error) {
      kernel.dispose();
      await this.jupyter.shutdownKernel(model.id).catch(() => undefined);
      throw error;
    }
    this.logger.debug({ kernel: model.id }, 'kernel connected');
  }

  private onStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (kernel !== this.kernel) return;
    if (status === 'autorestarting') {
      // Jupyter noticed the kernel process died and restarts it under the same kernel id.
      this.logger.warn({ kernel: kernel.id }, 'kernel died and is being restarted by Jupyter');
      this.endLife(new KernelLostError('KernelDied', 'The kernel died (it crashed, exited or ran out of memory) and was restarted; its state was lost'));
    } else if (status === 'idle' || status === 'busy' || status === 'starting') {
      if (this.life.signal.aborted && !this.closed && !this.replacing) this.life = new AbortController();
    } else if (status === 'dead' && !this.closed) {
      // The kernel is gone from Jupyter for good (or Jupyter itself was replaced): start a new
      // one so the context keeps its id and cwd.
      this.logger.warn({ kernel: kernel.id }, 'kernel is gone; starting a replacement');
      void this.replaceKernel(new KernelLostError('KernelDied', 'The kernel died and was replaced by a new one; its state was lost')).catch(
        (error: unknown) => this.logger.error({ err: error }, 'could not replace the kernel'),
      );
    }
  }

  /** Starts a new kernel for this context after the old one was lost. */
  private replaceKernel(reason: KernelLostError): Promise<void> {
    this.endLife(reason);
    if (this.replacing) return this.replacing;
    const old = this.kernel;
    this.kernel = undefined;
    old?.statusChanged.disconnect(this.onStatus, this);
    if (old && !old.isDisposed) old.dispose();
    this.replacing = this.startKernel().finally(() => {
      this.replacing = undefined;
    });
    return this.replacing;
  }
}
