import fp from 'fastify-plugin';
import { ServerMetrics } from '../metrics/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The server's metrics. Transports report open sessions with `app.metrics.openSession(...)`,
     * the kernel pool through `app.metrics.pool`, file operations through `app.metrics.files`.
     */
    metrics: ServerMetrics;
  }
  interface FastifyContextConfig {
    /** The route is GET /metrics: the scraper's own token (METRICS_TOKEN) opens it too. */
    metricsScrape?: boolean;
  }
}

/**
 * Collects the metrics and connects the domain's events to them. Registered before every other
 * plugin, so that its hook sees each request, those refused by CORS or access control and the
 * ones no route serves included. The endpoint itself is routes/metrics.ts.
 */
export default fp<{ metrics?: ServerMetrics }>(
  async (app, options) => {
    // The envd listener (ENVD_PORT) counts into the same metrics as the main one.
    const metrics = options.metrics ?? new ServerMetrics();
    app.decorate('metrics', metrics);

    app.addHook('onRequest', async (request, reply) => {
      // 'close' rather than an onResponse hook: executions hijack their reply, and onResponse
      // never runs for those. The route is the template Fastify matched, never the raw URL:
      // undefined for paths no route serves, whatever they are.
      const route = request.routeOptions.url;
      reply.raw.once('close', () => metrics.httpRequest(request.method, route, reply.raw.statusCode, reply.elapsedTime / 1000));
    });

    app.addHook('onReady', async () => {
      if (app.hasDecorator('contexts')) metrics.observeContexts(app.contexts);
      if (app.hasDecorator('executions')) metrics.observeExecutions(app.executions);
      if (app.hasDecorator('processes')) metrics.observeProcesses(app.processes);
    });
  },
  { name: 'metrics' },
);
