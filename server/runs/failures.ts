import { ApiError, ContextNotFoundError, JupyterUnavailableError, KernelError, ShuttingDownError } from '../errors.js';
import { toErrorEvent, type ErrorEvent } from './events.js';

/** How an execution ended, as `GET /executions/{id}` and the metrics report it. */
export const OUTCOMES = [
  'ok',
  'error',
  'timeout',
  'interrupted',
  'kernel_died',
  'out_of_memory',
  'abandoned',
  'cancelled',
  'failed',
] as const;

export type Outcome = (typeof OUTCOMES)[number];

/**
 * Every failure around the code (rather than in it) that an execution can report, as the
 * `error` event's name, with its default message and the outcome it gives the execution. The
 * one place these names are written.
 */
export const FAILURES = {
  TimeoutError: { message: 'Execution exceeded the time limit', outcome: 'timeout' },
  KernelDied: {
    message: 'The kernel died (it crashed, exited or ran out of memory) and was restarted; its state was lost',
    outcome: 'kernel_died',
  },
  OutOfMemory: {
    message: 'The kernel ran out of memory and was killed; it was restarted and its state was lost',
    outcome: 'out_of_memory',
  },
  OutputTooLarge: { message: 'The kernel sent a single output larger than the server accepts', outcome: 'error' },
  KernelLost: { message: 'The kernel connection was lost during the execution', outcome: 'kernel_died' },
  JupyterUnavailable: { message: 'The connection to Jupyter was lost during the execution', outcome: 'failed' },
  JupyterRestarted: { message: 'Jupyter restarted and the kernel was lost; a new one was started', outcome: 'failed' },
  ContextRestarted: { message: 'The context was restarted; its state was lost', outcome: 'failed' },
  ContextDeleted: { message: 'The context was deleted', outcome: 'failed' },
  ServerShuttingDown: { message: 'The server is shutting down', outcome: 'failed' },
  EnvVarsError: { message: 'The environment variables could not be set; the code was not run', outcome: 'failed' },
  ExecutionAborted: { message: 'The kernel aborted the execution', outcome: 'error' },
  ExecutionCancelled: { message: 'The execution was cancelled before it started', outcome: 'cancelled' },
  ExecutionError: { message: 'The execution failed', outcome: 'failed' },
} as const satisfies Record<string, { message: string; outcome: Outcome }>;

export type FailureName = keyof typeof FAILURES;

/** The coded errors of errors.ts that can end an execution, and the failure each one reports. */
const FAILURE_OF_ERROR: ReadonlyArray<readonly [abstract new (...args: never[]) => ApiError, FailureName]> = [
  [JupyterUnavailableError, 'JupyterUnavailable'],
  [ShuttingDownError, 'ServerShuttingDown'],
  [KernelError, 'KernelLost'],
  [ContextNotFoundError, 'ContextDeleted'],
];

/** Why the kernel went away under an execution; carried as a context's life-signal reason. */
export class KernelLostError extends Error {
  readonly errorName: FailureName;

  constructor(name: FailureName, message: string = FAILURES[name].message) {
    super(message);
    this.name = 'KernelLostError';
    this.errorName = name;
  }
}

export function failureEvent(name: FailureName, message: string = FAILURES[name].message): ErrorEvent {
  return toErrorEvent(name, message);
}

export function outcomeOfFailure(name: string): Outcome | undefined {
  return (FAILURES as Record<string, { outcome: Outcome }>)[name]?.outcome;
}

/**
 * The `error` event for anything thrown around the code (Jupyter unreachable, the context
 * deleted while the request waited, ...): a KernelLostError keeps its name, a coded error gets
 * its entry in the table, anything else is an ExecutionError whose message says nothing of the
 * server's internals.
 */
export function toFailureEvent(error: unknown): ErrorEvent {
  if (error instanceof KernelLostError) return failureEvent(error.errorName, error.message);
  const name = FAILURE_OF_ERROR.find(([type]) => error instanceof type)?.[1];
  return name === undefined ? failureEvent('ExecutionError') : failureEvent(name, (error as ApiError).message);
}
