import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

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
          503: Type.Object({ status: Type.Literal('unavailable'), message: Type.String() }, { description: 'Jupyter does not answer (yet)' }),
        },
      },
    },
    async (_request, reply) => {
      try {
        await app.jupyter.ping();
        return { status: 'ready' as const };
      } catch (error) {
        return reply.code(503).send({ status: 'unavailable' as const, message: (error as Error).message });
      }
    },
  );
};

export default health;
