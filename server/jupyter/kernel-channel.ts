import type { Kernel, KernelMessage } from '@jupyterlab/services';
import type WebSocket from 'ws';
import { JupyterUnavailableError, KernelError } from '../errors.js';
import type { Logger } from '../logger.js';
import { toJupyterError, type JupyterClient } from './client.js';
import { toExecuteReply, toKernelOutput, type ExecuteReply, type KernelOutput } from './kernel-output.js';

/** A request to run code. */
export interface CodeRequest {
  code: string;
  /** No output and no history entry: the execution count does not move (set-up code, probes). */
  silent?: boolean;
  /** Whether the code may ask for input (input(), getpass()). */
  allowStdin?: boolean;
  /** Expressions the kernel evaluates after the code; their values come back with the reply. */
  userExpressions?: Record<string, string>;
}

/** The code waits for input (input(), getpass()). */
export interface InputPrompt {
  prompt: string;
  password: boolean;
  /** Sends the answer; a second answer, or one after the request ended, is dropped. */
  reply(value: string): void;
}

/** Where a request's outputs and prompts go, and how long it is waited for. */
export interface ExecuteOptions {
  /** Aborting stops waiting for the request: execute resolves undefined. */
  signal?: AbortSignal | undefined;
  onOutput?(output: KernelOutput): void;
  onInput?(prompt: InputPrompt): void;
  /** The kernel's first message about the request arrived: it exists and took the request. */
  onAnswer?(): void;
  /**
   * For kernels that publish outputs after their `idle`: code that prints one line, run silently
   * once the request is done. Its line comes out after every output the request left queued, so
   * the request is listened to until that line arrives.
   */
  outputBarrier?: string;
  /**
   * For kernels with set-up work of their own between echoing a request and running its code,
   * where an interrupt does harm: how long after the echo an interrupt still waits.
   */
  interruptSettleMs?: number;
}

/** The longest wait for an output barrier's line: past it, the request ends without it. */
const OUTPUT_BARRIER_MS = 2000;

/**
 * How long an interrupt waits for the kernel to take the request that is waiting (see
 * `interrupt`); past it, the signal is sent anyway, for kernels that do not echo requests.
 */
const TAKE_WAIT_MS = 3000;

/**
 * How long a request's reply may trail the kernel's `idle` for it. They travel on two sockets,
 * so either can arrive first; past this, the kernel is taken to have dropped the reply.
 */
const REPLY_AFTER_IDLE_MS = 2000;

/** How long a kernel may take to answer its first kernel_info request. */
const KERNEL_READY_MS = 60_000;
/** How long to wait for that answer before reopening the kernel socket. */
const KERNEL_INFO_RETRY_MS = 1_500;
/** The longest wait between two sockets opened for a kernel that does not answer yet. */
const KERNEL_INFO_RETRY_MAX_MS = 8_000;
/** How long a dropped kernel socket may take to come back before Jupyter is taken for gone. */
const RECONNECT_GRACE_MS = 2000;
/** How long a reconnecting connection may take to settle before it is disposed regardless. */
const SETTLE_BEFORE_DISPOSE_MS = 5000;

/** What a channel reports to its owner; each is called at most once per channel. */
export interface ChannelEvents {
  /** The kernel process died and Jupyter is restarting it under the same id. */
  onAutorestart(channel: KernelChannel): void;
  /** The kernel is gone from Jupyter for good (shut down behind our back, say). */
  onGone(channel: KernelChannel): void;
  /** The socket stayed down past the grace period: Jupyter may have died or restarted. */
  onConnectionLost(channel: KernelChannel): void;
  /** The kernel sent a message larger than the channel accepts; the socket was closed. */
  onMessageTooLarge(channel: KernelChannel): void;
  /** The kernel started working on a request (every time). */
  onBusy?(channel: KernelChannel): void;
}

/**
 * One connection to one Jupyter kernel: the kernel WebSocket with its handshake, its
 * reconnection watchdog and its backpressure. The only code that reaches into
 * @jupyterlab/services' connection internals. A channel is used until it reports trouble,
 * then replaced by a new one (to the same kernel, or to a new kernel) by its owner.
 */
export class KernelChannel {
  private reconnectWatchdog: NodeJS.Timeout | undefined;
  private disposed = false;
  private reported: string | undefined;
  /** A request to run code that the kernel has not taken yet: settles when it takes it, or when the request ends first. */
  private untaken: Promise<'taken' | 'ended'> | undefined;

  private constructor(
    private readonly connection: Kernel.IKernelConnection,
    private events: ChannelEvents,
  ) {
    /* eslint-disable @typescript-eslint/unbound-method -- a Lumino signal calls the slot with the thisArg given beside it */
    connection.statusChanged.connect(this.onStatus, this);
    connection.connectionStatusChanged.connect(this.onConnectionStatus, this);
    /* eslint-enable @typescript-eslint/unbound-method */
  }

  /**
   * Opens a channel to a running kernel; resolves once the kernel answers its kernel_info
   * request, which proves the socket and the kernel are both up.
   *
   * Jupyter wires a WebSocket to the kernel's ZeroMQ ports when the socket opens; a socket
   * opened while Jupyter is (re)starting the kernel can be wired to ports nobody answers on.
   * Without a reply in a while, a NEW socket is opened, under a new session id, and the first
   * closed: reopening the same one (same session id) makes Jupyter "replace a stale connection",
   * which on Jupyter Server 1.23 can leave that session decoding our frames with the wrong
   * protocol (a struct.error per message) and the kernel silent for a minute. The wait between
   * attempts doubles, so a loaded machine is not flooded with sockets.
   */
  static async open(jupyter: JupyterClient, model: Kernel.IModel, events: ChannelEvents, logger: Logger): Promise<KernelChannel> {
    const deadline = Date.now() + KERNEL_READY_MS;
    for (let wait = KERNEL_INFO_RETRY_MS; ; wait = Math.min(wait * 2, KERNEL_INFO_RETRY_MAX_MS)) {
      const channel: KernelChannel = new KernelChannel(
        jupyter.connect(model, () => channel.report('onMessageTooLarge')),
        events,
      );
      let answered: boolean;
      try {
        answered = await channel.answersWithin(Math.min(wait, Math.max(0, deadline - Date.now())));
      } catch (error) {
        channel.dispose();
        throw error;
      }
      if (answered) {
        logger.debug({ kernel: model.id }, 'kernel connected');
        return channel;
      }
      channel.dispose();
      if (Date.now() >= deadline) throw new KernelError(`kernel ${model.id} did not answer within ${KERNEL_READY_MS / 1000} seconds`);
      logger.debug({ kernel: model.id }, 'no kernel_info reply yet; opening a new kernel socket');
    }
  }

  get kernelId(): string {
    return this.connection.id;
  }

  get model(): Kernel.IModel {
    return this.connection.model;
  }

  get isDisposed(): boolean {
    return this.disposed || this.connection.isDisposed;
  }

  get isConnected(): boolean {
    return this.connection.connectionStatus === 'connected';
  }

  /**
   * Sends the kernel an interrupt (SIGINT, for the kernels here). A kernel ignores that signal
   * between requests: ipykernel sets SIGINT to "ignore" at start and turns KeyboardInterrupt on
   * only around the handler of a request. A signal sent after the request left but before the
   * kernel took it is lost, and the code then runs to its end. So while a request to run code is
   * on its way, the signal waits until the kernel echoes it (execute_input, published inside the
   * handler), and is not sent at all if the request ends first; past TAKE_WAIT_MS it is sent
   * anyway. Resolves once the signal was sent or found needless.
   */
  async interrupt(): Promise<void> {
    const untaken = this.untaken;
    if (untaken !== undefined && (await untilAborted(untaken, AbortSignal.timeout(TAKE_WAIT_MS))) === 'ended') return;
    await this.connection.interrupt().catch((error: unknown) => {
      throw toJupyterError(error);
    });
  }

  /** Reopens the socket (after Jupyter came back, say). */
  async reconnect(): Promise<void> {
    await this.connection.reconnect();
  }

  /**
   * Pauses or resumes reading from the kernel socket: how a reader that must lose nothing
   * pushes back on a kernel that prints faster than it reads. The socket is private to
   * @jupyterlab/services, but it is the `ws` WebSocket this client supplied.
   */
  setPaused(paused: boolean): void {
    const socket = (this.connection as unknown as { _ws?: WebSocket | null })._ws;
    if (!socket || typeof socket.pause !== 'function') return;
    if (paused) socket.pause();
    else socket.resume();
  }

  /** Resolves once the socket is connected; a socket that stays down means Jupyter is away. */
  async waitForConnection(timeoutMs = 10_000): Promise<void> {
    if (this.isConnected) return;
    const connection = this.connection;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        connection.connectionStatusChanged.disconnect(onChange);
        if (error) reject(error);
        else resolve();
      };
      const onChange = (_sender: unknown, status: Kernel.ConnectionStatus) => {
        if (status === 'connected') done();
        else if (status === 'disconnected') done(new JupyterUnavailableError('the kernel connection is down'));
      };
      const timer = setTimeout(
        () => done(new JupyterUnavailableError(`no kernel connection within ${timeoutMs / 1000} seconds`)),
        timeoutMs,
      );
      connection.connectionStatusChanged.connect(onChange);
    });
  }

  /**
   * Sends what the channel reports to a new owner from now on: a kernel started ahead of time
   * (the pool's) is handed to a context. False when the channel already reported trouble to
   * its previous owner, or was closed: such a kernel must not be handed on.
   */
  handTo(events: ChannelEvents): boolean {
    if (this.isDisposed || this.reported !== undefined || !this.isConnected) return false;
    this.events = events;
    return true;
  }

  /**
   * Runs code in the kernel. Outputs and input prompts reach `options` in the order the kernel
   * sent them until this resolves: with the reply once the kernel is done with the request (a
   * request is done after both its reply and the kernel's `idle`), or with undefined when the
   * kernel went away first (the request was cancelled) or `options.signal` aborted. Never
   * rejects; stopping the wait does not interrupt the kernel.
   */
  async execute(request: CodeRequest, options: ExecuteOptions = {}): Promise<ExecuteReply | undefined> {
    const { signal, outputBarrier } = options;
    if (signal?.aborted) return undefined;
    const silent = request.silent === true;
    const future = this.connection.requestExecute(
      {
        code: request.code,
        silent,
        store_history: !silent,
        user_expressions: request.userExpressions ?? {},
        allow_stdin: request.allowStdin === true,
        stop_on_error: false,
      },
      // Disposed on the reply unless late outputs are awaited past it.
      outputBarrier === undefined,
    );
    // A silent request is not echoed; an interrupt does not wait for it.
    let take: ((how: 'taken' | 'ended') => void) | undefined;
    let settleTimer: NodeJS.Timeout | undefined;
    const untaken = silent ? undefined : new Promise<'taken' | 'ended'>((resolve) => (take = resolve));
    if (untaken) this.untaken = untaken;
    const settleTake = (how: 'taken' | 'ended') => {
      take?.(how);
      if (this.untaken === untaken) this.untaken = undefined;
    };
    // A request that goes idle without a reply ends as `dropped` rather than waiting for ever.
    let replied = false;
    let dropTimer: NodeJS.Timeout | undefined;
    let markDropped!: () => void;
    const droppedReply = new Promise<'dropped'>((resolve) => (markDropped = () => resolve('dropped')));
    future.onReply = () => {
      replied = true;
      clearTimeout(dropTimer);
    };
    const onIdle = () => {
      if (!replied && dropTimer === undefined) dropTimer = setTimeout(markDropped, REPLY_AFTER_IDLE_MS);
    };
    let answered = false;
    future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
      if (!answered) {
        answered = true;
        options.onAnswer?.();
      }
      if (untaken && msg.header.msg_type === 'execute_input') {
        const settleMs = options.interruptSettleMs ?? 0;
        if (settleMs > 0) settleTimer = setTimeout(() => settleTake('taken'), settleMs);
        else settleTake('taken');
      }
      if (msg.header.msg_type === 'status' && (msg.content as KernelMessage.IStatusMsg['content']).execution_state === 'idle') onIdle();
      if (!options.onOutput) return;
      const output = toKernelOutput(msg);
      if (output !== undefined) options.onOutput(output);
    };
    future.onStdin = (msg: KernelMessage.IStdinMessage) => {
      if (msg.header.msg_type !== 'input_request') return;
      const content = msg.content as KernelMessage.IInputRequestMsg['content'];
      let replied = false;
      options.onInput?.({
        prompt: content.prompt,
        password: content.password,
        reply: (value) => {
          if (replied || future.isDisposed) return;
          replied = true;
          future.sendInputReply({ status: 'ok', value }, msg.header as KernelMessage.IInputReplyMsg['parent_header']);
        },
      });
    };
    try {
      // Undefined when `signal` aborted; a rejection is a future cancelled with its connection.
      const reply = await untilAborted(Promise.race([future.done, droppedReply]), signal);
      if (reply !== undefined && outputBarrier !== undefined) await this.outputsFlushed(outputBarrier, signal);
      if (reply === 'dropped') return { status: 'dropped', userExpressions: {} };
      return reply === undefined ? undefined : toExecuteReply(reply.content);
    } catch {
      return undefined;
    } finally {
      clearTimeout(dropTimer);
      clearTimeout(settleTimer);
      if (untaken) settleTake('ended');
      future.onIOPub = () => undefined;
      future.onStdin = () => undefined;
      future.onReply = () => undefined;
      if (!future.isDisposed) future.dispose();
    }
  }

  /**
   * Runs `code` silently and resolves once its stream output arrives (or it failed, or
   * OUTPUT_BARRIER_MS passed, or `signal` aborted). The kernel's outputs leave in the order they
   * were queued, so every output of an earlier request is in by then.
   */
  private async outputsFlushed(code: string, signal: AbortSignal | undefined): Promise<void> {
    const barrier = this.connection.requestExecute(
      { code, silent: true, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: false },
      // Not on its own reply: the line may come after it, like the outputs it stands behind.
      false,
    );
    const limit = AbortSignal.timeout(OUTPUT_BARRIER_MS);
    try {
      const printed = new Promise<void>((resolve) => {
        barrier.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
          if (msg.header.msg_type === 'stream') resolve();
        };
      });
      // A cancelled request (the kernel went away) ends the wait; its reply alone does not.
      const failed = barrier.done.then(
        () => new Promise<void>(() => undefined),
        () => undefined,
      );
      await untilAborted(Promise.race([printed, failed]), signal ? AbortSignal.any([signal, limit]) : limit);
    } finally {
      barrier.onIOPub = () => undefined;
      if (!barrier.isDisposed) barrier.dispose();
    }
  }

  /**
   * Runs code the user never sees: silent, outside the history, so the kernel's execution
   * count does not move. Resolves when the kernel has run it; rejects with KernelError when it
   * fails, or when no answer came within `timeoutMs` (a kernel that died without Jupyter
   * noticing yet never answers).
   */
  async runSilently(code: string, timeoutMs: number): Promise<void> {
    const deadline = AbortSignal.timeout(timeoutMs);
    const reply = await this.execute({ code, silent: true }, { signal: deadline });
    if (reply === undefined) {
      throw new KernelError(
        deadline.aborted
          ? `kernel ${this.kernelId} did not answer within ${timeoutMs} ms`
          : `kernel ${this.kernelId}: the request was cancelled`,
      );
    }
    if (reply.status !== 'ok') {
      const detail = reply.error ? `${reply.error.name}: ${reply.error.value}` : reply.status;
      throw new KernelError(`kernel ${this.kernelId} could not be set up (${detail})`);
    }
  }

  /** Resolves when the kernel process answers a kernel_info request within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<void> {
    const reply = await untilAborted(this.connection.requestKernelInfo(), AbortSignal.timeout(timeoutMs));
    if (reply === undefined) throw new KernelError(`kernel ${this.kernelId} did not answer within ${timeoutMs} ms`);
  }

  /** Stops listening and closes the socket; the kernel keeps running. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.reconnectWatchdog);
    const connection = this.connection;
    /* eslint-disable @typescript-eslint/unbound-method -- the same slot and thisArg that were connected */
    connection.statusChanged.disconnect(this.onStatus, this);
    connection.connectionStatusChanged.disconnect(this.onConnectionStatus, this);
    /* eslint-enable @typescript-eslint/unbound-method */
    if (connection.isDisposed) return;
    if (connection.connectionStatus !== 'connecting') {
      connection.dispose();
      return;
    }
    // Disposed halfway through a reconnect that @jupyterlab/services started by itself (after
    // Jupyter restarted the kernel), the connection rejects a promise of its own that nobody
    // awaits: it is disposed once that reconnect has settled, or after a while regardless.
    const close = () => {
      clearTimeout(timer);
      connection.connectionStatusChanged.disconnect(settled);
      if (!connection.isDisposed) setImmediate(() => connection.dispose());
    };
    const settled = (_sender: unknown, status: Kernel.ConnectionStatus) => {
      if (status !== 'connecting') close();
    };
    const timer = setTimeout(close, SETTLE_BEFORE_DISPOSE_MS);
    timer.unref();
    connection.connectionStatusChanged.connect(settled);
  }

  /** Whether the kernel answers its first kernel_info request within `timeoutMs`. */
  private async answersWithin(timeoutMs: number): Promise<boolean> {
    const connection = this.connection;
    const answered = await untilAborted(
      connection.info.then(() => true),
      AbortSignal.timeout(timeoutMs),
    );
    if (answered === true) return true;
    if (connection.isDisposed) throw new KernelError(`the connection to kernel ${connection.id} was closed`);
    return false;
  }

  private report(event: 'onAutorestart' | 'onGone' | 'onConnectionLost' | 'onMessageTooLarge'): void {
    if (this.disposed || this.reported) return;
    this.reported = event;
    clearTimeout(this.reconnectWatchdog);
    this.events[event](this);
  }

  private onStatus(_connection: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'busy') this.events.onBusy?.(this);
    else if (status === 'autorestarting') this.report('onAutorestart');
    else if (status === 'dead') this.report('onGone');
  }

  private onConnectionStatus(connection: Kernel.IKernelConnection, status: Kernel.ConnectionStatus): void {
    clearTimeout(this.reconnectWatchdog);
    if (this.disposed) return;
    if (status === 'connected') {
      // Back after an outage the owner was told about: the next one is news again.
      if (this.reported === 'onConnectionLost') this.reported = undefined;
      return;
    }
    // A socket that comes back quickly loses nothing: Jupyter buffers the kernel's messages
    // for the session and replays them. One that stays down means Jupyter went away.
    this.reconnectWatchdog = setTimeout(() => {
      if (connection.connectionStatus !== 'connected') this.report('onConnectionLost');
    }, RECONNECT_GRACE_MS);
  }
}

/** Settles like `promise`, or resolves undefined as soon as `signal` aborts; leaves no listener behind. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
