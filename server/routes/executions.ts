import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { streamExecution } from '../transports/http/ndjson-response.js';
import { errorResponses } from '../schemas/common.js';
import { EventsQuery, ExecutionParams, InputBody } from '../schemas/execute.js';

const executions: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  app.get(
    '/executions',
    {
      schema: {
        summary: 'List recent executions, newest first',
        operationId: 'listExecutions',
        tags: ['execution'],
        response: { 200: Type.Array(Type.Ref('ExecutionInfo')), ...errorResponses },
      },
    },
    async () => app.executions.list(),
  );

  app.get(
    '/executions/:execution_id',
    {
      schema: {
        summary: 'One execution and its state',
        operationId: 'getExecution',
        tags: ['execution'],
        params: ExecutionParams,
        response: { 200: Type.Ref('ExecutionInfo'), ...errorResponses },
      },
    },
    async (request) => app.executions.get(request.params.execution_id).info,
  );

  app.get(
    '/executions/:execution_id/events',
    {
      schema: {
        summary: "Stream an execution's events from an index, then the live ones until end_of_execution",
        operationId: 'getExecutionEvents',
        description:
          'NDJSON like POST /execute. Any number of readers at once; a reader never slows the kernel, and events that ' +
          'left the bounded buffer before it read them come as one events_dropped line with their count.',
        tags: ['execution'],
        params: ExecutionParams,
        querystring: EventsQuery,
        response: {
          200: {
            description: 'A stream of ExecutionEvent objects, one JSON object per line',
            content: { 'application/x-ndjson': { schema: Type.Ref('ExecutionEvent') } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const execution = app.executions.get(request.params.execution_id);
      reply.hijack();
      await streamExecution(execution, reply.raw, {
        from: Number(request.query.from ?? 0),
        keepaliveMs: config.execution.keepaliveIntervalMs,
        headers: { ...reply.getHeaders(), 'x-execution-id': execution.id },
      });
      return reply;
    },
  );

  app.post(
    '/executions/:execution_id/interrupt',
    {
      schema: {
        summary: 'Interrupt an execution: a running one gets KeyboardInterrupt, a queued one is cancelled',
        operationId: 'interruptExecution',
        tags: ['execution'],
        params: ExecutionParams,
        response: { 200: Type.Ref('ExecutionInfo'), ...errorResponses },
      },
    },
    async (request) => {
      const execution = app.executions.get(request.params.execution_id);
      execution.interrupt();
      return execution.info;
    },
  );

  app.post(
    '/executions/:execution_id/input',
    {
      schema: {
        summary: 'Answer the input() or getpass() an execution waits for',
        operationId: 'sendExecutionInput',
        tags: ['execution'],
        params: ExecutionParams,
        body: InputBody,
        response: {
          200: Type.Ref('ExecutionInfo'),
          409: Type.Ref('ErrorResponse', { description: 'No input is pending' }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const execution = app.executions.get(request.params.execution_id);
      execution.provideInput(request.body.value, request.body.input_id);
      return execution.info;
    },
  );
};

export default fp(executions, {
  name: 'execution-routes',
  encapsulate: true,
  dependencies: ['openapi', 'error-handler', 'auth', 'contexts'],
});
