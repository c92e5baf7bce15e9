import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { InvalidRequestError, MethodNotAllowedError, RouteNotFoundError } from '../errors.js';
import { contractErrorOf, toContractError } from '../transports/errors.js';

/** Answers `error` as the contract says, logging it: refusals briefly, failures in full. */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const answer = toContractError(error, { id: request.id, headers: request.headers, bodyLimit: request.routeOptions?.bodyLimit });
  const body = answer.toBody();
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
  const answer = contractErrorOf(error) ?? new InvalidRequestError('Malformed HTTP request');
  const body = answer.toBody();
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
