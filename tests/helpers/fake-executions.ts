import { ExecutionNotFoundError, InputNotPendingError } from '../../server/errors.js';
import type { ExecutionManager, StartExecution } from '../../server/executions/manager.js';
import type { Logger } from '../../server/logger.js';

/**
 * Stand-ins for the execution manager and its executions, for transports tested without a
 * kernel: an execution is a list of events the test appends to and ends, read as the real one
 * is (from an index, waiting for more, ending early when the reader's signal aborts).
 */

type Event = { type: string } & Record<string, unknown>;

export interface FakeEntry {
  index: number;
  type: string;
  event: Event;
  line: Buffer;
}

export interface FakeRead {
  from: number;
  requester: boolean;
  signal: AbortSignal | undefined;
}

export class FakeExecution {
  readonly events: FakeEntry[] = [];
  readonly reads: FakeRead[] = [];
  readonly inputs: Array<{ value: string; inputId: string | undefined }> = [];
  interrupts = 0;
  /** Entries handed to readers so far, over all of them: how far the readers have pulled. */
  pulled = 0;
  waitingForInput = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly id: string,
    readonly contextId = 'ctx-1',
  ) {}

  get isFinished(): boolean {
    return this.events.at(-1)?.type === 'end_of_execution';
  }

  push(...events: Event[]): this {
    for (const event of events) {
      this.events.push({ index: this.events.length, type: event.type, event, line: Buffer.from(`${JSON.stringify(event)}\n`) });
    }
    this.wake?.();
    return this;
  }

  end(): this {
    return this.push({ type: 'end_of_execution' });
  }

  async *read(options: { from?: number; requester?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<FakeEntry> {
    this.reads.push({ from: options.from ?? 0, requester: options.requester === true, signal: options.signal });
    let position = options.from ?? 0;
    while (!options.signal?.aborted) {
      const entry = this.events[position];
      if (entry) {
        position++;
        this.pulled++;
        yield entry;
        if (entry.type === 'end_of_execution') return;
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          options.signal?.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        options.signal?.addEventListener('abort', done);
      });
    }
  }

  provideInput(value: string, inputId?: string): void {
    if (!this.waitingForInput) throw new InputNotPendingError(this.id, '');
    this.waitingForInput = false;
    this.inputs.push({ value, inputId });
  }

  interrupt(): void {
    this.interrupts++;
  }
}

export class FakeExecutionManager {
  readonly started: StartExecution[] = [];
  readonly executions = new Map<string, FakeExecution>();
  /** What `start` does; by default a new execution that the test drives. */
  onStart: (request: StartExecution) => Promise<FakeExecution> = async () =>
    this.add(new FakeExecution(`exec-${this.executions.size + 1}`));

  add(execution: FakeExecution): FakeExecution {
    this.executions.set(execution.id, execution);
    return execution;
  }

  async start(request: StartExecution): Promise<FakeExecution> {
    this.started.push(request);
    return this.onStart(request);
  }

  get(id: string): FakeExecution {
    const execution = this.executions.get(id);
    if (!execution) throw new ExecutionNotFoundError(id);
    return execution;
  }

  asManager(): ExecutionManager {
    return this as unknown as ExecutionManager;
  }
}

/** A logger that keeps its lines, to check what was said and at which level. */
export function recordingLogger(): Logger & { lines: Array<{ level: string; message: string | undefined; data: unknown }> } {
  const lines: Array<{ level: string; message: string | undefined; data: unknown }> = [];
  const at = (level: string) => (data: unknown, message?: string) => {
    lines.push({ level, message: typeof data === 'string' ? data : message, data });
  };
  const logger = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}
