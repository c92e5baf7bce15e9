import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import fp from 'fastify-plugin';
import { Type, type Static } from 'typebox';
import type { Config } from '../config.js';
import { InvalidRequestError } from '../errors.js';
import type { ManagedProcess } from '../processes/process.js';
import { streamExecution } from '../transports/http/ndjson-response.js';
import { toStartProcess } from '../transports/start-process.js';
import { errorResponses } from '../schemas/common.js';
import {
  BackgroundProcess,
  ListProcessesQuery,
  ProcessEventsQuery,
  ProcessInputBody,
  type ProcessInfo,
  ProcessParams,
  ResizeBody,
  SignalBody,
  StartProcessBody,
} from '../schemas/processes.js';

/** How long DELETE waits for a killed tree to be reaped before it lets the host finish the job. */
const DELETE_GRACE_MS = 2000;

function infoOf(process: ManagedProcess): Static<typeof ProcessInfo> {
  const { owner, ...info } = process.info;
  return { ...info, context_id: owner.kind === 'context' ? owner.id : null };
}

const ndjson = {
  description: 'A stream of ProcessEvent objects, one JSON object per line',
  headers: { 'x-process-id': { type: 'string', description: 'The process id' } },
  content: { 'application/x-ndjson': { schema: Type.Ref('ProcessEvent') } },
};

const processes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  app.post(
    '/processes',
    {
      schema: {
        summary: "Run a command (or a terminal) as the kernels' user and stream its output",
        operationId: 'startProcess',
        description:
          'Streams newline-delimited JSON: process_started, then stdout/stderr (or pty) as they come, then exit, always ending ' +
          'with {"type":"end_of_execution"}. With background: true the answer is 202 with the pid at once.',
        tags: ['processes'],
        body: StartProcessBody,
        response: { 200: ndjson, 202: BackgroundProcess, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { background, context_id: contextId, ...fields } = request.body;
      const context = contextId === undefined ? undefined : app.contexts.get(contextId);
      const process = await app.processes.start(
        toStartProcess(fields, { owner: { kind: 'server' }, context: context && { id: context.id, cwd: context.cwd }, background }),
      );
      reply.header('x-process-id', process.id);
      if (background) {
        return reply.code(202).send({ process_id: process.id, pid: process.pid!, events_url: `/processes/${process.id}/events` });
      }
      reply.hijack();
      await streamExecution(process, reply.raw, {
        requester: true,
        keepaliveMs: config.execution.keepaliveIntervalMs,
        headers: reply.getHeaders(),
      });
      return reply;
    },
  );

  app.get(
    '/processes',
    {
      schema: {
        summary: 'List processes, newest first: running ones, and finished ones kept for a while',
        operationId: 'listProcesses',
        tags: ['processes'],
        querystring: ListProcessesQuery,
        response: { 200: Type.Array(Type.Ref('ProcessInfo')), ...errorResponses },
      },
    },
    async (request) => app.processes.list({ running: request.query.running === 'true' }).map(infoOf),
  );

  app.get(
    '/processes/:process_id',
    {
      schema: {
        summary: 'One process and its state',
        operationId: 'getProcess',
        tags: ['processes'],
        params: ProcessParams,
        response: { 200: Type.Ref('ProcessInfo'), ...errorResponses },
      },
    },
    async (request) => infoOf(app.processes.get(request.params.process_id)),
  );

  app.get(
    '/processes/:process_id/events',
    {
      schema: {
        summary: "Stream a process's events from an index, then the live ones until end_of_execution",
        operationId: 'getProcessEvents',
        description:
          'NDJSON like POST /processes. Any number of readers at once; events that left the bounded buffer before a reader ' +
          'got them come as one events_dropped line with their count.',
        tags: ['processes'],
        params: ProcessParams,
        querystring: ProcessEventsQuery,
        response: { 200: ndjson, ...errorResponses },
      },
    },
    async (request, reply) => {
      const process = app.processes.get(request.params.process_id);
      reply.hijack();
      await streamExecution(process, reply.raw, {
        from: Number(request.query.from ?? 0),
        keepaliveMs: config.execution.keepaliveIntervalMs,
        headers: { ...reply.getHeaders(), 'x-process-id': process.id },
      });
      return reply;
    },
  );

  app.post(
    '/processes/:process_id/input',
    {
      schema: {
        summary: "Write to a process's stdin, or to its terminal",
        operationId: 'sendProcessInput',
        tags: ['processes'],
        params: ProcessParams,
        body: ProcessInputBody,
        response: {
          200: Type.Ref('ProcessInfo'),
          409: Type.Ref('ErrorResponse', { description: 'The process cannot take input' }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { data, data_base64 } = request.body;
      if ((data === undefined) === (data_base64 === undefined)) throw new InvalidRequestError('send either data or data_base64');
      const process = app.processes.get(request.params.process_id);
      const bytes = data !== undefined ? Buffer.from(data, 'utf8') : Buffer.from(data_base64!, 'base64');
      await process.write(bytes, process.pty ? 'pty' : 'stdin');
      return infoOf(process);
    },
  );

  app.post(
    '/processes/:process_id/close-stdin',
    {
      schema: {
        summary: "Close a process's stdin (EOF); closing it again is fine",
        operationId: 'closeProcessStdin',
        tags: ['processes'],
        params: ProcessParams,
        response: {
          200: Type.Ref('ProcessInfo'),
          409: Type.Ref('ErrorResponse', { description: 'A terminal: send Ctrl+D' }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const process = app.processes.get(request.params.process_id);
      process.closeStdin();
      return infoOf(process);
    },
  );

  app.post(
    '/processes/:process_id/signal',
    {
      schema: {
        summary: 'Signal a process and its whole tree',
        operationId: 'signalProcess',
        tags: ['processes'],
        params: ProcessParams,
        body: SignalBody,
        response: { 200: Type.Ref('ProcessInfo'), ...errorResponses },
      },
    },
    async (request) => {
      const process = app.processes.get(request.params.process_id);
      process.signal(request.body.signal);
      return infoOf(process);
    },
  );

  app.post(
    '/processes/:process_id/resize',
    {
      schema: {
        summary: "Resize a process's terminal",
        operationId: 'resizeProcess',
        tags: ['processes'],
        params: ProcessParams,
        body: ResizeBody,
        response: { 200: Type.Ref('ProcessInfo'), 409: Type.Ref('ErrorResponse', { description: 'Not a terminal' }), ...errorResponses },
      },
    },
    async (request) => {
      const process = app.processes.get(request.params.process_id);
      process.resize(request.body.cols, request.body.rows);
      return infoOf(process);
    },
  );

  app.delete(
    '/processes/:process_id',
    {
      schema: {
        summary: 'Kill a process with its whole tree, and forget it',
        operationId: 'deleteProcess',
        tags: ['processes'],
        params: ProcessParams,
        response: { 200: Type.Ref('ProcessInfo'), ...errorResponses },
      },
    },
    async (request) => {
      const process = app.processes.get(request.params.process_id);
      await app.processes.remove(process.id, DELETE_GRACE_MS);
      return infoOf(process);
    },
  );
};

export default fp(processes, {
  name: 'process-routes',
  encapsulate: true,
  dependencies: ['openapi', 'error-handler', 'auth', 'contexts', 'processes'],
});
