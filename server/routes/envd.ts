import type { ConnectRouter } from '@connectrpc/connect';
import { fastifyConnectPlugin } from '@connectrpc/connect-fastify';
import type { FastifyPluginAsync } from 'fastify';
import { userCheck } from '../transports/connect/wire.js';
import envdFiles, { type EnvdFilesOptions } from './envd-files.js';

/** The users e2b's SDKs may name: its default one, which is the kernels' user here. */
export const ENVD_USERS: readonly string[] = ['user'];

export interface EnvdRoutesOptions {
  /** Adds the Connect services (process.Process) to the router. */
  services: (router: ConnectRouter) => void;
  /** Largest Connect message read or written, in bytes. */
  maxMessageBytes: number;
  /** GET and POST /files, when the sandbox's files are served. */
  files?: EnvdFilesOptions;
}

/**
 * e2b's in-sandbox daemon (envd) as its SDKs call it on ENVD_PORT: its health check, its
 * environment endpoint, its file transfers (/files), and the Connect services. Nothing else of
 * envd is served (docs/e2b.md).
 */
const envd: FastifyPluginAsync<EnvdRoutesOptions> = async (app, { services, maxMessageBytes, files }) => {
  // envd answers 204 with no-store (packages/envd/internal/api/store.go); the SDK only looks at
  // the status. Open like the API's own /health: orchestrators probe without credentials.
  app.get('/health', { schema: { security: [] } }, async (_request, reply) => reply.code(204).header('cache-control', 'no-store').send());
  // envd's default variables for its commands; here commands get the kernels' environment,
  // which the API does not hand out, so there are none to report.
  app.get('/envs', async () => ({}));

  if (files) await app.register(envdFiles, files);

  await app.register(fastifyConnectPlugin, {
    routes: services,
    interceptors: [userCheck(ENVD_USERS)],
    // The Python SDK also ignores fields it does not know; a newer client's fields are no error.
    jsonOptions: { ignoreUnknownFields: true },
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
  });
};

export default envd;
