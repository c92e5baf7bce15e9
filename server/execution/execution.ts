import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { envVarDialect, type EnvVars, type PreviousEnv } from './env-vars.js';
import { toErrorEvent, toOutputEvent, type OutputEvent } from './events.js';

export interface ExecuteRequest {
  code: string;
  envVars?: EnvVars | undefined;
  /** 0 means no limit. */
  timeoutMs: number;
}

/** Where events go. `write` returning false asks the producer to wait for `waitForDrain`. */
export interface EventSink {
  write(event: OutputEvent): boolean;
  waitForDrain(): Promise<void>;
}

/** What an execution needs from the context it runs in. */
export interface ExecutionHost {
  readonly kernel: Kernel.IKernelConnection;
  readonly language: string;
  /** Aborts when the kernel dies, is restarted or the connection is lost; reason says which. */
  readonly lifeSignal: AbortSignal;
  interrupt(): Promise<void>;
  /** Restarts the kernel because it ignored an interrupt. */
  restartAfterStuck(): Promise<void>;
  /** Pauses or resumes reading from the kernel socket (backpressure from a slow client). */
  setPaused(paused: boolean): void;
}

export interface ExecutionOptions {
  interruptGraceMs: number;
  maxOutputBytes: number;
}

/** Why the kernel went away under an execution; carried as the life signal's reason. */
export class KernelLostError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = 'KernelLostError';
  }
}

type Stop = { kind: 'timeout'; seconds: number } | { kind: 'abandoned' };

/**
 * Runs one request in a kernel and writes what the kernel emits to `sink`, in order. Never
 * throws for anything the kernel does: failures become `error` events. The caller writes
 * `end_of_execution` once this resolves. Resolves only when the kernel is ready for the next
 * execution (idle, or restarted), so that the context's queue can move on.
 */
export async function runExecution(
  host: ExecutionHost,
  request: ExecuteRequest,
  sink: EventSink,
  signal: AbortSignal,
  options: ExecutionOptions,
): Promise<void> {
  const envVars = request.envVars && Object.keys(request.envVars).length > 0 ? request.envVars : undefined;
  const dialect = envVars ? envVarDialect(host.language) : undefined;

  let previous: PreviousEnv | undefined;
  if (envVars && dialect) {
    const apply = dialect.apply(envVars);
    const reply = await silentRequest(host, apply.code, apply.userExpressions);
    if (reply === undefined || reply.status !== 'ok') {
      sink.write(toErrorEvent('EnvVarsError', 'The environment variables could not be set; the code was not run'));
      return;
    }
    previous = dialect.previousFrom(reply.user_expressions as Record<string, unknown> | undefined);
  }

  const lost = await runUserCode(host, request, sink, signal, options);

  if (envVars && dialect && !lost && !host.lifeSignal.aborted) {
    // The kernel kept its state, so the variables must go back to exactly what they were.
    await silentRequest(host, dialect.restore(envVars, previous), {});
  }
}

/** Returns true when the kernel's state was lost during the execution. */
async function runUserCode(
  host: ExecutionHost,
  request: ExecuteRequest,
  sink: EventSink,
  signal: AbortSignal,
  options: ExecutionOptions,
): Promise<boolean> {
  if (host.lifeSignal.aborted) {
    const reason = host.lifeSignal.reason as KernelLostError;
    sink.write(toErrorEvent(reason.errorName, reason.message));
    return true;
  }

  const future = host.kernel.requestExecute(
    { code: request.code, silent: false, store_history: true, allow_stdin: false, stop_on_error: false },
    true,
  );

  let stop: Stop | undefined;
  let streamBytes = 0;
  let droppedBytes = 0;
  let paused = false;

  const write = (event: OutputEvent) => {
    if (signal.aborted) return;
    if (!sink.write(event) && !paused) {
      // The client reads slower than the kernel writes: stop reading the kernel socket until
      // the response drains, so memory stays bounded whatever the kernel prints.
      paused = true;
      host.setPaused(true);
      void sink.waitForDrain().then(() => {
        paused = false;
        host.setPaused(false);
      });
    }
  };

  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    const event = toOutputEvent(msg);
    if (event === undefined) return;
    if (event.type === 'stdout' || event.type === 'stderr') {
      const size = Buffer.byteLength(event.text, 'utf8');
      if (streamBytes + size > options.maxOutputBytes) {
        droppedBytes += size;
        return;
      }
      streamBytes += size;
    }
    // After a timeout the kernel reports its own KeyboardInterrupt; the client asked for a
    // time limit, so it sees a TimeoutError instead.
    if (event.type === 'error' && stop?.kind === 'timeout' && event.name === 'KeyboardInterrupt') return;
    write(event);
  };

  let stuckTimer: NodeJS.Timeout | undefined;
  let restartedAfterStuck = false;
  const interrupt = (reason: Stop) => {
    if (stop) return;
    stop = reason;
    host.interrupt().catch(() => undefined);
    stuckTimer = setTimeout(() => {
      // Code stuck in C ignores SIGINT: the only way to free the context is a restart.
      restartedAfterStuck = true;
      host.restartAfterStuck().catch(() => undefined);
    }, options.interruptGraceMs);
  };

  const timeoutTimer =
    request.timeoutMs > 0 ? setTimeout(() => interrupt({ kind: 'timeout', seconds: request.timeoutMs / 1000 }), request.timeoutMs) : undefined;
  const onAbandoned = () => interrupt({ kind: 'abandoned' });
  signal.addEventListener('abort', onAbandoned, { once: true });

  let reply: KernelMessage.IExecuteReplyMsg | undefined;
  try {
    // Undefined when the kernel went away: a cancelled future or an aborted life signal.
    reply = await untilAborted(future.done, host.lifeSignal);
  } catch {
    reply = undefined;
  } finally {
    clearTimeout(timeoutTimer);
    clearTimeout(stuckTimer);
    signal.removeEventListener('abort', onAbandoned);
    if (paused) host.setPaused(false);
    future.onIOPub = () => undefined;
    if (!future.isDisposed) future.dispose();
  }

  const stateLost = reply === undefined;
  if (droppedBytes > 0) {
    write({ type: 'output_truncated', stream_bytes_dropped: droppedBytes, limit_bytes: options.maxOutputBytes });
  }
  if (stop?.kind === 'timeout') {
    const suffix = restartedAfterStuck || stateLost ? '; the kernel ignored the interrupt and was restarted, so its state was lost' : '';
    write(toErrorEvent('TimeoutError', `Execution exceeded the time limit of ${stop.seconds} seconds${suffix}`));
  } else if (stateLost && !signal.aborted) {
    const lostReason = host.lifeSignal.aborted ? (host.lifeSignal.reason as KernelLostError) : undefined;
    const reason = lostReason ?? new KernelLostError('KernelDied', 'The kernel stopped before the execution finished');
    write(toErrorEvent(reason.errorName, reason.message));
  } else if (reply && reply.content.status === 'aborted') {
    write(toErrorEvent('ExecutionAborted', 'The kernel aborted the execution'));
  }
  return stateLost;
}

/** A request with no output and no history entry; resolves with the reply content, or undefined if the kernel went away. */
async function silentRequest(
  host: ExecutionHost,
  code: string,
  userExpressions: Record<string, string>,
): Promise<KernelMessage.IExecuteReplyMsg['content'] | undefined> {
  if (host.lifeSignal.aborted) return undefined;
  const future = host.kernel.requestExecute(
    { code, silent: true, store_history: false, user_expressions: userExpressions, allow_stdin: false, stop_on_error: false },
    true,
  );
  try {
    const reply = await untilAborted(future.done, host.lifeSignal);
    return reply?.content;
  } catch {
    return undefined;
  } finally {
    if (!future.isDisposed) future.dispose();
  }
}

/** Settles like `promise`, or resolves undefined as soon as `signal` aborts; leaves no listener behind. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
