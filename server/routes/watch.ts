import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import { toContractError } from '../transports/errors.js';
import { NdjsonResponse } from '../transports/http/ndjson-response.js';
import { errorResponses } from '../schemas/common.js';
import { WatchQuery } from '../schemas/files.js';

const line = (value: Record<string, unknown>) => Buffer.from(`${JSON.stringify(value)}\n`);
const KEEPALIVE = line({ type: 'keepalive' });

/**
 * `GET /watch`: the changes in a workspace directory as newline-delimited JSON, for clients that
 * do not speak e2b's protocol. The stream lasts until the client goes, the watch hits a bound
 * (its last line says so) or the server stops. While the client does not read, events wait in
 * the watch's bounded queue; past it the watch ends with ERR_WATCH_LIMIT.
 */
const watchRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  app.get(
    '/watch',
    {
      schema: {
        summary: 'Watch a workspace directory: its changes streamed as newline-delimited JSON',
        operationId: 'watchDirectory',
        description:
          'The first line, {"type":"watching"}, says the watch is in place; then one line per change (create, write, remove, ' +
          'rename, chmod) in the order they happened, names relative to the directory. An error line ends a watch that hit a bound.',
        tags: ['files'],
        querystring: WatchQuery,
        response: {
          200: {
            description: 'A stream of WatchLine objects, one JSON object per line',
            content: { 'application/x-ndjson': { schema: Type.Ref('WatchLine') } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const recursive = request.query.recursive === 'true';
      // Refusals (missing, not a directory, outside, too many watches) are ordinary error answers.
      const watch = await app.watches.watch(request.query.path ?? '.', recursive);
      reply.hijack();
      const res = reply.raw;
      const response = new NdjsonResponse(res, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'application/x-ndjson',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      });
      const onClose = () => watch.close();
      res.on('close', onClose);
      const keepaliveMs = config.execution.keepaliveIntervalMs;
      const keepalive = keepaliveMs > 0 ? setInterval(() => response.writeLine(KEEPALIVE), keepaliveMs) : undefined;
      try {
        response.writeLine(line({ type: 'watching', path: watch.path, recursive }));
        for await (const event of watch.events) {
          keepalive?.refresh();
          if (!response.writeLine(line({ type: event.type, name: event.name }))) await response.waitForDrain();
        }
        res.end();
      } catch (error) {
        if (!(error instanceof ApiError)) request.log.error({ err: error }, 'watch: ended by an unexpected error');
        const answer = toContractError(error, { id: request.id, headers: request.headers }).toBody();
        res.end(line({ type: 'error', code: answer.code, message: answer.message }));
      } finally {
        clearInterval(keepalive);
        res.off('close', onClose);
        watch.close();
        if (!res.writableEnded) res.destroy();
      }
    },
  );
};

export default watchRoutes;
