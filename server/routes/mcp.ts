import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { McpSessions } from '../transports/mcp/sessions.js';
import { packageVersion } from '../plugins/openapi.js';
import { errorResponses } from '../schemas/common.js';

const SESSION_HEADER = Type.Object(
  {
    'mcp-session-id': Type.Optional(Type.String({ description: 'The session, as the answer to initialize named it' })),
    'mcp-protocol-version': Type.Optional(Type.String({ description: 'The protocol version agreed at initialize' })),
  },
  { additionalProperties: true },
);

const JsonRpcMessage = Type.Object(
  { jsonrpc: Type.Literal('2.0') },
  { additionalProperties: true, description: 'A JSON-RPC 2.0 request, notification or response' },
);

const JsonRpcError = Type.Object(
  { jsonrpc: Type.Literal('2.0'), error: Type.Object({ code: Type.Integer(), message: Type.String() }) },
  { additionalProperties: true, description: 'A JSON-RPC error, as the MCP transport answers' },
);

/** The transport's refusals are JSON-RPC errors; the server's own (401, a malformed body) are ErrorResponse. */
const eitherError = (description: string) => ({
  description,
  content: { 'application/json': { schema: Type.Union([Type.Ref('ErrorResponse'), JsonRpcError]) } },
});

const jsonRpcError = (description: string) => ({
  description,
  content: { 'application/json': { schema: JsonRpcError } },
});

/**
 * The Model Context Protocol endpoint (Streamable HTTP): the same contexts, executions and
 * workspace as the HTTP API, offered as tools. Access control and CORS have run in their
 * hooks by the time a request gets here; what follows is the SDK's transport, handed the
 * parsed body, and the sessions in server/transports/mcp.
 */
const mcp: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  const sessions = new McpSessions({
    contexts: app.contexts,
    files: app.workspace,
    executions: app.executions,
    processes: app.processes,
    logger: app.log,
    options: {
      idleMs: config.mcp.sessionIdleMs,
      maxSessions: config.mcp.maxSessions,
      maxTextChars: config.mcp.maxTextChars,
      maxFileBytes: config.mcp.maxFileBytes,
      maxUploadBytes: config.workspace.maxUploadBytes,
      heartbeatMs: config.execution.keepaliveIntervalMs,
      version: packageVersion(),
    },
  });
  app.metrics.countSessions('mcp', () => sessions.size);
  app.addHook('preClose', async () => {
    await sessions.close();
  });

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    // Headers hooks have set (CORS) go out with whatever the transport writes.
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value);
    await sessions.handle(request.raw, reply.raw, request.body, `${request.protocol}://${request.host}`);
  };

  const common = { tags: ['mcp'], headers: SESSION_HEADER };
  app.post(
    '/mcp',
    {
      schema: {
        ...common,
        summary: 'MCP (Streamable HTTP): send JSON-RPC messages',
        operationId: 'mcpPost',
        description:
          'The Model Context Protocol over Streamable HTTP. Start with an `initialize` request (no `Mcp-Session-Id`); its answer carries the `Mcp-Session-Id` header ' +
          'to send with every later request. Send `Accept: application/json, text/event-stream`. Requests are answered with a JSON-RPC response or an SSE stream of ' +
          'messages (progress notifications, then the response). Tools: execute_code, list_contexts, create_context, restart_context, interrupt, list_files, read_file, write_file, delete_file.',
        body: Type.Union([JsonRpcMessage, Type.Array(JsonRpcMessage)]),
        response: {
          200: {
            description: 'The JSON-RPC response, or an SSE stream of messages ending with it',
            content: { 'application/json': { schema: JsonRpcMessage }, 'text/event-stream': { schema: Type.String() } },
          },
          202: { description: 'Accepted (the body held only notifications or responses)', type: 'null' },
          ...errorResponses,
          400: eitherError('A malformed message, no Mcp-Session-Id where one is needed, or an unsupported protocol version'),
          403: eitherError('Origin or Host not allowed'),
          404: jsonRpcError('Session not found: it was closed or expired; initialize a new one'),
          406: jsonRpcError('Accept must list both application/json and text/event-stream'),
          415: jsonRpcError('Content-Type must be application/json'),
          429: jsonRpcError(
            'An initialize request while MCP_MAX_SESSIONS sessions all have a call running (otherwise the session unused the longest is closed to make room), with Retry-After',
          ),
        },
      },
    },
    handler,
  );

  app.get(
    '/mcp',
    {
      schema: {
        ...common,
        summary: 'MCP (Streamable HTTP): open the stream of server-initiated messages',
        operationId: 'mcpStream',
        response: {
          200: { description: 'An SSE stream of JSON-RPC messages', content: { 'text/event-stream': { schema: Type.String() } } },
          ...errorResponses,
          404: jsonRpcError('Session not found: it was closed or expired; initialize a new one'),
          406: jsonRpcError('Accept must list text/event-stream'),
        },
      },
      // A HEAD has nothing to ask of the transport.
      exposeHeadRoute: false,
    },
    handler,
  );

  app.delete(
    '/mcp',
    {
      schema: {
        ...common,
        summary: 'MCP (Streamable HTTP): end the session and delete its contexts',
        operationId: 'mcpClose',
        response: {
          200: { description: 'The session is closed; its contexts are deleted', type: 'null' },
          ...errorResponses,
          404: jsonRpcError('Session not found: it was closed or expired'),
        },
      },
    },
    handler,
  );
};

export default fp(mcp, {
  name: 'mcp-routes',
  encapsulate: true,
  dependencies: ['openapi', 'error-handler', 'auth', 'contexts', 'metrics', 'workspace', 'processes'],
});
