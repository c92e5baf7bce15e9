export {
  AlreadyExistsError,
  AuthenticationError,
  CodeInterpreterError,
  ConnectionError,
  ExecutionError,
  InvalidRequestError,
  LimitExceededError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
  type ErrorCode,
} from './errors.js';
export {
  Execution,
  ExecutionClient,
  type AttachOptions,
  type ConnectOptions,
  type Context,
  type ExecuteOptions,
  type ExecutionClientOptions,
  type ExecutionEvent,
  type ExecutionInfo,
  type ExecutionResult,
  type InputHandler,
  type InputRequest,
} from './execution-client.js';
export { type ServerOptions } from './http.js';
export { ndjson } from './ndjson.js';
export {
  ResourceClient,
  type ArchiveInfo,
  type FileEntry,
  type FileInfo,
  type ResourceClientOptions,
  type TransferOptions,
} from './resource-client.js';
export type { components, operations, paths } from './generated/openapi.js';
export { CONTAINER_API_PORT, CONTAINER_WORKSPACE, DEFAULT_TAG, ExecutionContainer, type ExecutionContainerOptions } from './container.js';
