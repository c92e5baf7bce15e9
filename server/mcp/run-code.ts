import type { ContextRegistry } from '../contexts/registry.js';
import { InvalidRequestError } from '../errors.js';
import { toFailureEvent, type OutputEvent } from '../execution/events.js';

export interface RunRequest {
  code: string;
  contextId: string;
  /** Seconds; undefined takes the server's default. */
  timeoutSeconds?: number | undefined;
}

export interface Run {
  /** Where all events of the run can be read again, when the server keeps them. */
  executionId: string | undefined;
  events: AsyncIterable<OutputEvent>;
}

/**
 * Starts code and hands back its events. Throws the coded errors (unknown context, busy, bad
 * timeout) before anything runs; once it resolves, failures are `error` events. `signal`
 * interrupts the run when the caller gives up on it.
 */
export type RunCode = (request: RunRequest, signal: AbortSignal) => Promise<Run>;

export interface RunLimits {
  executionTimeoutSeconds: number;
  maxExecutionTimeoutSeconds: number;
}

/** Runs code in a context of the registry, the way `POST /execute` does. */
export function runInContext(contexts: ContextRegistry, limits: RunLimits): RunCode {
  return async (request, signal) => {
    const timeoutSeconds = request.timeoutSeconds ?? limits.executionTimeoutSeconds;
    if (limits.maxExecutionTimeoutSeconds > 0 && timeoutSeconds > limits.maxExecutionTimeoutSeconds) {
      throw new InvalidRequestError(`timeout must be at most ${limits.maxExecutionTimeoutSeconds} seconds`);
    }
    const context = contexts.get(request.contextId);
    context.assertAcceptsWork();

    const events = new EventQueue();
    context
      .execute({ code: request.code, timeoutMs: Math.round(timeoutSeconds * 1000) }, { write: (event) => events.push(event), waitForDrain: async () => {} }, signal)
      .catch((error: unknown) => events.push(toFailureEvent(error)))
      .finally(() => {
        events.push({ type: 'end_of_execution' });
        events.end();
      });
    return { executionId: undefined, events };
  };
}

/** Events pushed by the execution, read by one consumer as an async iterable. */
class EventQueue implements AsyncIterable<OutputEvent> {
  private readonly buffered: OutputEvent[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(event: OutputEvent): boolean {
    this.buffered.push(event);
    this.wake?.();
    return true;
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<OutputEvent> {
    for (;;) {
      const event = this.buffered.shift();
      if (event) {
        yield event;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
