import createError from '@fastify/error';
import * as contract from './errors.js';

/**
 * Every coded error the server answers with: the closed set of codes a client can ever see.
 * Each has a stable `code` that clients can match on, a message template and an HTTP status.
 * Domain modules throw these; the error handler (plugins/error-handler.ts) turns them into
 * `{ "statusCode", "code", "error", "message" }`, maps the framework's own errors onto them and
 * answers anything else with ERR_INTERNAL. Every `createError` exported here joins the set by
 * itself ({@link errorCatalog}), the README's error list and `ErrorResponse.code` in
 * /openapi.json; a test checks both list every one.
 */

// Requests: what the framework refuses before a route runs is mapped onto these.
export const InvalidRequestError = createError('ERR_INVALID_REQUEST', '%s', 400);
export const ValidationError = createError('ERR_VALIDATION', '%s', 400);
export const InvalidJsonError = createError('ERR_INVALID_JSON', '%s', 400);
export const BodyTooLargeError = createError('ERR_BODY_TOO_LARGE', 'The request body exceeds the limit of %s bytes', 413);
export const UnsupportedMediaTypeError = createError('ERR_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Content-Type %s', 415);
export const UrlTooLongError = createError('ERR_URL_TOO_LONG', 'A segment of the URL is longer than %s characters', 414);
export const RouteNotFoundError = createError('ERR_ROUTE_NOT_FOUND', 'Route %s %s not found', 404);
export const MethodNotAllowedError = createError('ERR_METHOD_NOT_ALLOWED', 'Method %s is not allowed on %s; allowed: %s', 405);
export const RequestTimeoutError = createError('ERR_REQUEST_TIMEOUT', '%s', 408);
export const HeadersTooLargeError = createError('ERR_HEADERS_TOO_LARGE', 'The request headers are too large', 431);
export const ContextAndLanguageError = createError(
  'ERR_CONTEXT_AND_LANGUAGE',
  'context_id and language are mutually exclusive: send one or neither',
  400,
);
export const InvalidEnvVarError = createError('ERR_INVALID_ENV_VAR', 'Invalid environment variable %s: %s', 400);

// Contexts
export const ContextNotFoundError = createError('ERR_CONTEXT_NOT_FOUND', 'Context %s not found', 404);
export const UnknownLanguageError = createError(
  'ERR_UNKNOWN_LANGUAGE',
  'No kernel is installed for language "%s"; available: %s',
  400,
);
export const InvalidCwdError = createError('ERR_INVALID_CWD', 'cwd %s', 400);
export const ContextBusyError = createError('ERR_CONTEXT_BUSY', 'Context %s has %s executions waiting already; try again later', 429);
export const QueueFullError = createError(
  'ERR_QUEUE_FULL',
  'Executions waiting to run hold %s bytes of code already, and this one (%s bytes) would exceed MAX_QUEUED_BYTES (%s); try again later',
  429,
);
export const TooManyContextsError = createError(
  'ERR_TOO_MANY_CONTEXTS',
  '%s contexts exist, the most MAX_CONTEXTS allows; delete one (DELETE /contexts/{id}; GET /contexts lists them) or reuse one, then try again',
  429,
);

// Executions
export const ExecutionNotFoundError = createError('ERR_EXECUTION_NOT_FOUND', 'Execution %s not found (finished executions are kept for a while only)', 404);
export const InputNotPendingError = createError('ERR_INPUT_NOT_PENDING', 'Execution %s is not waiting for input%s', 409);

// Jupyter
export const JupyterUnavailableError = createError('ERR_JUPYTER_UNAVAILABLE', 'Jupyter Server is unavailable: %s', 503);
export const JupyterError = createError('ERR_JUPYTER', 'Jupyter Server answered %s: %s', 502);
export const KernelError = createError('ERR_KERNEL', 'Kernel error: %s', 502);

// Lifecycle
export const ShuttingDownError = createError('ERR_SERVER_SHUTTING_DOWN', 'The server is shutting down', 503);

// Workspace files
export const PathOutsideWorkspaceError = createError('ERR_PATH_OUTSIDE_WORKSPACE', 'Path %s is outside the workspace', 400);
export const InvalidPathError = createError('ERR_INVALID_PATH', 'Invalid path %s: %s', 400);
export const FileNotFoundError = createError('ERR_FILE_NOT_FOUND', 'No such file or directory: %s', 404);
export const NotADirectoryError = createError('ERR_NOT_A_DIRECTORY', 'Not a directory: %s', 400);
export const IsADirectoryError = createError('ERR_IS_A_DIRECTORY', 'Is a directory: %s', 400);
export const WorkspaceRootError = createError('ERR_WORKSPACE_ROOT', 'The workspace root cannot be %s', 400);
export const UploadTooLargeError = createError('ERR_UPLOAD_TOO_LARGE', 'Upload exceeds the limit of %s bytes', 413);
export const UploadAbortedError = createError('ERR_UPLOAD_ABORTED', 'The upload of %s ended before its body was complete', 400);
export const UploadTimeoutError = createError('ERR_UPLOAD_TIMEOUT', 'The upload of %s sent nothing for %s seconds', 408);
export const AlreadyExistsError = createError('ERR_ALREADY_EXISTS', '%s already exists%s', 409);
export const UnsafeArchiveEntryError = createError('ERR_UNSAFE_ARCHIVE_ENTRY', 'Archive entry %s refused: %s; nothing was written', 400);
export const InvalidArchiveError = createError('ERR_INVALID_ARCHIVE', 'The body is not a valid %s archive (%s); nothing was written', 400);
export const ExtractTooLargeError = createError('ERR_EXTRACT_TOO_LARGE', 'The archive holds more than %s; nothing was written', 413);
export const PathChangedError = createError('ERR_PATH_CHANGED', 'Path %s changed while it was being used; try again', 409);
export const PermissionDeniedError = createError('ERR_PERMISSION_DENIED', 'Permission denied: %s', 403);
export const NoSpaceError = createError('ERR_NO_SPACE', 'No space left in the workspace to write %s', 507);
export const RangeNotSatisfiableError = createError('ERR_RANGE_NOT_SATISFIABLE', 'Range %s cannot be served from a file of %s bytes', 416);

// Access control
export const UnauthorizedError = createError('ERR_UNAUTHORIZED', '%s', 401);
export const UnclaimedError = createError('ERR_UNCLAIMED', 'This server has not been claimed yet: POST /claim first', 403);
export const OriginNotAllowedError = createError(
  'ERR_ORIGIN_NOT_ALLOWED',
  'Origin %s may not call this server: list it in CORS_ORIGINS to let its pages in',
  403,
);
export const HostNotAllowedError = createError(
  'ERR_HOST_NOT_ALLOWED',
  'Host %s is not allowed: call the server by localhost or an IP address, or list the name in ALLOWED_HOSTS',
  403,
);

// WebSocket (GET /ws). A frame that is not JSON, or fails its schema, gets ERR_INVALID_JSON or
// ERR_VALIDATION, as a request body would.
/** A binary frame, or a JSON one of no known type. */
export const InvalidFrameError = createError('ERR_INVALID_FRAME', '%s', 400);
/** An `attach` to an execution whose events this socket receives already. */
export const AlreadyAttachedError = createError('ERR_ALREADY_ATTACHED', 'This socket receives the events of execution %s already', 409);
export const UpgradeRequiredError = createError('ERR_UPGRADE_REQUIRED', 'GET %s is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket', 426);

// Anything else: the details go to the log only, under the request id the message names.
export const InternalError = createError('ERR_INTERNAL', 'Internal server error (request id %s)', 500);

export interface ErrorDefinition {
  code: string;
  statusCode: number;
}

const FASTIFY_ERROR = Symbol.for('fastify-error-generic');

/**
 * Every code above with its status, sorted by code: read from this module's own exports, so
 * that a new `createError` cannot be left out of the contract.
 */
export function errorCatalog(): readonly ErrorDefinition[] {
  return (Object.values(contract) as unknown[])
    .filter((value): value is new () => { code: string; statusCode?: number } =>
      typeof value === 'function' && (value.prototype as Record<symbol, unknown> | undefined)?.[FASTIFY_ERROR] === true,
    )
    .map((constructor) => {
      const { code, statusCode } = new constructor();
      return { code, statusCode: statusCode ?? 500 };
    })
    .sort((a, b) => a.code.localeCompare(b.code));
}
