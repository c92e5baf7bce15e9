import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { streamExecution } from '../transports/http/ndjson-response.js';
import { toStartExecution } from '../transports/start-execution.js';
import { BackgroundExecution, ExecuteBody } from '../schemas/execute.js';
import { errorResponses } from '../schemas/common.js';

const execute: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  app.post(
    '/execute',
    {
      schema: {
        summary: 'Run code in a context and stream what the kernel emits',
        operationId: 'execute',
        description:
          'Streams newline-delimited JSON, one ExecutionEvent per line, always ending with {"type":"end_of_execution"}. ' +
          'With neither context_id nor language, the default context runs the code. The X-Execution-Id header names the ' +
          'execution; with background: true the answer is 202 at once and the events are read from events_url.',
        tags: ['execution'],
        body: ExecuteBody,
        response: {
          200: {
            description: 'A stream of ExecutionEvent objects, one JSON object per line',
            headers: { 'x-execution-id': { type: 'string', description: 'The execution id' } },
            content: { 'application/x-ndjson': { schema: Type.Ref('ExecutionEvent') } },
          },
          202: BackgroundExecution,
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      // Nobody follows a background execution as it runs: the client's going away ends nothing.
      const execution = await app.executions.start(toStartExecution(body.background ? { ...body, on_disconnect: 'continue' } : body));
      reply.header('x-execution-id', execution.id);
      if (body.background) {
        return reply.code(202).send({
          execution_id: execution.id,
          context_id: execution.contextId,
          events_url: `/executions/${execution.id}/events`,
        });
      }
      // Everything that can be refused has been; from here on the answer is a 200 stream and
      // failures are events in it. The response is written directly (see NdjsonResponse), with
      // the headers hooks have set so far (CORS, say).
      reply.hijack();
      await streamExecution(execution, reply.raw, {
        requester: true,
        keepaliveMs: config.execution.keepaliveIntervalMs,
        headers: reply.getHeaders(),
      });
      return reply;
    },
  );
};

export default fp(execute, { name: 'execute-routes', encapsulate: true, dependencies: ['openapi', 'error-handler', 'auth', 'contexts'] });
