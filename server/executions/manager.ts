import { EventEmitter } from 'node:events';
import { ContextAndLanguageError, ExecutionNotFoundError, InvalidEnvVarError, InvalidRequestError, QueueFullError } from '../errors.js';
import type { Logger } from '../logger.js';
import { envVarDialect, invalidEnvVarName, invalidEnvVarValue } from '../runs/env-vars.js';
import type { OutputEvent } from '../runs/events.js';
import { Execution, type DisconnectPolicy, type ExecutionInfo, type TargetResolver } from './execution.js';
import { RetainedLogs, SharedLogBudget } from './retained-logs.js';

/** What a transport asks for; field names are the API's, in camelCase. */
export interface StartExecution {
  code: string;
  contextId?: string | undefined;
  language?: string | undefined;
  envVars?: Record<string, string> | undefined;
  /** Seconds; the server's default when absent. */
  timeoutSeconds?: number | undefined;
  stdin?: boolean | undefined;
  onDisconnect?: DisconnectPolicy | undefined;
  stats?: boolean | undefined;
}

export interface ExecutionManagerOptions {
  /** Where executions run unless the door that starts one brings a resolver of its own. */
  targets: TargetResolver;
  logger: Logger;
  /** Seconds applied when a request sets no timeout; 0 means none. */
  defaultTimeoutSeconds: number;
  /** Largest timeout a request may ask for, in seconds; 0 means unbounded. */
  maxTimeoutSeconds: number;
  /** Events kept per execution, in bytes. */
  bufferBytes: number;
  /** Events kept over all executions (and the processes that share `logBudget`), in bytes. */
  totalBufferBytes: number;
  /** How long a finished execution is kept, in ms. */
  retentionMs: number;
  /** How many finished executions are kept at most. */
  maxRetained: number;
  /** Bytes of code and env_vars that executions not yet started may hold, over every context. */
  maxQueuedBytes: number;
}

/**
 * env_vars travel to the kernel hex-encoded, at twice their size: capped so that the message
 * stays well inside what Jupyter accepts on the kernel socket (see jupyter_server_config.py).
 */
export const MAX_ENV_VARS_BYTES = 8 * 2 ** 20;

/** The longest delay a Node timer can hold (2^31 - 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ExecutionLifecycle {
  queued: [ExecutionInfo];
  started: [ExecutionInfo];
  finished: [ExecutionInfo];
  /** A stdout, stderr or output_truncated event entered an execution's log. */
  output: [language: string, event: OutputEvent];
}

/**
 * Every execution of the server: starts them (after every check that can refuse a request),
 * finds them by id, keeps finished ones for a while, and holds the buffered events of all of
 * them within one server-wide budget. Emits `queued`, `started` and `finished` on `lifecycle`
 * for whoever counts (the metrics), and `output` for stream events.
 */
export class ExecutionManager {
  readonly lifecycle = new EventEmitter<ExecutionLifecycle>();
  private readonly executions: RetainedLogs<Execution>;
  /**
   * Bytes of code and env_vars held by executions that have not started: the per-context queue
   * limit alone lets every context queue its most, at up to 16 MiB each.
   */
  private queuedBytes = 0;

  constructor(private readonly options: ExecutionManagerOptions) {
    this.executions = new RetainedLogs(options);
  }

  /** The bound on buffered events, for the processes to share (one setting bounds both). */
  get logBudget(): SharedLogBudget {
    return this.executions.budget;
  }

  /**
   * Checks the request, finds its context and queues the execution. Throws the coded errors of
   * errors.ts before anything is accepted; once it resolves, every failure is an `error` event
   * in the execution's log. `targets` finds the context (the registry unless given).
   */
  async start(request: StartExecution, targets: TargetResolver = this.options.targets): Promise<Execution> {
    const { contextId, language, envVars } = request;
    if (contextId !== undefined && language !== undefined) throw new ContextAndLanguageError();
    let envBytes = 0;
    for (const [name, value] of Object.entries(envVars ?? {})) {
      envBytes += Buffer.byteLength(name) + Buffer.byteLength(value);
      const nameProblem = invalidEnvVarName(name);
      if (nameProblem) throw new InvalidEnvVarError(`name ${JSON.stringify(name)}`, nameProblem);
      const valueProblem = invalidEnvVarValue(value);
      if (valueProblem) throw new InvalidEnvVarError(`value of ${JSON.stringify(name)}`, valueProblem);
    }
    if (envBytes > MAX_ENV_VARS_BYTES) {
      throw new InvalidRequestError(`env_vars must total at most ${MAX_ENV_VARS_BYTES} bytes (names and values), got ${envBytes}`);
    }
    const timeoutMs = this.timeoutMs(request.timeoutSeconds);

    const context = await targets.resolve({ contextId, language });
    if (envVars && Object.keys(envVars).length > 0 && !envVarDialect(context.language)) {
      throw new InvalidRequestError(`env_vars are not supported for language ${context.language}`);
    }
    context.assertAcceptsWork();
    const size = Buffer.byteLength(request.code) + envBytes;
    if (this.queuedBytes + size > this.options.maxQueuedBytes)
      throw new QueueFullError(this.queuedBytes, size, this.options.maxQueuedBytes);

    const execution = new Execution(
      context,
      { code: request.code, envVars, timeoutMs, stdin: request.stdin === true, stats: request.stats === true },
      {
        bufferBytes: this.options.bufferBytes,
        budget: this.executions.budget,
        onDisconnect: request.onDisconnect ?? 'interrupt',
        onOutput: (event) => this.lifecycle.emit('output', context.language, event),
      },
    );
    this.executions.add(execution);
    this.options.logger.debug({ execution: execution.id, context: context.id, bytes: request.code.length }, 'execution queued');
    this.queuedBytes += size;
    let queued = true;
    const dequeue = () => {
      if (queued) this.queuedBytes -= size;
      queued = false;
    };
    // `info` formats dates: not built for an event nobody listens to (the metrics do not).
    if (this.lifecycle.listenerCount('queued') > 0) this.lifecycle.emit('queued', execution.info);
    execution.start(() => {
      dequeue();
      this.lifecycle.emit('started', execution.info);
    });
    void execution.finished.then(() => {
      dequeue();
      this.onFinished(execution);
    });
    return execution;
  }

  get(id: string): Execution {
    const execution = this.executions.get(id);
    if (!execution) throw new ExecutionNotFoundError(id);
    return execution;
  }

  /** The executions still held, newest first. */
  list(): ExecutionInfo[] {
    return this.executions
      .values()
      .reverse()
      .map((execution) => execution.info);
  }

  /** Bytes of code and env_vars held by executions that have not started yet. */
  get totalQueuedBytes(): number {
    return this.queuedBytes;
  }

  /** Events buffered over all executions, in bytes. */
  get totalBufferedBytes(): number {
    return this.executions.totalBufferedBytes;
  }

  close(): void {
    this.executions.stop();
  }

  /**
   * The time limit in ms. Below a millisecond rounds up to one (never to 0, which means no
   * limit); beyond what a timer can hold, or the configured cap, is refused.
   */
  private timeoutMs(requested: number | undefined): number {
    const { defaultTimeoutSeconds, maxTimeoutSeconds } = this.options;
    const seconds = requested ?? defaultTimeoutSeconds;
    if (!Number.isFinite(seconds) || seconds < 0) throw new InvalidRequestError('timeout must be a positive number of seconds');
    if (maxTimeoutSeconds > 0 && seconds > maxTimeoutSeconds) {
      throw new InvalidRequestError(`timeout must be at most ${maxTimeoutSeconds} seconds`);
    }
    if (seconds === 0) return 0;
    const ms = Math.max(1, Math.ceil(seconds * 1000));
    if (ms > MAX_TIMER_MS) throw new InvalidRequestError(`timeout must be at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds`);
    return ms;
  }

  private onFinished(execution: Execution): void {
    const info = execution.info;
    this.options.logger.debug({ execution: execution.id, context: execution.contextId, outcome: info.outcome }, 'execution finished');
    this.lifecycle.emit('finished', info);
    this.executions.finished(execution);
  }
}
