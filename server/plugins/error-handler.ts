import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import {
  BodyTooLargeError,
  errorCatalog,
  HeadersTooLargeError,
  InternalError,
  InvalidJsonError,
  InvalidRequestError,
  MethodNotAllowedError,
  RequestTimeoutError,
  RouteNotFoundError,
  UnsupportedMediaTypeError,
  UrlTooLongError,
  ValidationError,
} from '../errors.js';

/** The body of every error answer (schemas/common.ts `ErrorResponse`). */
export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
}

/** What an error answer needs to know about its request. */
export interface FailedRequest {
  id: string;
  headers: Record<string, string | string[] | undefined>;
  /** The route's body limit, when a route was found. */
  bodyLimit?: number | undefined;
}

const statusOf = new Map(errorCatalog().map(({ code, statusCode }) => [code, statusCode]));

/**
 * Whether `error` is one of errors.ts, rather than any error that happens to carry a code: Node's
 * own (`ERR_INVALID_ARG_TYPE`, ...) and the framework's (`FST_ERR_*`) are not part of the contract.
 * @fastify/error marks each instance with a symbol of its code.
 */
function isContractError(error: unknown): error is FastifyError {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && statusOf.has(code) && (error as Record<symbol, unknown>)[Symbol.for(`fastify-error ${code}`)] === true;
}

function quoted(value: unknown, max = 100): string {
  const text = String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

/**
 * The error the client sees for `error`: itself when it is the server's own, its counterpart
 * when the framework refused the request, and ERR_INTERNAL, with nothing of the original, for
 * anything else.
 */
export function toContractError(error: unknown, request: FailedRequest): FastifyError {
  if (isContractError(error)) return error;
  const { code, message, validation } = (error ?? {}) as Partial<FastifyError>;
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
    default:
      return new InternalError(request.id);
  }
}

export function errorBody(error: FastifyError): ErrorBody {
  const statusCode = statusOf.get(error.code) ?? 500;
  return { statusCode, code: error.code, error: STATUS_CODES[statusCode] ?? 'Error', message: error.message };
}

/** Answers `error` as the contract says, logging it: refusals briefly, failures in full. */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const answer = toContractError(error, { id: request.id, headers: request.headers, bodyLimit: request.routeOptions?.bodyLimit });
  const body = errorBody(answer);
  if (body.statusCode >= 500) request.log.error({ err: error, code: body.code }, 'request failed');
  else request.log.info({ code: body.code, message: body.message }, 'request refused');
  return reply.code(body.statusCode).send(body);
}

/** Methods a route can be added for; OPTIONS is left out: CORS answers it on every path. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * Fastify's `clientErrorHandler`: a request too malformed to reach the router (bad HTTP, headers
 * too large, a body that timed out) still gets the contract's shape, then the connection closes.
 */
export function clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const answer =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new RequestTimeoutError('The request was not received in time')
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? new HeadersTooLargeError()
        : new InvalidRequestError('Malformed HTTP request');
  const body = errorBody(answer);
  this.log.debug({ err: error, code: body.code }, 'malformed request');
  if (socket.writable) {
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${body.statusCode} ${body.error}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}

/**
 * The one error handler and the not-found handler: whatever fails, the client gets an
 * `ErrorResponse` whose code is in errors.ts. Registered before any route so that each inherits it.
 */
export default fp(
  async (app) => {
    app.setErrorHandler((error, request, reply) => sendError(error, request, reply));

    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0]!;
      // A path that exists for other methods is a 405 with the ones it has (RFC 9110 15.5.6);
      // a handler may also send its own request here (POST /claim once claimed): that stays a 404.
      const allowed = METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
      if (allowed.length > 0 && !allowed.includes(request.method as (typeof METHODS)[number])) {
        reply.header('allow', allowed.join(', '));
        return sendError(new MethodNotAllowedError(request.method, path, allowed.join(', ')), request, reply);
      }
      return sendError(new RouteNotFoundError(request.method, path), request, reply);
    });
  },
  { name: 'error-handler' },
);
