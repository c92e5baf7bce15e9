import { randomUUID } from 'node:crypto';
import type { Static } from 'typebox';
import type { ExecutionInfo as ExecutionInfoSchema, ExecutionState as ExecutionStateSchema } from '../schemas/execute.js';
import type { OutputEvent } from '../runs/events.js';
import type { ExecutionUsage } from '../runs/usage.js';
import { EventLog, type LogBudget, type LogEntry } from './event-log.js';
import { KernelLostError, outcomeOfFailure, toFailureEvent, type Outcome } from '../runs/failures.js';
import type { EventSink, ExecuteRequest, InputRequest, RunControl, StopReason } from '../runs/run.js';
import { InputNotPendingError } from '../errors.js';

export type DisconnectPolicy = 'interrupt' | 'continue';

/** The API's schema is the one definition of an execution's state and of what `GET /executions/{id}` answers. */
export type ExecutionState = Static<typeof ExecutionStateSchema>;
export type ExecutionInfo = Static<typeof ExecutionInfoSchema>;

/** What an execution needs from its context: a queue slot and a kernel. */
export interface ExecutionTarget {
  readonly id: string;
  readonly language: string;
  /** Throws the coded error that refuses one more execution (a full queue, a closed context). */
  assertAcceptsWork(): void;
  execute(request: ExecuteRequest, sink: EventSink, control: RunControl): Promise<Outcome>;
}

/** Which target a request names: a context by id, or a language's default (or the default language's). */
export interface TargetSelector {
  contextId?: string | undefined;
  language?: string | undefined;
}

/**
 * Finds the target of an execution: the context registry, or a door that keeps defaults of its
 * own (each MCP session has its own context per language).
 */
export interface TargetResolver {
  resolve(selector: TargetSelector): Promise<ExecutionTarget>;
}

export interface ExecutionOptions {
  /** Bytes of events kept per execution. */
  bufferBytes: number;
  budget?: LogBudget;
  onDisconnect: DisconnectPolicy;
  /** Sees the stdout, stderr and output_truncated events as they enter the log (metrics). */
  onOutput?: (event: OutputEvent) => void;
}

/**
 * The requester lags this far behind before the kernel socket is paused, and resumes once it
 * is back under the low mark. Well below the per-execution buffer, so the requester never
 * loses an event to the buffer's limit.
 */
const HIGH_WATER_BYTES = 1024 * 1024;
const LOW_WATER_BYTES = 256 * 1024;

/**
 * One execution: a request queued in a context, run in its kernel, and the log of what it
 * emitted. Transports (HTTP NDJSON, WebSocket, MCP) start one through the manager and read its
 * events; any number of readers may read at once and re-attach later. The reader that started
 * it (the requester) loses nothing: while it lags, the kernel waits; when it goes away, the
 * execution follows its disconnect policy.
 */
export class Execution {
  readonly id = randomUUID();
  readonly contextId: string;
  readonly language: string;
  readonly log: EventLog;
  /** Settles once `end_of_execution` is in the log. */
  readonly finished: Promise<void>;

  private state: ExecutionState = 'queued';
  private outcome: Outcome | undefined;
  private readonly createdAt = Date.now();
  private startedAt: number | undefined;
  private finishedAt: number | undefined;
  private readonly cancelController = new AbortController();
  private readonly stopController = new AbortController();
  private pendingInput: InputRequest | undefined;
  private requesterAttached = false;
  private drainWaiters: Array<() => void> = [];
  private resolveFinished!: () => void;
  private readonly onDisconnect: DisconnectPolicy;
  private readonly onOutput: ((event: OutputEvent) => void) | undefined;
  private usage: ExecutionUsage | undefined;

  constructor(
    private readonly target: ExecutionTarget,
    private request: ExecuteRequest,
    options: ExecutionOptions,
  ) {
    this.contextId = target.id;
    this.language = target.language;
    this.onDisconnect = options.onDisconnect;
    this.onOutput = options.onOutput;
    this.log = new EventLog(options.bufferBytes, options.budget);
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  get info(): ExecutionInfo {
    const info: ExecutionInfo = {
      id: this.id,
      context_id: this.contextId,
      language: this.language,
      state: this.state,
      created_at: new Date(this.createdAt).toISOString(),
      event_count: this.log.length,
    };
    if (this.outcome) info.outcome = this.outcome;
    if (this.startedAt !== undefined) {
      info.started_at = new Date(this.startedAt).toISOString();
      info.queue_ms = this.startedAt - this.createdAt;
    }
    if (this.finishedAt !== undefined) {
      info.finished_at = new Date(this.finishedAt).toISOString();
      info.wall_ms = this.finishedAt - (this.startedAt ?? this.finishedAt);
    }
    return info;
  }

  get isFinished(): boolean {
    return this.state === 'finished';
  }

  get finishedAtMs(): number | undefined {
    return this.finishedAt;
  }

  /** Queues the run; called once by the manager. */
  start(onStarted: () => void): void {
    const sink: EventSink = {
      write: (event) => this.append(event),
      waitForDrain: () => this.waitForDrain(),
    };
    this.target
      .execute(this.request, sink, {
        cancel: this.cancelController.signal,
        stop: this.stopController.signal,
        onStarted: () => {
          this.state = 'running';
          this.startedAt = Date.now();
          onStarted();
        },
        onInputRequest: (input) => {
          this.pendingInput = input;
          if (this.state !== 'finished') this.state = input ? 'awaiting_input' : 'running';
        },
        onUsage: (usage) => {
          this.usage = usage;
        },
      })
      .then(
        (outcome) => this.finish(outcome),
        (error: unknown) => {
          if (this.cancelController.signal.aborted && this.cancelController.signal.reason === 'abandoned') {
            this.finish('abandoned');
            return;
          }
          const event = toFailureEvent(error);
          this.append(event);
          this.finish(outcomeOfFailure(event.name) ?? 'failed');
        },
      );
  }

  /**
   * The events from index `from`, then the live ones, until `end_of_execution`. Events that
   * have left the buffer come as one `events_dropped` with their count. Ends early when
   * `signal` aborts. The requester (`requester: true`) is never dropped from: the kernel waits
   * for it instead; when its signal aborts the execution follows its disconnect policy.
   */
  async *read(options: { from?: number; requester?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<LogEntry> {
    const { signal, requester = false } = options;
    const from = Math.max(0, options.from ?? 0);
    if (requester) this.attachRequester(from, signal);
    const onRead = requester ? (entry: LogEntry) => this.requesterAttached && this.requesterRead(entry) : undefined;
    try {
      yield* this.log.read({ from, signal, onRead });
    } finally {
      if (requester) this.detachRequester(signal?.aborted === true);
    }
  }

  /**
   * Answers the pending input() or getpass(). With `inputId`, only the prompt of that id: an
   * answer sent again (a retry after a lost reply, say) must not land in the next prompt.
   */
  provideInput(value: string, inputId?: string): void {
    const input = this.pendingInput;
    if (inputId !== undefined && input?.id !== inputId) {
      throw new InputNotPendingError(this.id, ` ${inputId}: it was answered already, or the code no longer waits for it`);
    }
    if (!input) throw new InputNotPendingError(this.id, '');
    input.answer(value);
  }

  /**
   * A running execution: the kernel is interrupted (KeyboardInterrupt in the stream); one still
   * queued leaves the queue and ends with ExecutionCancelled. A finished one is left as it is.
   */
  interrupt(): void {
    if (this.state === 'queued') this.cancelController.abort(new KernelLostError('ExecutionCancelled'));
    else if (this.state !== 'finished') this.stopController.abort('interrupted' satisfies StopReason);
  }

  private append(event: OutputEvent): boolean {
    if (this.log.isClosed) return true;
    if (event.type === 'stdout' || event.type === 'stderr' || event.type === 'output_truncated') this.onOutput?.(event);
    this.log.append(event.type === 'number_of_executions' ? { ...event, execution_id: this.id } : event);
    return this.log.lagBytes <= HIGH_WATER_BYTES;
  }

  private finish(outcome: Outcome): void {
    if (this.state === 'finished') return;
    this.state = 'finished';
    this.outcome = outcome;
    this.pendingInput = undefined;
    this.finishedAt = Date.now();
    if (this.request.stats) {
      // Always one, when asked for: what could not be measured (the code never ran, the kernel
      // died, a language without probes) is null.
      const startedAt = this.startedAt ?? this.finishedAt;
      this.log.append({
        type: 'execution_stats',
        wall_ms: this.finishedAt - startedAt,
        queue_ms: startedAt - this.createdAt,
        cpu_ms: this.usage?.cpu_ms ?? null,
        peak_memory_bytes: this.usage?.peak_memory_bytes ?? null,
      });
    }
    this.log.append({ type: 'end_of_execution' });
    // A finished execution is kept for its readers a while: not its code (up to 16 MiB).
    this.request = { ...this.request, code: '', envVars: undefined };
    this.releaseDrainWaiters();
    this.resolveFinished();
  }

  private attachRequester(position: number, signal: AbortSignal | undefined): void {
    this.requesterAttached = true;
    this.log.pin(position);
    // A requester that is gone before it read anything still counts as gone.
    if (signal?.aborted) this.detachRequester(true);
  }

  private requesterRead(entry: LogEntry): void {
    this.log.advancePin(entry);
    if (this.log.lagBytes <= LOW_WATER_BYTES) this.releaseDrainWaiters();
  }

  private detachRequester(gone: boolean): void {
    if (!this.requesterAttached) return;
    this.requesterAttached = false;
    this.log.unpin();
    this.releaseDrainWaiters();
    if (!gone || this.state === 'finished' || this.onDisconnect === 'continue') return;
    if (this.state === 'queued') this.cancelController.abort('abandoned');
    else this.stopController.abort('abandoned' satisfies StopReason);
  }

  private waitForDrain(): Promise<void> {
    if (!this.requesterAttached || this.log.lagBytes <= LOW_WATER_BYTES) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
