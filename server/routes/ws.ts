import websocket, { type WebsocketPluginOptions } from '@fastify/websocket';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { InvalidRequestError, UpgradeRequiredError } from '../errors.js';
import { errorResponses } from '../schemas/common.js';
import { WS_MAX_FRAME_BYTES, WS_SUBPROTOCOL } from '../schemas/ws.js';
import { SocketSession } from '../transports/ws/session.js';
import { ApiWebSocket } from '../transports/ws/socket.js';

function websocketOptions(): WebsocketPluginOptions {
  return {
    options: {
      // Checked from each frame's header, before its payload is buffered.
      maxPayload: WS_MAX_FRAME_BYTES,
      // @types/ws wants the module's statics on the class too; ws itself only constructs it.
      WebSocket: ApiWebSocket as unknown as NonNullable<WebsocketPluginOptions['options']>['WebSocket'],
      // Chosen whenever offered; the `bearer.<token>` next to it is never echoed back.
      handleProtocols: (protocols: Set<string>) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    },
    errorHandler(error, socket, request) {
      // A frame ws could not read (it closes the socket itself, with 1002/1007/1009), or a
      // connection reset by the peer: the client's doing, not the server's.
      request.log.info({ err: { message: error.message, code: (error as { code?: unknown }).code } }, 'websocket error');
      if (socket.readyState === socket.CONNECTING || socket.readyState === socket.OPEN) socket.terminate();
    },
    // After the contexts plugin (a dependency), whose preClose gives running executions their grace
    // period first: whatever sockets remain are then told why they close.
    preClose(done) {
      for (const client of this.websocketServer.clients) client.close(1001, 'The server is shutting down');
      done();
    },
  };
}

const DESCRIPTION = `Upgrades to a WebSocket on which a client runs any number of executions, answers \`input()\` and interrupts.
Authenticate with \`Authorization\` or \`X-Access-Token\`, or, from a browser, with the subprotocols \`${WS_SUBPROTOCOL}, bearer.<token>\`
(the server answers \`${WS_SUBPROTOCOL}\`); never in the URL. A refused upgrade gets its 4xx before switching protocols,
and its connection closes after that answer (so does an upgrade request to any other route).

Client frames (\`WsClientFrame\`, JSON text): \`execute\` (the fields of POST /execute, plus \`type\` and \`request_id\`),
\`input\`, \`interrupt\`, \`attach\`; for commands and terminals \`process_start\` (the fields of POST /processes but \`background\`),
\`process_input\`, \`process_close_stdin\`, \`process_resize\`, \`process_signal\`, \`process_attach\`, \`process_detach\`; their events
carry \`process_id\`, and a process started on the socket is killed when it closes unless it asked to \`continue\`. Server frames (\`WsServerFrame\`): \`accepted\`, then each event of the execution exactly as on
POST /execute plus \`execution_id\`; \`request_error\` (with the status and code HTTP would answer) for a frame that is refused,
after which the socket stays open. A frame that cannot be read closes the socket: 1007 (text that is not UTF-8),
1009 (over ${WS_MAX_FRAME_BYTES} bytes). The server pings every KEEPALIVE_INTERVAL and closes a socket that does not answer,
and drops one that keeps sending frames without reading the answers (more than 64 KiB of them beyond its 1 MiB buffer);
when a socket closes, each execution it started follows its \`on_disconnect\`.`;

const wsRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  // In this plugin's scope only: it wraps each route added after it, and the other routes'
  // handlers stay as they are (HEAD routes share their GET's, which the OpenAPI plugin relies on).
  await app.register(websocket, websocketOptions());

  app.route({
    method: 'GET',
    url: '/ws',
    // A HEAD cannot be upgraded.
    exposeHeadRoute: false,
    schema: {
      summary: 'WebSocket: run code, answer input and interrupt over one connection',
      operationId: 'websocket',
      description: DESCRIPTION,
      tags: ['execution'],
      headers: Type.Object({
        upgrade: Type.Optional(Type.String({ description: 'websocket' })),
        'sec-websocket-protocol': Type.Optional(
          Type.String({ description: `\`${WS_SUBPROTOCOL}\`, and \`bearer.<token>\` where headers cannot be set` }),
        ),
      }),
      response: {
        101: {
          description: `Switching Protocols: the WebSocket is open. Client frames are WsClientFrame, server frames WsServerFrame (JSON text).`,
          content: {
            'application/json': { schema: Type.Union([Type.Ref('WsClientFrame'), Type.Ref('WsServerFrame')]) },
          },
        },
        400: errorResponses[400],
        401: errorResponses[401],
        403: errorResponses[403],
        426: Type.Ref('ErrorResponse', { description: 'A plain GET: this endpoint only upgrades' }),
      },
    },
    onRequest: async (request) => {
      // A client that offers subprotocols must be given one it knows, or it fails the handshake
      // with no word of why: say so while an HTTP answer is still possible.
      const offered = request.headers['sec-websocket-protocol'];
      if (request.ws && typeof offered === 'string' && !offered.split(',').some((protocol) => protocol.trim() === WS_SUBPROTOCOL)) {
        throw new InvalidRequestError(`Offer the subprotocol ${WS_SUBPROTOCOL} (the only one this server speaks) next to any other`);
      }
    },
    handler: async () => {
      throw new UpgradeRequiredError('/ws');
    },
    wsHandler: (socket, request) => {
      const log = request.log.child({ socket: request.id });
      log.info('websocket opened');
      socket.once('close', app.metrics.openSession('websocket'));
      new SocketSession(socket, request.raw.socket, {
        executions: app.executions,
        processes: app.processes,
        watches: app.watches,
        findContext: (id) => app.contexts.get(id),
        log,
        socketId: request.id,
        keepaliveIntervalMs: config.execution.keepaliveIntervalMs,
      });
    },
  });
};

export default fp(wsRoutes, {
  name: 'ws-routes',
  encapsulate: true,
  dependencies: ['openapi', 'error-handler', 'auth', 'contexts', 'metrics', 'processes'],
});
