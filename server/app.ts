import { randomUUID } from 'node:crypto';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  type onRouteHookHandler,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.js';
import type { ConnectRouter } from '@connectrpc/connect';
import { OperationLimit } from './sandbox-files/operation-limit.js';
import type { SandboxFiles } from './sandbox-files/types.js';
import { filesystemService } from './transports/connect/filesystem-service.js';
import { Filesystem } from './transports/connect/gen/envd/filesystem/filesystem_pb.js';
import { Watchers, type WatchersOptions } from './transports/connect/watchers.js';
import authPlugin, { type AccessControl } from './plugins/auth.js';
import contextsPlugin from './plugins/contexts.js';
import processesPlugin from './plugins/processes.js';
import sandboxFilesPlugin from './plugins/sandbox-files.js';
import metricsPlugin from './plugins/metrics.js';
import corsPlugin from './plugins/cors.js';
import errorHandlerPlugin, { clientErrorHandler, sendError } from './plugins/error-handler.js';
import hostOriginPlugin from './plugins/host-origin.js';
import openapiPlugin from './plugins/openapi.js';
import requestLimitsPlugin, { closeUpgradeAfterAnswer } from './plugins/request-limits.js';
import workspacePlugin from './plugins/workspace.js';
import claimRoutes from './routes/claim.js';
import contextRoutes from './routes/contexts.js';
import envdRoutes, { ENVD_USERS, type EnvdRoutesOptions } from './routes/envd.js';
import executeRoutes from './routes/execute.js';
import executionRoutes from './routes/executions.js';
import processRoutes from './routes/processes.js';
import fileRoutes from './routes/files.js';
import watchRoutes from './routes/watch.js';
import healthRoutes from './routes/health.js';
import metricsRoutes from './routes/metrics.js';
import mcpRoutes from './routes/mcp.js';
import wsRoutes from './routes/ws.js';
import playgroundRoutes from './routes/playground.js';
import type { ServerMetrics } from './metrics/metrics.js';
import { InvalidEnvVarError, InvalidJsonError } from './errors.js';
import { PROTO_NAME_PROBLEM, prototypeKeyProblem } from './runs/env-vars.js';
import { ErrorResponse } from './schemas/common.js';
import { Context } from './schemas/contexts.js';
import { ExecutionEvent, ExecutionInfo } from './schemas/execute.js';
import { WatchLine } from './schemas/files.js';
import { ProcessEvent, ProcessInfo } from './schemas/processes.js';
import { lazySerializers } from './schemas/serializers.js';
import { WsClientFrame, WsServerFrame } from './schemas/ws.js';

/**
 * One log line per request, written when it completes, rather than Fastify's two ("incoming
 * request" and "request completed"): the log write is a measurable part of a 10 ms execution.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = { req: request, res: reply, responseTime: Math.round(reply.elapsedTime * 10) / 10 };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

export interface BuildOptions {
  /** Fastify's logger option: a pino instance or options. Defaults to no logging (tests). */
  logger?: FastifyServerOptions['loggerInstance'];
  /** Sees every route as it is added (the OpenAPI test checks that each one is documented). */
  onRoute?: onRouteHookHandler;
}

/**
 * Builds the application: plugins, routes and error handling. Never listens; main.ts owns the
 * process, tests use `app.inject` or listen on a free port.
 */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...serverOptions(options),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    schemaController: { compilersFactory: { buildSerializer: lazySerializers() } },
    bodyLimit: 32 * 1024 * 1024,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addSchema(ErrorResponse);
  app.addSchema(Context);
  app.addSchema(ExecutionEvent);
  app.addSchema(ExecutionInfo);
  app.addSchema(ProcessEvent);
  app.addSchema(WatchLine);
  app.addSchema(ProcessInfo);
  app.addSchema(WsClientFrame);
  app.addSchema(WsServerFrame);

  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  // Before any route: it learns them as they are added.
  await app.register(openapiPlugin, { config });

  // Before any route, so that each inherits it: every error answer's code is in errors.ts.
  await app.register(errorHandlerPlugin);
  // An empty body is no body, whatever its Content-Type says: e2b's SDKs send
  // `Content-Type: application/json` with nothing on restart and delete. Where a body is
  // required, its schema refuses it; where there is no route, the answer is a 404.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, jsonOrNothing(app.getDefaultJsonParser('error', 'error')));

  // Each plugin names those it must follow (fastify-plugin's `dependencies`, with the reason
  // beside them), and registering out of order fails at boot. Their onRequest hooks reach every
  // route (plugins registered below inherit them; root-level routes such as /openapi.json get
  // them when the app is ready) and the 404 handler.
  await app.register(metricsPlugin);
  await app.register(requestLimitsPlugin, { config });
  await app.register(hostOriginPlugin, { config });
  await app.register(corsPlugin, { config });
  await app.register(authPlugin, { config });
  if (config.access.mode === 'claim') await app.register(claimRoutes);

  await app.register(workspacePlugin, { config });
  // Before the contexts: they ask it about cwds only the kernels' filesystem has.
  await app.register(sandboxFilesPlugin, { config });
  await app.register(contextsPlugin, { config });
  await app.register(processesPlugin, { config });
  await app.register(healthRoutes);
  await app.register(metricsRoutes, { config });
  // Outside the JSON scope below: uploads are raw bytes, streamed to disk unparsed.
  await app.register(fileRoutes, { config });
  await app.register(watchRoutes, { config });

  // JSON endpoints take JSON whatever the Content-Type says: `curl -d '{"code":"..."}'` sends
  // application/x-www-form-urlencoded, and that is how people type it. Empty is none, as above.
  await app.register(async (api) => {
    api.removeContentTypeParser(['application/json', 'text/plain']);
    api.addContentTypeParser(['application/json', '*'], { parseAs: 'string' }, jsonOrNothing(api.getDefaultJsonParser('error', 'error')));
    await api.register(executeRoutes, { config });
    await api.register(executionRoutes, { config });
    await api.register(processRoutes, { config });
    await api.register(contextRoutes);
    await api.register(mcpRoutes, { config });
  });
  await app.register(wsRoutes, { config });
  await app.register(playgroundRoutes, { config });

  return app;
}

/** What the envd listener takes from the main application, so that both are one server. */
export interface EnvdShared {
  /** The main application's: a token it accepts (or hands out at the claim) opens this one too. */
  access: AccessControl;
  metrics: ServerMetrics;
  /** Adds the Connect services, over the main application's domain objects. */
  services: (router: ConnectRouter) => void;
  /** The sandbox's files: served as envd's filesystem.Filesystem and /files when given. */
  files?: SandboxFiles;
  /** The watch registry's bounds (tests shorten the idle time). */
  watchers?: Partial<WatchersOptions>;
}

/** Largest Connect message either way: an input chunk, an output event (chunks are far smaller). */
const ENVD_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The second listener, on ENVD_PORT: e2b's in-sandbox daemon protocol (docs/e2b.md) for e2b's
 * SDKs, which send commands and terminals there. The same access control, limits, error answers
 * and metrics as the main application, with the main application's shared objects.
 */
export async function buildEnvdApp(config: Config, shared: EnvdShared, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(options));
  if (options.onRoute) app.addHook('onRoute', options.onRoute);
  await app.register(errorHandlerPlugin);
  await app.register(metricsPlugin, { metrics: shared.metrics });
  await app.register(requestLimitsPlugin, { config });
  await app.register(hostOriginPlugin, { config });
  await app.register(corsPlugin, { config });
  await app.register(authPlugin, { config, access: shared.access });

  let services = shared.services;
  let filesOptions: EnvdRoutesOptions['files'];
  if (shared.files) {
    const files = shared.files;
    const operations = new OperationLimit(config.files.maxOperations);
    const watchers = new Watchers(files, shared.watchers);
    // Before the connections close: a watch stream would otherwise hold the close for its deadline.
    app.addHook('preClose', async () => watchers.close());
    services = (router) => {
      shared.services(router);
      router.service(Filesystem, filesystemService({ files, operations, watchers }));
    };
    filesOptions = { files, operations, users: ENVD_USERS, maxUploadBytes: config.workspace.maxUploadBytes };
  }
  await app.register(async (envd) => {
    // Connect reads each request body itself, as a stream (StreamInput's lasts as long as the
    // client sends); its own limits bound the messages.
    envd.addHook('onRoute', (route) => {
      route.config = { ...route.config, streamsBody: true };
    });
    await envd.register(envdRoutes, { services, maxMessageBytes: ENVD_MAX_MESSAGE_BYTES, files: filesOptions });
  });
  return app;
}

/** What both listeners' Fastify instances share: logging, request ids, timeouts, malformed requests. */
function serverOptions(options: BuildOptions): FastifyServerOptions {
  return {
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    genReqId: (request) => {
      const supplied = request.headers['x-request-id'];
      return typeof supplied === 'string' && /^[\w.:-]{1,128}$/.test(supplied) ? supplied : randomUUID();
    },
    requestIdHeader: false,
    logController: new OneLinePerRequest(),
    // Executions stream for as long as the code runs.
    requestTimeout: 0,
    // A stream is never waited for on close beyond the registry's own grace period.
    forceCloseConnections: true,
    // What the router refuses (a malformed URL) and what never becomes a request (malformed
    // HTTP) answer in the same shape as everything else.
    frameworkErrors: (error, request, reply) => {
      closeUpgradeAfterAnswer(request.raw, reply.raw);
      sendError(error, request, reply);
    },
    clientErrorHandler,
  };
}

type BodyParser = (request: FastifyRequest, body: string, done: (error: Error | null, body?: unknown) => void) => void;

/**
 * Fastify's JSON parser, except that an empty body parses as no body instead of an error, and
 * that a `__proto__` key, which it refuses, is named as the reason rather than "not valid JSON".
 */
function jsonOrNothing(parser: ReturnType<FastifyInstance['getDefaultJsonParser']>): BodyParser {
  // Its type also admits a parser that answers with a promise; Fastify's JSON parser takes a callback.
  const parse = parser as BodyParser;
  return (request, body, done) => {
    if (body.length === 0) return done(null, undefined);
    parse(request, body, (error, parsed) => {
      const problem = (error as { code?: string } | null)?.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? prototypeKeyProblem(body) : undefined;
      if (problem === 'env-var') return done(new InvalidEnvVarError('name "__proto__"', PROTO_NAME_PROBLEM));
      if (problem === 'key')
        return done(new InvalidJsonError('The body has a "__proto__" key, or a "constructor" with a "prototype": neither is accepted'));
      done(error, parsed);
    });
  };
}
