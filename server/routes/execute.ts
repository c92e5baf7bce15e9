import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { ContextAndLanguageError, InvalidEnvVarError, InvalidRequestError } from '../errors.js';
import { invalidEnvVarName, invalidEnvVarValue, envVarDialect } from '../execution/env-vars.js';
import { NdjsonResponse } from '../execution/ndjson-response.js';
import { toFailureEvent, type OutputEvent } from '../execution/events.js';
import { ExecuteBody } from '../schemas/execute.js';
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
          'With neither context_id nor language, the default Python context runs the code.',
        tags: ['execution'],
        body: ExecuteBody,
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
      const { code, context_id: contextId, language, env_vars: envVars, timeout } = request.body;
      if (contextId !== undefined && language !== undefined) throw new ContextAndLanguageError();

      for (const [name, value] of Object.entries(envVars ?? {})) {
        const problem = invalidEnvVarName(name) ?? invalidEnvVarValue(value);
        if (problem) throw new InvalidEnvVarError(JSON.stringify(name), problem);
      }
      const timeoutSeconds = timeout ?? config.executionTimeoutSeconds;
      if (config.maxExecutionTimeoutSeconds > 0 && timeoutSeconds > config.maxExecutionTimeoutSeconds) {
        throw new InvalidRequestError(`timeout must be at most ${config.maxExecutionTimeoutSeconds} seconds`);
      }

      const context = contextId !== undefined ? app.contexts.get(contextId) : await app.contexts.defaultContext(language);
      if (envVars && Object.keys(envVars).length > 0 && !envVarDialect(context.language)) {
        throw new InvalidRequestError(`env_vars are not supported for language ${context.language}`);
      }
      context.assertAcceptsWork();

      // Everything that can be refused has been; from here on the answer is a 200 stream and
      // failures are events in it. The response is written directly (see NdjsonResponse), with
      // the headers hooks have set so far (CORS, say).
      reply.hijack();
      const response = new NdjsonResponse(reply.raw, {
        ...reply.getHeaders(),
        'content-type': 'application/x-ndjson',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      });
      const abandoned = new AbortController();
      const onClose = () => {
        if (!reply.raw.writableFinished) abandoned.abort(new Error('client disconnected'));
      };
      reply.raw.on('close', onClose);
      request.log.debug({ context: context.id, bytes: code.length, envVars: Object.keys(envVars ?? {}).length }, 'execution queued');

      const keepalive =
        config.keepaliveIntervalMs > 0 ? setInterval(() => response.write({ type: 'keepalive' }), config.keepaliveIntervalMs) : undefined;
      // Keepalives only fill silences: any other event restarts the interval.
      const sink = {
        write: (event: OutputEvent) => {
          keepalive?.refresh();
          return response.write(event);
        },
        waitForDrain: () => response.waitForDrain(),
      };

      context
        .execute({ code, envVars, timeoutMs: Math.round(timeoutSeconds * 1000) }, sink, abandoned.signal)
        .catch((error: unknown) => {
          if (abandoned.signal.aborted) return;
          request.log.warn({ err: error, context: context.id }, 'execution failed');
          response.write(toFailureEvent(error));
        })
        .finally(() => {
          clearInterval(keepalive);
          reply.raw.off('close', onClose);
          response.finish();
          request.log.debug({ context: context.id, abandoned: abandoned.signal.aborted }, 'execution finished');
        });

      return reply;
    },
  );
};

export default execute;
