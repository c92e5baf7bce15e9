import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { errorResponses } from '../schemas/common.js';

/**
 * `GET /metrics`: Prometheus's text format. Protected like every route; METRICS_TOKEN adds a
 * token that opens this route only (the scraper's), and METRICS_PUBLIC opens it to anyone.
 */
const metrics: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  app.get(
    '/metrics',
    {
      config: { metricsScrape: true },
      schema: {
        summary: 'Metrics in the Prometheus text format',
        operationId: 'metrics',
        description: config.metrics.public
          ? 'Open to anyone (METRICS_PUBLIC=true).'
          : 'Needs the access token, or the scraper token (METRICS_TOKEN) when the server has one.',
        tags: ['meta'],
        ...(config.metrics.public ? { security: [] } : {}),
        response: {
          200: {
            description: 'Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: Type.String() } },
          },
          401: errorResponses[401],
          403: errorResponses[403],
        },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await app.metrics.scrape();
      return reply.type(contentType).header('cache-control', 'no-store').send(body);
    },
  );
};

export default fp(metrics, { name: 'metrics-routes', encapsulate: true, dependencies: ['openapi', 'error-handler', 'auth', 'metrics'] });
