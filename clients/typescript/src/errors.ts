import type { components } from './generated/openapi.js';

/** A code the server answers errors with (`ErrorResponse.code` in its /openapi.json). */
export type ErrorCode = components['schemas']['ErrorResponse']['code'];

/**
 * Every error the server answers with: `code` is its stable code (match on it, or on the
 * subclasses below), `status` the HTTP status. Errors that never reached the server (a refused
 * connection) have the code `ERR_CONNECTION` and status 0.
 */
export class CodeInterpreterError extends Error {
  readonly code: ErrorCode | 'ERR_CONNECTION' | 'ERR_PROTOCOL' | (string & {});
  readonly status: number;

  constructor(message: string, code: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** The server could not be reached, or the connection broke. */
export class ConnectionError extends CodeInterpreterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_CONNECTION', 0, options);
  }
}

/** The access token is missing or wrong (`ERR_UNAUTHORIZED`, `ERR_UNCLAIMED`). */
export class AuthenticationError extends CodeInterpreterError {}
/** A context, execution, process or file that does not exist. */
export class NotFoundError extends CodeInterpreterError {}
/** A file or directory is in the way (`ERR_ALREADY_EXISTS`). */
export class AlreadyExistsError extends CodeInterpreterError {}
/** The request was refused as malformed: the message says what was wrong. */
export class InvalidRequestError extends CodeInterpreterError {}
/** A limit was reached: too many contexts, processes, queued executions, or bytes. */
export class LimitExceededError extends CodeInterpreterError {}
/** Jupyter, a kernel or the process host is unavailable for now. */
export class UnavailableError extends CodeInterpreterError {}

const NOT_FOUND = new Set([
  'ERR_CONTEXT_NOT_FOUND',
  'ERR_EXECUTION_NOT_FOUND',
  'ERR_FILE_NOT_FOUND',
  'ERR_PROCESS_NOT_FOUND',
  'ERR_ROUTE_NOT_FOUND',
]);
const LIMITS = new Set([
  'ERR_QUEUE_FULL',
  'ERR_TOO_MANY_CONTEXTS',
  'ERR_TOO_MANY_PROCESSES',
  'ERR_TOO_MANY_WATCHES',
  'ERR_WATCH_LIMIT',
  'ERR_BODY_TOO_LARGE',
  'ERR_UPLOAD_TOO_LARGE',
  'ERR_EXTRACT_TOO_LARGE',
  'ERR_NO_SPACE',
]);
const UNAVAILABLE = new Set(['ERR_JUPYTER_UNAVAILABLE', 'ERR_PROCESS_HOST_UNAVAILABLE', 'ERR_SERVER_SHUTTING_DOWN']);

/** The error class for a server's answer: its `code` picks the subclass. */
export function errorFor(status: number, code: string, message: string): CodeInterpreterError {
  if (code === 'ERR_UNAUTHORIZED' || code === 'ERR_UNCLAIMED') return new AuthenticationError(message, code, status);
  if (NOT_FOUND.has(code)) return new NotFoundError(message, code, status);
  if (code === 'ERR_ALREADY_EXISTS') return new AlreadyExistsError(message, code, status);
  if (LIMITS.has(code)) return new LimitExceededError(message, code, status);
  if (UNAVAILABLE.has(code)) return new UnavailableError(message, code, status);
  if (status === 400) return new InvalidRequestError(message, code, status);
  return new CodeInterpreterError(message, code, status);
}

/**
 * The code raised: `name` is the exception's name (`ZeroDivisionError`, also `KernelDied`,
 * `ContextRestarted` and the other errors the server reports around the code), `value` its
 * message, `trace` the traceback as the kernel printed it.
 */
export class ExecutionError extends Error {
  readonly value: string;
  readonly trace: string;

  constructor(name: string, value: string, trace: string) {
    super(value ? `${name}: ${value}` : name);
    this.name = name;
    this.value = value;
    this.trace = trace;
  }
}

/** The execution hit its time limit; the server interrupted it (and restarted a kernel that ignored that). */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}
