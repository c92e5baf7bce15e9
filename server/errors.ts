import createError from '@fastify/error';

/**
 * Every coded error the server answers with. Each has a stable `code` that clients can match
 * on, a message template and an HTTP status. Domain modules throw these; the error handler in
 * app.ts turns them into `{ "error": code, "message": ..., "statusCode": ... }`.
 */

// Requests
export const InvalidRequestError = createError('ERR_INVALID_REQUEST', '%s', 400);
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

// Executions
export const ExecutionNotFoundError = createError('ERR_EXECUTION_NOT_FOUND', 'Execution %s not found (finished executions are kept for a while only)', 404);
export const InputNotPendingError = createError('ERR_INPUT_NOT_PENDING', 'Execution %s is not waiting for input', 409);

// Jupyter
export const JupyterUnavailableError = createError('ERR_JUPYTER_UNAVAILABLE', 'Jupyter Server is unavailable: %s', 503);
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
export const PathChangedError = createError('ERR_PATH_CHANGED', 'Path %s changed while it was being opened; try again', 409);
export const PermissionDeniedError = createError('ERR_PERMISSION_DENIED', 'Permission denied: %s', 403);
export const NoSpaceError = createError('ERR_NO_SPACE', 'No space left in the workspace to write %s', 507);
export const RangeNotSatisfiableError = createError('ERR_RANGE_NOT_SATISFIABLE', 'Range %s cannot be served from a file of %s bytes', 416);

// Access control
export const UnauthorizedError = createError('ERR_UNAUTHORIZED', '%s', 401);
export const UnclaimedError = createError('ERR_UNCLAIMED', 'This server has not been claimed yet: POST /claim first', 403);
