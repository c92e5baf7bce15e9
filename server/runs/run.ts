import { randomUUID } from 'node:crypto';
import type { CodeRequest, ExecuteOptions } from '../jupyter/kernel-channel.js';
import type { ExecuteReply, KernelOutput } from '../jupyter/kernel-output.js';
import { envVarDialect, type EnvVars, type PreviousEnv } from './env-vars.js';
import { textBytes, toErrorEvent, toOutputEvent, type OutputEvent } from './events.js';
import { failureEvent, KernelLostError, type Outcome } from './failures.js';
import { usageBetween, usageDialect, type ExecutionUsage, type ProbeRequest, type UsageDialect, type UsageSample } from './usage.js';

export interface ExecuteRequest {
  code: string;
  envVars?: EnvVars | undefined;
  /** 0 means no limit. */
  timeoutMs: number;
  /** Whether the kernel may ask for input (input(), getpass()). */
  stdin?: boolean | undefined;
  /** Measure the kernel's CPU time and peak memory during the code (see usage.ts). */
  stats?: boolean | undefined;
}

/** Where events go. `write` returning false asks the producer to wait for `waitForDrain`. */
export interface EventSink {
  write(event: OutputEvent): boolean;
  waitForDrain(): Promise<void>;
}

/** A pending input() or getpass() of the kernel; `answer` sends the reply. */
export interface InputRequest {
  /** Names this prompt: an answer that names another one (a retry of an earlier answer) is refused. */
  id: string;
  prompt: string;
  password: boolean;
  answer(value: string): void;
}

/** What the execution's owner is told while it runs. */
export interface RunObserver {
  /** The kernel asks for input; undefined once it was answered or the execution stopped asking. */
  onInputRequest?(request: InputRequest | undefined): void;
  /** With `stats`: what the code cost the kernel, told once, after the code ran. */
  onUsage?(usage: ExecutionUsage): void;
}

/** What a run needs of a kernel: a KernelChannel, or a fake one in tests. */
export interface KernelRunner {
  execute(request: CodeRequest, options: ExecuteOptions): Promise<ExecuteReply | undefined>;
}

/** How the owner of an execution steers it through the context's queue and the run. */
export interface RunControl {
  /** Aborts while queued: the execution leaves the queue with the signal's reason. */
  cancel: AbortSignal;
  /** Aborts while running: the kernel is interrupted; the reason is a StopReason. */
  stop: AbortSignal;
  onStarted(): void;
  // Callbacks, handed on unbound to the run.
  onInputRequest: (request: InputRequest | undefined) => void;
  onUsage: (usage: ExecutionUsage) => void;
}

/** What an execution needs from the context it runs in. */
export interface ExecutionHost {
  readonly kernel: KernelRunner;
  readonly language: string;
  /** Aborts when the kernel dies, is restarted or the connection is lost; reason says which. */
  readonly lifeSignal: AbortSignal;
  /** Resolves once the kernel was sent the interrupt (which waits for it to take the request). */
  interrupt(): Promise<void>;
  /** Restarts the kernel because it ignored an interrupt. */
  restartAfterStuck(): Promise<void>;
  /** Pauses or resumes reading from the kernel socket (backpressure from a slow client). */
  setPaused(paused: boolean): void;
  /**
   * Called when a request got no answer at all for a while: finds out whether the kernel
   * still exists, and if not ends the life signal (a new kernel takes its place).
   */
  verifyKernel(): Promise<void>;
}

/** How long a request may go without any answer before the kernel's existence is checked. */
const UNANSWERED_CHECK_MS = 3000;

/** The limits every run of a server keeps. */
export interface RunOptions {
  interruptGraceMs: number;
  maxOutputBytes: number;
}

/**
 * Why an execution is stopped from outside: its requester went away (and wanted that to
 * interrupt it), or somebody interrupted it. Carried as the stop signal's reason.
 */
export type StopReason = 'abandoned' | 'interrupted';

type Stop = { kind: 'timeout'; seconds: number } | { kind: StopReason };

/**
 * Kernels that publish outputs after `idle`, and the line each prints to show they are all out.
 * Deno's kernel (JavaScript, TypeScript) sends `idle` directly but its results and streams
 * through a queue of their own: in 300 back-to-back executions here 38 had a result or a stream
 * arrive after `idle` (29 of 300 under CPU load, mostly results), which "idle means done" drops.
 * A silent `console.log` goes through the same queue: in those 600 executions no output ever
 * came after its line. A fixed wait (30 ms, before) lost a result on a loaded CI machine.
 */
const OUTPUT_BARRIERS: Readonly<Record<string, string>> = { javascript: 'console.log("")', typescript: 'console.log("")' };

/**
 * IRkernel echoes a request, then prepares its evaluation (tens of ms; more on a loaded machine);
 * an interrupt in that stretch escapes its handlers and ends the R process. Measured: 13 of 25
 * interrupts sent at once killed the kernel when sent without waiting for the echo.
 */
const INTERRUPT_SETTLE_MS: Readonly<Record<string, number>> = { r: 150 };

/**
 * Runs one request in a kernel and writes what the kernel emits to `sink`, in order. Never
 * throws for anything the kernel does: failures become `error` events. The caller writes
 * `end_of_execution` once this resolves. Resolves, with how the execution ended, only when the
 * kernel is ready for the next execution (idle, or restarted), so that the context's queue can
 * move on. The time limit and `stop` cover every step: setting the environment variables, the
 * code, and putting the variables back.
 */
export async function runExecution(
  host: ExecutionHost,
  request: ExecuteRequest,
  sink: EventSink,
  stop: AbortSignal,
  options: RunOptions,
  observer: RunObserver = {},
): Promise<Outcome> {
  const run = new Run(host, request, sink, stop, options, observer);
  try {
    return await run.execute();
  } finally {
    run.dispose();
  }
}

class Run {
  private stopped: Stop | undefined;
  private stuckTimer: NodeJS.Timeout | undefined;
  private restartedAfterStuck = false;
  private disposed = false;
  /** True while the user's code is with the kernel: the only time an interrupt is signalled. */
  private codeSent = false;
  private readonly timeoutTimer: NodeJS.Timeout | undefined;
  /** Aborts when the execution must end now (stopped, or the kernel went away). */
  private readonly halt = new AbortController();
  private paused = false;

  constructor(
    private readonly host: ExecutionHost,
    private readonly request: ExecuteRequest,
    private readonly sink: EventSink,
    private readonly stop: AbortSignal,
    private readonly options: RunOptions,
    private readonly observer: RunObserver,
  ) {
    if (request.timeoutMs > 0) {
      this.timeoutTimer = setTimeout(() => this.interrupt({ kind: 'timeout', seconds: request.timeoutMs / 1000 }), request.timeoutMs);
    }
    if (stop.aborted) this.onStop();
    else stop.addEventListener('abort', this.onStop, { once: true });
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.stuckTimer);
    this.stop.removeEventListener('abort', this.onStop);
    if (this.paused) this.host.setPaused(false);
  }

  private readonly onStop = () => this.interrupt({ kind: this.stop.reason === 'interrupted' ? 'interrupted' : 'abandoned' });

  async execute(): Promise<Outcome> {
    const { envVars: requested } = this.request;
    const envVars = requested && Object.keys(requested).length > 0 ? requested : undefined;
    const dialect = envVars ? envVarDialect(this.host.language) : undefined;

    let previous: PreviousEnv | undefined;
    if (envVars && dialect) {
      const apply = dialect.apply(envVars);
      const reply = await this.silentRequest(apply.code, apply.userExpressions);
      if (reply === undefined || reply.status !== 'ok') {
        // Stopped (timeout, interrupt, gone client) or the kernel failed before the code ran.
        const outcome = this.stopOutcome(this.lifeSignal.aborted);
        if (outcome !== undefined) return outcome;
        this.write(failureEvent('EnvVarsError'));
        return 'failed';
      }
      previous = dialect.previousFrom(reply.userExpressions);
    }

    // The probes sit right around the user's code, inside the variables being set and put back.
    const usage = this.request.stats ? usageDialect(this.host.language) : undefined;
    const before = usage ? await this.probe(usage, usage.begin()) : undefined;
    const outcome = await this.runUserCode();
    // After a stop too (the interrupt has been delivered by now), unless the kernel is gone.
    const after = usage && before && !this.stateLost ? await this.probe(usage, usage.end(), true) : undefined;
    if (this.request.stats) this.observer.onUsage?.(usageBetween(before, after));

    if (envVars && dialect && !this.stateLost) {
      // The kernel kept its state, so the variables must go back to exactly what they were.
      // A stopped execution still restores them: the interrupt has been delivered by now.
      await this.silentRequest(dialect.restore(envVars, previous), {}, true);
    }
    return outcome;
  }

  private stateLost = false;
  /** True while the request that sets the variables is waited for. */
  private silentPending = false;

  private get lifeSignal(): AbortSignal {
    return this.host.lifeSignal;
  }

  private write(event: OutputEvent): void {
    if (!this.sink.write(event) && !this.paused) {
      // The reader that must lose nothing lags behind: stop reading the kernel socket until
      // it catches up, so memory stays bounded whatever the kernel prints.
      this.paused = true;
      this.host.setPaused(true);
      void this.sink.waitForDrain().then(() => {
        if (!this.paused) return;
        this.paused = false;
        this.host.setPaused(false);
      });
    }
  }

  private interrupt(reason: Stop): void {
    if (this.stopped) return;
    this.stopped = reason;
    // Setting the variables is not the user's code: a stop ends it at once (the reply, if it
    // ever comes, is dropped with the request).
    if (this.silentPending) this.halt.abort();
    this.observer.onInputRequest?.(undefined);
    // Only the user's code is signalled: before it the stop keeps it from being sent, and after
    // it the variables are put back, which a signal would cut short (and an R kernel outside
    // its code quits on one). The grace period counts from the signal, which waits for the
    // kernel to take the request.
    const signalled = this.codeSent ? this.host.interrupt().catch(() => undefined) : Promise.resolve();
    void signalled.then(() => {
      if (this.disposed) return;
      this.stuckTimer = setTimeout(() => {
        // Code stuck in C ignores SIGINT: the only way to free the context is a restart.
        this.restartedAfterStuck = true;
        this.host.restartAfterStuck().catch(() => undefined);
      }, this.options.interruptGraceMs);
    });
  }

  /**
   * A kernel shut down behind the server's back (through Jupyter directly) can leave the socket
   * open with nobody behind it: a request would wait forever. Until the first message about
   * the request arrives, the kernel's existence is checked every few seconds.
   */
  private watchForAnswer(): { answered(): void } {
    const timer = setInterval(() => {
      this.host.verifyKernel().catch(() => undefined);
    }, UNANSWERED_CHECK_MS);
    return { answered: () => clearInterval(timer) };
  }

  /** The outcome and error event of a stopped execution, or undefined when it was not stopped. */
  private stopOutcome(stateLost: boolean): Outcome | undefined {
    const stop = this.stopped;
    if (stop?.kind === 'timeout') {
      const suffix =
        this.restartedAfterStuck || stateLost ? '; the kernel ignored the interrupt and was restarted, so its state was lost' : '';
      this.write(failureEvent('TimeoutError', `Execution exceeded the time limit of ${stop.seconds} seconds${suffix}`));
      return 'timeout';
    }
    if (stop?.kind === 'abandoned') return 'abandoned';
    if (stop?.kind === 'interrupted' && (this.restartedAfterStuck || stateLost)) {
      this.write(failureEvent('KernelDied', 'The kernel ignored the interrupt and was restarted; its state was lost'));
      return 'interrupted';
    }
    if (stop?.kind === 'interrupted') return 'interrupted';
    if (stateLost) {
      const reason = this.lifeSignal.aborted
        ? (this.lifeSignal.reason as KernelLostError)
        : new KernelLostError('KernelDied', 'The kernel stopped before the execution finished');
      this.write(failureEvent(reason.errorName, reason.message));
      return reason.errorName === 'OutOfMemory'
        ? 'out_of_memory'
        : reason.errorName === 'KernelDied' || reason.errorName === 'KernelLost'
          ? 'kernel_died'
          : 'failed';
    }
    return undefined;
  }

  private async runUserCode(): Promise<Outcome> {
    if (this.lifeSignal.aborted) {
      this.stateLost = true;
      const reason = this.lifeSignal.reason as KernelLostError;
      this.write(failureEvent(reason.errorName, reason.message));
      return reason.errorName === 'OutOfMemory' ? 'out_of_memory' : 'kernel_died';
    }
    if (this.stopped) return this.stopOutcome(false)!;

    const unanswered = this.watchForAnswer();
    let outputBytes = 0;
    let droppedBytes = 0;
    let droppedResults = 0;
    let sawError = false;
    let interruptedByKernel = false;

    const onOutput = (output: KernelOutput) => {
      const event = toOutputEvent(output);
      // Every kind of output counts against one budget: text and results alike.
      if (event.type === 'stdout' || event.type === 'stderr') {
        const size = textBytes(event);
        if (outputBytes + size > this.options.maxOutputBytes) {
          droppedBytes += size;
          return;
        }
        outputBytes += size;
      } else if (output.kind === 'result') {
        const size = resultSize(output.data);
        if (outputBytes + size > this.options.maxOutputBytes) {
          droppedResults++;
          return;
        }
        outputBytes += size;
      }
      if (event.type === 'error') {
        // After a timeout the kernel reports its own KeyboardInterrupt; the client asked for a
        // time limit, so it sees a TimeoutError instead.
        if (this.stopped?.kind === 'timeout' && event.name === 'KeyboardInterrupt') return;
        sawError = true;
        if (event.name === 'KeyboardInterrupt') interruptedByKernel = true;
      }
      this.write(event);
    };

    let reply: ExecuteReply | undefined;
    this.codeSent = true;
    try {
      // Undefined when the kernel went away: a cancelled request or an aborted life signal.
      reply = await this.host.kernel.execute(
        { code: this.request.code, allowStdin: this.request.stdin === true },
        {
          signal: this.lifeSignal,
          outputBarrier: OUTPUT_BARRIERS[this.host.language],
          interruptSettleMs: INTERRUPT_SETTLE_MS[this.host.language],
          onAnswer: () => unanswered.answered(),
          onOutput,
          onInput: (prompt) => {
            const id = randomUUID();
            this.write({ type: 'input_request', input_id: id, prompt: prompt.prompt, password: prompt.password });
            let answered = false;
            this.observer.onInputRequest?.({
              id,
              prompt: prompt.prompt,
              password: prompt.password,
              answer: (value) => {
                if (answered) return;
                answered = true;
                this.observer.onInputRequest?.(undefined);
                prompt.reply(value);
              },
            });
          },
        },
      );
    } finally {
      this.codeSent = false;
      unanswered.answered();
      this.observer.onInputRequest?.(undefined);
    }

    this.stateLost = reply === undefined;
    if (droppedBytes > 0 || droppedResults > 0) {
      this.write({
        type: 'output_truncated',
        stream_bytes_dropped: droppedBytes,
        ...(droppedResults > 0 ? { results_dropped: droppedResults } : {}),
        limit_bytes: this.options.maxOutputBytes,
      });
    }
    // Read again: a stop can come in while the kernel runs the code.
    const stop = this.stopped as Stop | undefined;
    if (reply?.status === 'dropped' && stop !== undefined && stop.kind !== 'timeout' && !sawError) {
      // The interrupt landed in the kernel's own code around the user's (no reply, no traceback):
      // the client sees the KeyboardInterrupt an interrupt of the code itself gives.
      this.write(toErrorEvent('KeyboardInterrupt', ''));
    }
    const stopped = this.stopOutcome(this.stateLost);
    if (stopped !== undefined) return stopped;
    if (reply?.status === 'aborted') {
      this.write(failureEvent('ExecutionAborted'));
      return 'error';
    }
    if (reply?.status === 'dropped') {
      this.write(failureEvent('ExecutionAborted', 'The kernel ended the execution without a reply; the code may not have run to its end'));
      return 'error';
    }
    if (interruptedByKernel) return 'interrupted';
    return sawError || reply?.status === 'error' ? 'error' : 'ok';
  }

  /** One usage reading; undefined when the kernel did not answer it. */
  private async probe(dialect: UsageDialect, request: ProbeRequest, evenIfStopped = false): Promise<UsageSample | undefined> {
    const reply = await this.silentRequest(request.code, request.userExpressions, evenIfStopped);
    return reply?.status === 'ok' ? dialect.sampleFrom(reply.userExpressions) : undefined;
  }

  /**
   * A request with no output and no history entry; resolves with the reply content, or
   * undefined if the kernel went away or (unless `evenIfStopped`) the execution was stopped.
   */
  private async silentRequest(
    code: string,
    userExpressions: Record<string, string>,
    evenIfStopped = false,
  ): Promise<ExecuteReply | undefined> {
    if (this.lifeSignal.aborted || (this.stopped && !evenIfStopped)) return undefined;
    this.silentPending = !evenIfStopped;
    const unanswered = this.watchForAnswer();
    try {
      const signal = evenIfStopped ? this.lifeSignal : AbortSignal.any([this.lifeSignal, this.halt.signal]);
      return await this.host.kernel.execute({ code, silent: true, userExpressions }, { signal, onAnswer: () => unanswered.answered() });
    } finally {
      unanswered.answered();
      this.silentPending = false;
    }
  }
}

/** The size of a display or execute result: the bytes of its data, whichever MIME types. */
function resultSize(data: Record<string, unknown>): number {
  let size = 0;
  for (const value of Object.values(data)) size += typeof value === 'string' ? value.length : JSON.stringify(value ?? null).length;
  return size;
}
