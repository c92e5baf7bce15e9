import { STATUS_CODES } from 'node:http';
import { format } from 'node:util';
import * as contract from './errors.js';

/**
 * Every coded error the server answers with: the closed set of codes a client can ever see.
 * Each has a stable `code` that clients can match on, a message template and an HTTP status.
 * Domain modules throw these; callers tell them apart with `instanceof` (the base class, or one
 * code's class), never by the look of a `code` string: Node's own errors carry codes too
 * (`ERR_INVALID_ARG_TYPE`), and none of them is part of the contract. transports/errors.ts
 * turns any error into one of these for every door. Every `coded` export here joins the set by
 * itself ({@link errorCatalog}), the README's error list and `ErrorResponse.code` in
 * /openapi.json; a test checks both list every one.
 */
export abstract class ApiError extends Error {
  abstract readonly code: string;
  abstract readonly statusCode: number;

  /** The class of a code of the contract; undefined for any other code. */
  static classOf(code: string): CodedErrorClass | undefined {
    return classes.get(code);
  }

  /** The body of every error answer (schemas/common.ts `ErrorResponse`). */
  toBody(): ErrorBody {
    return { statusCode: this.statusCode, code: this.code, error: STATUS_CODES[this.statusCode] ?? 'Error', message: this.message };
  }
}

export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

export interface CodedErrorClass {
  new (...args: unknown[]): ApiError;
  readonly code: string;
  readonly statusCode: number;
}

const classes = new Map<string, CodedErrorClass>();

/**
 * One code of the contract: a class whose constructor fills `template`'s `%s` with its
 * arguments, in order. A last argument `{ cause }` is the error's cause, not part of the message.
 */
function coded<Code extends string>(code: Code, template: string, statusCode: number) {
  const CodedError = class extends ApiError {
    static readonly code = code;
    static readonly statusCode = statusCode;
    readonly code = code;
    readonly statusCode = statusCode;

    constructor(...args: unknown[]) {
      const last = args.at(-1);
      const cause = typeof last === 'object' && last !== null && 'cause' in last ? (args.pop() as { cause: unknown }).cause : undefined;
      super(format(template, ...args), cause === undefined ? undefined : { cause });
    }
  };
  // Stacks and logs name the code rather than an anonymous class.
  Object.defineProperty(CodedError, 'name', { value: code });
  Object.defineProperty(CodedError.prototype, 'name', { value: code });
  classes.set(code, CodedError);
  return CodedError;
}

// Requests: what the framework refuses before a route runs is mapped onto these.
export const InvalidRequestError = coded('ERR_INVALID_REQUEST', '%s', 400);
export const ValidationError = coded('ERR_VALIDATION', '%s', 400);
export const InvalidJsonError = coded('ERR_INVALID_JSON', '%s', 400);
export const BodyTooLargeError = coded('ERR_BODY_TOO_LARGE', 'The request body exceeds the limit of %s bytes', 413);
export const UnsupportedMediaTypeError = coded('ERR_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Content-Type %s', 415);
export const UrlTooLongError = coded('ERR_URL_TOO_LONG', 'A segment of the URL is longer than %s characters', 414);
export const RouteNotFoundError = coded('ERR_ROUTE_NOT_FOUND', 'Route %s %s not found', 404);
export const MethodNotAllowedError = coded('ERR_METHOD_NOT_ALLOWED', 'Method %s is not allowed on %s; allowed: %s', 405);
export const RequestTimeoutError = coded('ERR_REQUEST_TIMEOUT', '%s', 408);
export const HeadersTooLargeError = coded('ERR_HEADERS_TOO_LARGE', 'The request headers are too large', 431);
export const ContextAndLanguageError = coded(
  'ERR_CONTEXT_AND_LANGUAGE',
  'context_id and language are mutually exclusive: send one or neither',
  400,
);
export const InvalidEnvVarError = coded('ERR_INVALID_ENV_VAR', 'Invalid environment variable %s: %s', 400);

// Contexts
export const ContextNotFoundError = coded('ERR_CONTEXT_NOT_FOUND', 'Context %s not found', 404);
export const UnknownLanguageError = coded('ERR_UNKNOWN_LANGUAGE', 'No kernel is installed for language "%s"; available: %s', 400);
export const InvalidCwdError = coded('ERR_INVALID_CWD', 'cwd %s', 400);
export const ContextBusyError = coded('ERR_CONTEXT_BUSY', 'Context %s has %s executions waiting already; try again later', 429);
export const QueueFullError = coded(
  'ERR_QUEUE_FULL',
  'Executions waiting to run hold %s bytes of code already, and this one (%s bytes) would exceed MAX_QUEUED_BYTES (%s); try again later',
  429,
);
export const TooManyContextsError = coded(
  'ERR_TOO_MANY_CONTEXTS',
  '%s contexts exist, the most MAX_CONTEXTS allows; delete one (DELETE /contexts/{id}; GET /contexts lists them) or reuse one, then try again',
  429,
);

// Executions
export const ExecutionNotFoundError = coded(
  'ERR_EXECUTION_NOT_FOUND',
  'Execution %s not found (finished executions are kept for a while only)',
  404,
);
export const InputNotPendingError = coded('ERR_INPUT_NOT_PENDING', 'Execution %s is not waiting for input%s', 409);

// Processes (commands and terminals)
export const ProcessNotFoundError = coded(
  'ERR_PROCESS_NOT_FOUND',
  'Process %s not found (finished processes are kept for a while only)',
  404,
);
export const TooManyProcessesError = coded(
  'ERR_TOO_MANY_PROCESSES',
  '%s processes are running, the most MAX_PROCESSES allows; wait for one to end or end one (DELETE /processes/{id}), then try again',
  429,
);
/** Input, close-stdin or resize that the process cannot take (exited, stdin closed, not a terminal). */
export const ProcessInputError = coded('ERR_PROCESS_INPUT', 'Process %s %s', 409);
export const ProcessHostUnavailableError = coded('ERR_PROCESS_HOST_UNAVAILABLE', 'The process host is unavailable: %s', 503);

// Jupyter
export const JupyterUnavailableError = coded('ERR_JUPYTER_UNAVAILABLE', 'Jupyter Server is unavailable: %s', 503);
export const JupyterError = coded('ERR_JUPYTER', 'Jupyter Server answered %s: %s', 502);
export const KernelError = coded('ERR_KERNEL', 'Kernel error: %s', 502);

// Lifecycle
export const ShuttingDownError = coded('ERR_SERVER_SHUTTING_DOWN', 'The server is shutting down', 503);

// Workspace files
export const PathOutsideWorkspaceError = coded('ERR_PATH_OUTSIDE_WORKSPACE', 'Path %s is outside the workspace', 400);
export const InvalidPathError = coded('ERR_INVALID_PATH', 'Invalid path %s: %s', 400);
export const FileNotFoundError = coded('ERR_FILE_NOT_FOUND', 'No such file or directory: %s', 404);
export const NotADirectoryError = coded('ERR_NOT_A_DIRECTORY', 'Not a directory: %s', 400);
export const IsADirectoryError = coded('ERR_IS_A_DIRECTORY', 'Is a directory: %s', 400);
export const WorkspaceRootError = coded('ERR_WORKSPACE_ROOT', 'The workspace root cannot be %s', 400);
export const UploadTooLargeError = coded('ERR_UPLOAD_TOO_LARGE', 'Upload exceeds the limit of %s bytes', 413);
export const UploadAbortedError = coded('ERR_UPLOAD_ABORTED', 'The upload of %s ended before its body was complete', 400);
export const UploadTimeoutError = coded('ERR_UPLOAD_TIMEOUT', 'The upload of %s sent nothing for %s seconds', 408);
export const AlreadyExistsError = coded('ERR_ALREADY_EXISTS', '%s already exists%s', 409);
export const UnsafeArchiveEntryError = coded('ERR_UNSAFE_ARCHIVE_ENTRY', 'Archive entry %s refused: %s; nothing was written', 400);
export const InvalidArchiveError = coded('ERR_INVALID_ARCHIVE', 'The body is not a valid %s archive (%s); nothing was written', 400);
export const ExtractTooLargeError = coded('ERR_EXTRACT_TOO_LARGE', 'The archive holds more than %s; nothing was written', 413);
export const PathChangedError = coded('ERR_PATH_CHANGED', 'Path %s changed while it was being used; try again', 409);
export const PermissionDeniedError = coded('ERR_PERMISSION_DENIED', 'Permission denied: %s', 403);

// Watching a workspace directory (GET /watch, /ws watch frames)
export const TooManyWatchesError = coded(
  'ERR_TOO_MANY_WATCHES',
  '%s watches are open, the most MAX_WATCHES allows; end one (close its stream, or send watch_stop), then try again',
  429,
);
/** At the start (too many directories) or as the last event of a watch (that, or a reader that did not keep up). */
export const WatchLimitError = coded('ERR_WATCH_LIMIT', 'The watch of %s ended: %s', 507);
export const NoSpaceError = coded('ERR_NO_SPACE', 'No space left in the workspace to write %s', 507);
export const RangeNotSatisfiableError = coded('ERR_RANGE_NOT_SATISFIABLE', 'Range %s cannot be served from a file of %s bytes', 416);

// Access control
export const UnauthorizedError = coded('ERR_UNAUTHORIZED', '%s', 401);
export const UnclaimedError = coded('ERR_UNCLAIMED', 'This server has not been claimed yet: POST /claim first', 403);
export const OriginNotAllowedError = coded(
  'ERR_ORIGIN_NOT_ALLOWED',
  'Origin %s may not call this server: list it in CORS_ORIGINS to let its pages in',
  403,
);
export const HostNotAllowedError = coded(
  'ERR_HOST_NOT_ALLOWED',
  'Host %s is not allowed: call the server by localhost or an IP address, or list the name in ALLOWED_HOSTS',
  403,
);

// WebSocket (GET /ws). A frame that is not JSON, or fails its schema, gets ERR_INVALID_JSON or
// ERR_VALIDATION, as a request body would.
/** A binary frame, or a JSON one of no known type. */
export const InvalidFrameError = coded('ERR_INVALID_FRAME', '%s', 400);
/** An `attach` to an execution whose events this socket receives already. */
export const AlreadyAttachedError = coded('ERR_ALREADY_ATTACHED', 'This socket receives the events of %s already', 409);
export const UpgradeRequiredError = coded(
  'ERR_UPGRADE_REQUIRED',
  'GET %s is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket',
  426,
);

// Anything else: the details go to the log only, under the request id the message names.
export const InternalError = coded('ERR_INTERNAL', 'Internal server error (request id %s)', 500);

export interface ErrorDefinition {
  code: string;
  statusCode: number;
}

/**
 * Every code above with its status, sorted by code: read from this module's own exports, so
 * that a new `coded` error cannot be left out of the contract.
 */
export function errorCatalog(): readonly ErrorDefinition[] {
  return (Object.values(contract) as unknown[])
    .filter((value): value is ErrorDefinition => typeof value === 'function' && value.prototype instanceof ApiError)
    .map(({ code, statusCode }) => ({ code, statusCode }))
    .sort((a, b) => a.code.localeCompare(b.code));
}
