import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { RequestTimeoutError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route reads its body as a stream, for as long as it takes, and times it out itself
     * (uploads). Its body then has no deadline. Routes whose requests are short but whose
     * answers last (execution streams, WebSocket, MCP) need nothing: the deadline ends with
     * the request body, and the response is never limited.
     */
    streamsBody?: boolean;
  }
}

/** Log a burst of refused connections once per this interval, not once each. */
const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * The request body as the route's parser reads it, failing with a 408 once the deadline
 * passes. Counts the bytes it passes on (`receivedEncodedLength`, which Fastify's parsers
 * check against the body limit).
 */
class BodyDeadline extends Transform {
  receivedEncodedLength = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.receivedEncodedLength += chunk.length;
    callback(null, chunk);
  }
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * An upgrade request (`Upgrade: websocket`, on any route) leaves Node's HTTP handling: nothing
 * closes its socket after the answer, not even when the client goes (the socket then sits in
 * CLOSE-WAIT), and no keep-alive timeout applies. Unless a WebSocket takes the socket over
 * (ws writes its 101 to the socket itself, never through this response), the socket closes as
 * soon as the answer has been handed to the system: whatever the answer, 200 included, a
 * refused upgrade holds no connection beyond it.
 */
export function closeUpgradeAfterAnswer(request: IncomingMessage, response: ServerResponse): void {
  // Node sets it on the requests it hands to the 'upgrade' event; its typings leave it out.
  if ((request as IncomingMessage & { upgrade?: boolean }).upgrade !== true) return;
  if (!response.headersSent) response.setHeader('connection', 'close');
  // `destroySoon`: end, and destroy once what was written has gone, as Node's HTTP server does
  // for a response that ends its connection.
  response.once('finish', () => request.socket.destroySoon());
}

/**
 * Limits on what a client may hold without doing anything: connections that send their
 * request slowly (or never) and connections beyond `MAX_CONNECTIONS`.
 *
 * - Headers: Node's `headersTimeout` closes a connection whose headers (or, on a new
 *   connection, its first byte) do not arrive within `REQUEST_TIMEOUT`, with a 408. The
 *   server's `requestTimeout` stays 0: it would cut off uploads, which may take hours.
 * - Body: whatever route parses it must have it whole within `REQUEST_TIMEOUT` of its headers,
 *   or gets a 408 and the connection closes: a body trickled a byte at a time no longer holds
 *   a connection (and a parser's buffer) for ever. Routes that stream their body opt out
 *   (`config: { streamsBody: true }`); responses are never limited, so execution streams,
 *   WebSocket and MCP sessions last as long as they need to.
 * - Between requests a kept-alive connection closes after Fastify's `keepAliveTimeout` (72 s).
 * - Connections: past `MAX_CONNECTIONS`, new connections are closed as soon as they are accepted.
 * - Upgrade requests that do not become a WebSocket close once answered
 *   ({@link closeUpgradeAfterAnswer}); until then they count against `MAX_CONNECTIONS`.
 *
 * Refusals for load (429) tell clients when to try again (`Retry-After`).
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    const server = app.server;
    // First among the hooks that may refuse (this plugin is registered before them): a refusal
    // skips the onRequest hooks after it, and a refused upgrade must close all the same.
    app.addHook('onRequest', async (request, reply) => closeUpgradeAfterAnswer(request.raw, reply.raw));

    server.maxConnections = config.server.maxConnections;
    let lastDropLog = 0;
    let dropped = 0;
    server.on('drop', () => {
      dropped += 1;
      const now = Date.now();
      if (now - lastDropLog < DROP_LOG_INTERVAL_MS) return;
      app.log.warn({ dropped, maxConnections: config.server.maxConnections }, 'connections refused: MAX_CONNECTIONS are open');
      lastDropLog = now;
      dropped = 0;
    });

    const timeoutMs = config.server.requestTimeoutMs;
    if (timeoutMs > 0) {
      server.headersTimeout = timeoutMs;
      // Node checks for late headers this often (30 s by default, longer than the limit itself).
      // Read when the server starts listening; an option of createServer in Node's typings only.
      (server as typeof server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(1000, timeoutMs);

      app.addHook('preParsing', async (request, _reply, payload) => {
        if (request.routeOptions.config.streamsBody === true || !hasBody(request)) return payload;
        const limited = new BodyDeadline();
        const timer = setTimeout(() => {
          // Not `pipeline`: it would destroy the request, and its socket with it, before the
          // 408 could be written. Fastify closes the connection after the answer.
          payload.unpipe(limited);
          payload.pause();
          limited.destroy(new RequestTimeoutError(`The request body was not received within ${timeoutMs / 1000} seconds`));
        }, timeoutMs);
        const done = () => clearTimeout(timer);
        payload.once('end', done);
        payload.once('error', (error) => {
          done();
          limited.destroy(error);
        });
        limited.once('close', done);
        payload.pipe(limited);
        return limited;
      });
    }

    app.addHook('onSend', async (_request, reply, payload) => {
      // The queue that refused is a context's; one execution's time is a fair guess.
      if (reply.statusCode === 429 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1');
      return payload;
    });
  },
  // After the metrics, whose hook counts the requests this plugin refuses too.
  { name: 'request-limits', dependencies: ['metrics'] },
);
