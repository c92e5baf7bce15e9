import { ContextBusyError } from '../../server/errors.js';
import { SerialQueue } from '../../server/contexts/serial-queue.js';
import type { ExecutionTarget, TargetResolver, TargetSelector } from '../../server/executions/execution.js';
import type { CodeRequest, ExecuteOptions } from '../../server/jupyter/kernel-channel.js';
import type { ExecuteReply, KernelOutput } from '../../server/jupyter/kernel-output.js';
import { KernelLostError, type Outcome } from '../../server/runs/failures.js';
import {
  runExecution,
  type EventSink,
  type ExecuteRequest,
  type KernelRunner,
  type RunControl,
  type RunOptions,
} from '../../server/runs/run.js';

/** What a script sees of the kernel it plays: it emits outputs, asks for input, hears interrupts. */
export interface KernelSide {
  print(text: string, name?: 'stdout' | 'stderr'): void;
  result(data: Record<string, unknown>, main?: boolean): void;
  error(name: string, value: string): void;
  /** Asks for input (input()); resolves with the answer. */
  input(prompt: string, password?: boolean): Promise<string>;
  /** Resolves when the kernel is interrupted (SIGINT). */
  readonly interrupted: Promise<void>;
}

/** How the fake kernel runs one request's code: resolves with the reply's status. */
export type Script = (kernel: KernelSide) => Promise<ExecuteReply['status']>;

/**
 * A kernel that runs scripts instead of code, behind the same interface the run uses for a
 * KernelChannel. Code without a script prints itself. Silent requests (env vars, probes) answer
 * ok at once. `execute` resolves undefined when its signal aborts, as a channel does.
 */
export class FakeKernel implements KernelRunner {
  readonly scripts = new Map<string, Script>();
  interrupts = 0;
  /** While set, silent requests (env vars, probes) wait for it. */
  holdSilent: Promise<void> | undefined;
  private onInterrupt: (() => void) | undefined;
  private count = 0;

  async execute(request: CodeRequest, options: ExecuteOptions): Promise<ExecuteReply | undefined> {
    if (options.signal?.aborted) return undefined;
    if (request.silent) {
      const held = this.holdSilent;
      if (held) {
        const aborted = new Promise<'aborted'>((resolve) =>
          options.signal?.addEventListener('abort', () => resolve('aborted'), { once: true }),
        );
        if ((await Promise.race([held, aborted])) === 'aborted') return undefined;
      }
      return { status: 'ok', userExpressions: {} };
    }
    options.onAnswer?.();
    options.onOutput?.({ kind: 'execution_count', count: ++this.count });
    const emit = (output: KernelOutput) => options.onOutput?.(output);
    const interrupted = new Promise<void>((resolve) => (this.onInterrupt = resolve));
    const side: KernelSide = {
      print: (text, name = 'stdout') => emit({ kind: 'stream', name, text, timestamp: '2026-01-01T00:00:00.000Z' }),
      result: (data, main = true) => emit({ kind: 'result', main, data }),
      error: (name, value) => emit({ kind: 'error', name, value, traceback: [] }),
      input: (prompt, password = false) => new Promise((resolve) => options.onInput?.({ prompt, password, reply: resolve })),
      interrupted,
    };
    const script = this.scripts.get(request.code) ?? (async (kernel: KernelSide) => (kernel.print(request.code), 'ok' as const));
    const status = script(side).then((value): ExecuteReply => ({ status: value, userExpressions: {} }));
    const stopped = new Promise<undefined>((resolve) =>
      options.signal?.addEventListener('abort', () => resolve(undefined), { once: true }),
    );
    try {
      return await Promise.race([status, stopped]);
    } finally {
      this.onInterrupt = undefined;
    }
  }

  interrupt(): void {
    this.interrupts++;
    this.onInterrupt?.();
  }
}

/**
 * A context without Jupyter: a queue in front of the real run, on a FakeKernel. A restart
 * (after a kernel ignored an interrupt) ends the kernel's life signal, as a context's does.
 */
export class FakeTarget implements ExecutionTarget, TargetResolver {
  readonly id: string;
  readonly language = 'python';
  readonly kernel = new FakeKernel();
  restarts = 0;
  private readonly queue: SerialQueue;
  private life = new AbortController();

  constructor(
    private readonly options: RunOptions = { interruptGraceMs: 1000, maxOutputBytes: 1024 * 1024 },
    maxQueued = 8,
    id = 'fake-context',
  ) {
    this.queue = new SerialQueue(maxQueued);
    this.id = id;
  }

  assertAcceptsWork(): void {
    if (this.queue.full) throw new ContextBusyError(this.id, this.queue.waitingCount);
  }

  execute(request: ExecuteRequest, sink: EventSink, control: RunControl): Promise<Outcome> {
    this.assertAcceptsWork();
    return this.queue.run(async () => {
      control.onStarted();
      if (this.life.signal.aborted) this.life = new AbortController();
      const host = {
        kernel: this.kernel,
        language: this.language,
        lifeSignal: this.life.signal,
        interrupt: async () => this.kernel.interrupt(),
        restartAfterStuck: async () => {
          this.restarts++;
          this.life.abort(new KernelLostError('ContextRestarted'));
        },
        setPaused: () => undefined,
        verifyKernel: async () => undefined,
      };
      return runExecution(host, request, sink, control.stop, this.options, {
        onInputRequest: control.onInputRequest,
        onUsage: control.onUsage,
      });
    }, control.cancel);
  }

  async resolve(_selector: TargetSelector): Promise<ExecutionTarget> {
    return this;
  }
}
