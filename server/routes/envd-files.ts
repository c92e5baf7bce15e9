import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { OperationLimit } from '../sandbox-files/operation-limit.js';
import type { SandboxFiles } from '../sandbox-files/types.js';
import { discardRest, download, EnvdHttpError, signatureIsValid, toEnvdHttpError, upload } from '../transports/http/envd-files.js';
import { basicAuthUser } from '../transports/connect/wire.js';

export interface EnvdFilesOptions {
  files: SandboxFiles;
  operations: OperationLimit;
  /** The user names the sandbox answers to (e2b's default, `user`): files are that user's. */
  users: readonly string[];
  maxUploadBytes: number;
}

/** An upload that sends nothing for this long is abandoned (and nothing is written). */
const UPLOAD_IDLE_TIMEOUT_MS = 120_000;
/** What a refused upload may still send, read and dropped, before the answer; more closes the connection. */
const DISCARD_MAX_BYTES = 1024 * 1024;
const DISCARD_TIMEOUT_MS = 5_000;
/** Parts of one multipart upload: the SDK's writeFiles sends one per file. */
const MAX_UPLOAD_PARTS = 10_000;

const FilesQuery = Type.Object({
  path: Type.Optional(Type.String({ description: "the file; absolute, or relative to the workspace (e2b: the user's home)" })),
  username: Type.Optional(Type.String({ description: "the sandbox's user (`user`); another is refused with 401" })),
  signature: Type.Optional(Type.String({ description: "e2b's signed-URL signature (`v1_...`), see docs/e2b.md" })),
  signature_expiration: Type.Optional(Type.String({ description: 'Unix seconds after which the signature is refused' })),
});

// Error answers are not declared: envd's own ({code: <status>, message}) come from the handlers,
// but access control and query validation answer in the API's shape, before them.

/**
 * envd's file transfers on ENVD_PORT: `GET /files` downloads, `POST /files` uploads
 * (transports/http/envd-files.ts). Every transfer holds one of MAX_FILE_OPERATIONS for as long as
 * its bytes move.
 */
const envdFiles: FastifyPluginAsyncTypebox<EnvdFilesOptions> = async (app, { files, operations, users, maxUploadBytes }) => {
  // Bodies are handed over unread: multipart and raw uploads are streamed, never buffered.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  // e2b's uploadUrl/downloadUrl: the query as the SDK signed it, before any decoding of ours.
  const signed =
    (operation: 'read' | 'write') =>
    (request: FastifyRequest, token: string): boolean => {
      const query = new URLSearchParams(request.url.slice(request.url.indexOf('?') + 1));
      return signatureIsValid(
        {
          path: query.get('path') ?? '',
          operation,
          username: query.get('username') ?? '',
          signature: query.get('signature') ?? '',
          expiration: query.get('signature_expiration') ?? undefined,
        },
        token,
      );
    };

  const refuse = (reply: FastifyReply, error: unknown) => {
    const answer = toEnvdHttpError(error);
    if (answer.status >= 500) reply.log.error({ err: error }, 'envd file transfer failed');
    return reply.code(answer.status).header('content-type', 'application/json; charset=utf-8').send(answer.body);
  };
  const checkUser = (username: string | undefined, authorization: string | undefined) => {
    const named = username ?? basicAuthUser(authorization ?? null);
    if (named !== undefined && named !== '' && !users.includes(named)) {
      const shown = named.slice(0, 64).replace(/[^\x20-\x7e]/g, '?');
      throw new EnvdHttpError(401, `error looking up user '${shown}': files are the sandbox user's (${users.join(', ')})`);
    }
  };

  app.get(
    '/files',
    {
      config: { signedUrl: signed('read') },
      schema: {
        summary: "Download a file (e2b's envd)",
        querystring: FilesQuery,
        response: { 200: { content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } } } },
      },
    },
    async (request, reply) => {
      let release: (() => void) | undefined;
      try {
        checkUser(request.query.username, request.headers.authorization);
        release = operations.acquire();
        const gone = new AbortController();
        reply.raw.once('close', () => {
          gone.abort();
          release?.();
        });
        const { name, stream } = await download(files, request.query.path ?? '', gone.signal);
        return (
          reply
            .header('content-type', 'application/octet-stream')
            .header('content-disposition', `inline; filename*=UTF-8''${encodeURIComponent(name)}`)
            .header('cache-control', 'no-store')
            // The body schema names bytes; the type provider types it as a string.
            .send(stream as never)
        );
      } catch (error) {
        release?.();
        return refuse(reply, error);
      }
    },
  );

  app.post(
    '/files',
    {
      // Uploads last as long as data keeps coming (UPLOAD_IDLE_TIMEOUT_MS).
      config: { streamsBody: true, signedUrl: signed('write') },
      schema: {
        summary: "Upload files, multipart/form-data or a raw body (e2b's envd)",
        querystring: FilesQuery,
        response: {
          200: Type.Array(Type.Object({ name: Type.String(), type: Type.Literal('file'), path: Type.String() })),
        },
      },
    },
    async (request, reply) => {
      let release: (() => void) | undefined;
      const idle = new AbortController();
      try {
        checkUser(request.query.username, request.headers.authorization);
        if (Object.keys(request.headers).some((name) => name.startsWith('x-metadata-'))) {
          throw new EnvdHttpError(400, 'file metadata (X-Metadata-* headers) is not supported by this server');
        }
        release = operations.acquire();
        request.raw.setTimeout(UPLOAD_IDLE_TIMEOUT_MS, () =>
          idle.abort(new EnvdHttpError(408, `no upload data for ${UPLOAD_IDLE_TIMEOUT_MS / 1000} s`)),
        );
        reply.raw.once('close', () => idle.abort(new EnvdHttpError(499, 'the client went away')));
        const encoding = request.headers['content-encoding']?.trim().toLowerCase();
        if (encoding !== undefined && encoding !== '' && encoding !== 'identity' && encoding !== 'gzip') {
          throw new EnvdHttpError(400, `unsupported Content-Encoding: ${encoding.slice(0, 40)} (identity or gzip)`);
        }
        const written = await upload(request.body as Readable, {
          files,
          path: request.query.path,
          contentType: request.headers['content-type'] ?? '',
          gzip: encoding === 'gzip',
          maxBytes: maxUploadBytes,
          maxParts: MAX_UPLOAD_PARTS,
          signal: idle.signal,
        });
        return written;
      } catch (error) {
        // A client that is still sending reads no answer until it has sent it all (fetch fails
        // with the socket instead): a small rest is read and dropped, a large one closes.
        if (!(await discardRest(request.raw, DISCARD_MAX_BYTES, DISCARD_TIMEOUT_MS))) reply.header('connection', 'close');
        return refuse(reply, idle.signal.aborted && idle.signal.reason instanceof EnvdHttpError ? idle.signal.reason : error);
      } finally {
        release?.();
      }
    },
  );
};

export default envdFiles;
