import { FastifyError } from '@fastify/error';
import {
  ApiError,
  BodyTooLargeError,
  HeadersTooLargeError,
  InternalError,
  InvalidJsonError,
  InvalidRequestError,
  RequestTimeoutError,
  UnsupportedMediaTypeError,
  UrlTooLongError,
  ValidationError,
} from '../errors.js';

/**
 * How any error becomes an answer, for every door (HTTP, the WebSocket, MCP): the one place that
 * decides what a client is told. The server's own coded errors pass as they are; the framework's
 * refusals of a request become their counterparts in the contract; anything else is a failure
 * of the server, whose details go to the log only.
 */

/** What an error answer needs to know about its request. */
export interface FailedRequest {
  /** The request's id, which an ERR_INTERNAL message points the operator to in the log. */
  id: string;
  headers: Record<string, string | string[] | undefined>;
  /** The route's body limit, when a route was found. */
  bodyLimit?: number | undefined;
}

/** The framework's own errors, as far as the mapping reads them. */
interface FrameworkError {
  code?: unknown;
  message?: unknown;
  validation?: unknown;
}

function quoted(value: unknown, max = 100): string {
  const text = String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

/**
 * The coded error a client may be told of for `error`: itself when it is the server's own, its
 * counterpart when the framework refused the request; undefined for anything else.
 */
export function contractErrorOf(error: unknown, request: Omit<FailedRequest, 'id'> = { headers: {} }): ApiError | undefined {
  if (error instanceof ApiError) return error;
  // Made with a code of the contract elsewhere (by the framework or a plugin, which use the same
  // error factory): the contract, not its maker, decides the status.
  if (error instanceof FastifyError) {
    const Coded = ApiError.classOf(error.code);
    if (Coded) return Object.assign(new Coded({ cause: error }), { message: error.message });
  }
  const { code, message, validation } = (error ?? {}) as FrameworkError;
  // Schema validation: Fastify's message names the field and the rule ("body must have
  // required property 'code'"), which is what the client needs.
  if (validation !== undefined && typeof message === 'string') return new ValidationError(message);
  switch (code) {
    case 'FST_ERR_VALIDATION':
      return new ValidationError(typeof message === 'string' ? message : 'The request is invalid');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new InvalidJsonError('The body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new InvalidJsonError('The body is empty but its Content-Type says JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLargeError(request.bodyLimit ?? 'the');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(quoted(request.headers['content-type'] ?? ''));
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InvalidRequestError('The body does not match its Content-Length');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_INVALID_URL':
      return new InvalidRequestError('The URL is malformed (an invalid percent-encoding?)');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new UrlTooLongError(100);
    case 'FST_ERR_ROUTE_MISSING_CONTENT_TYPE':
      return new InvalidRequestError('This method needs a Content-Type');
    case 'FST_ERR_ROUTE_MISSING_CONTENT':
      return new InvalidRequestError('This method needs a body');
    // Node's HTTP server, for requests too malformed to reach the framework.
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new RequestTimeoutError('The request was not received in time');
    case 'HPE_HEADER_OVERFLOW':
      return new HeadersTooLargeError();
    default:
      return undefined;
  }
}

/** The error the client sees for `error`: {@link contractErrorOf}, or ERR_INTERNAL with nothing of the original. */
export function toContractError(error: unknown, request: FailedRequest): ApiError {
  return contractErrorOf(error, request) ?? new InternalError(request.id);
}
