import Fastify, { type FastifyPluginAsync } from 'fastify';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import authPlugin from '../../server/plugins/auth.js';
import corsPlugin from '../../server/plugins/cors.js';
import hostOriginPlugin from '../../server/plugins/host-origin.js';
import requestLimitsPlugin from '../../server/plugins/request-limits.js';
import claimRoutes from '../../server/routes/claim.js';
import contextRoutes from '../../server/routes/contexts.js';
import executeRoutes from '../../server/routes/execute.js';
import executionRoutes from '../../server/routes/executions.js';
import fileRoutes from '../../server/routes/files.js';
import healthRoutes from '../../server/routes/health.js';
import mcpRoutes from '../../server/routes/mcp.js';
import metricsRoutes from '../../server/routes/metrics.js';
import wsRoutes from '../../server/routes/ws.js';

/**
 * Each plugin names the plugins it must come after, so that registering them in another order
 * fails at boot instead of quietly leaving a route without access control, or a refusal
 * uncounted. buildApp's own order is checked by every test that builds the app.
 */
const config = loadConfig({ JUPYTER_URL: 'http://127.0.0.1:9' });

const plugins: Array<[string, unknown, string[]]> = [
  ['request-limits', requestLimitsPlugin, ['metrics']],
  ['host-origin', hostOriginPlugin, ['request-limits']],
  ['cors', corsPlugin, ['host-origin']],
  ['auth', authPlugin, ['cors']],
  ['claim-routes', claimRoutes, ['openapi', 'error-handler', 'auth']],
  ['context-routes', contextRoutes, ['openapi', 'error-handler', 'auth', 'contexts']],
  ['execute-routes', executeRoutes, ['openapi', 'error-handler', 'auth', 'contexts']],
  ['execution-routes', executionRoutes, ['openapi', 'error-handler', 'auth', 'contexts']],
  ['file-routes', fileRoutes, ['openapi', 'error-handler', 'auth', 'workspace']],
  ['health-routes', healthRoutes, ['openapi', 'error-handler', 'auth', 'contexts']],
  ['mcp-routes', mcpRoutes, ['openapi', 'error-handler', 'auth', 'contexts', 'metrics', 'workspace']],
  ['metrics-routes', metricsRoutes, ['openapi', 'error-handler', 'auth', 'metrics']],
  ['ws-routes', wsRoutes, ['openapi', 'error-handler', 'auth', 'contexts', 'metrics']],
];

/** A stand-in registered under `name`, as fastify-plugin names a plugin. */
function named(name: string): FastifyPluginAsync {
  const plugin: FastifyPluginAsync = async () => {};
  Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('plugin-meta')]: { name } });
  return plugin;
}

describe('plugin dependencies', () => {
  it.each(plugins)('%s refuses to be registered before any of its dependencies', async (name, plugin, dependencies) => {
    for (const missing of dependencies) {
      const app = Fastify();
      for (const other of dependencies) if (other !== missing) await app.register(named(other));
      const registered = app.register(plugin as FastifyPluginAsync<{ config: typeof config }>, { config });
      await expect(registered).rejects.toMatchObject({ code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED' });
      await expect(registered).rejects.toThrow(`The dependency '${missing}' of plugin '${name}' is not registered`);
      await app.close();
    }
  });
});
