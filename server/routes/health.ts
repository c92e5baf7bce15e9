import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import { JupyterUnavailableError } from '../errors.js';

/** Liveness (`/health`: the process serves) and readiness (`/ready`: Jupyter answers too). */
const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health',
    {
      schema: {
        summary: 'Liveness: the server process is serving',
        operationId: 'health',
        tags: ['health'],
        security: [],
        response: { 200: Type.Literal('OK', { description: 'The JSON string "OK"' }) },
      },
    },
    // The reference answers the JSON string "OK"; clients compare against it.
    async (_request, reply) => reply.type('application/json').send(JSON.stringify('OK') as 'OK'),
  );

  app.get(
    '/ready',
    {
      schema: {
        summary: 'Readiness: Jupyter is reachable, so executions can run',
        operationId: 'ready',
        tags: ['health'],
        security: [],
        response: {
          200: Type.Object({ status: Type.Literal('ready') }, { description: 'Jupyter answers' }),
          503: Type.Object(
            {
              status: Type.Literal('unavailable'),
              statusCode: Type.Literal(503),
              code: Type.Literal('ERR_JUPYTER_UNAVAILABLE'),
              error: Type.String({ description: 'HTTP status text' }),
              message: Type.String(),
            },
            {
              description:
                'Jupyter does not answer yet, or answers with an error (as it may while it starts): ERR_JUPYTER_UNAVAILABLE, whatever it answered',
            },
          ),
        },
      },
    },
    async (_request, reply) => {
      try {
        await app.jupyter.ping();
        return { status: 'ready' as const };
      } catch (error) {
        // Whatever Jupyter answered (connection refused, 500 while it starts, 403 for a wrong
        // token), readiness is this server's to answer: 503 and its own code, never Jupyter's status.
        const detail =
          error instanceof Error && error.message ? error.message.replace(/^Jupyter Server is unavailable: /, '') : String(error);
        const body = new JupyterUnavailableError(detail).toBody();
        return reply
          .code(503)
          .send({ status: 'unavailable' as const, ...body, statusCode: 503 as const, code: 'ERR_JUPYTER_UNAVAILABLE' as const });
      }
    },
  );
};

export default fp(health, { name: 'health-routes', encapsulate: true, dependencies: ['openapi', 'error-handler', 'auth', 'contexts'] });
