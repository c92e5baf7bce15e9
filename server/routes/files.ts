import path from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import mime from 'mime-types';
import fp from 'fastify-plugin';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import {
  BodyTooLargeError,
  InvalidJsonError,
  InvalidRequestError,
  RangeNotSatisfiableError,
  UploadAbortedError,
  UploadTimeoutError,
  UploadTooLargeError,
} from '../errors.js';
import { errorResponses } from '../schemas/common.js';
import {
  DirectoryListing,
  DownloadQuery,
  ExtractResult,
  FileActionBody,
  FileActionResult,
  FilePathParams,
  ListFilesQuery,
  UploadQuery,
  UploadResult,
} from '../schemas/files.js';
import { lastModified, planDownload } from '../workspace/download.js';
import type { ArchiveFormat } from '../workspace/archive.js';
import type { WorkspaceFiles } from '../workspace/files.js';
import { MAX_LIST_LIMIT } from '../workspace/listing.js';
import { quote } from '../workspace/paths.js';

/** An upload that sends nothing for this long is abandoned (and its temporary file removed). */
const UPLOAD_IDLE_TIMEOUT_MS = 120_000;
/** An action body (`{"action":"move",...}`) is a few hundred bytes; paths are at most 16 KiB each. */
const MAX_ACTION_BODY_BYTES = 64 * 1024;

const fileErrors = {
  ...errorResponses,
  409: Type.Ref('ErrorResponse'),
  413: Type.Ref('ErrorResponse'),
  416: Type.Ref('ErrorResponse'),
  507: Type.Ref('ErrorResponse'),
} as const;

/**
 * The workspace file API: list, download, upload, move, copy, mkdir, delete. Registered outside the JSON API
 * scope: uploads are raw bytes whatever their Content-Type and are streamed to disk, never
 * buffered.
 */
const files: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  const workspace = app.workspace;

  // Every Content-Type, JSON and text included, hands the request stream over unread; only
  // the routes of this plugin are affected.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    // POST /files/* is the one route here with a JSON body (an action), whatever the client
    // declares: curl -d sends form-urlencoded.
    if (request.method === 'POST') {
      readJson(payload, MAX_ACTION_BODY_BYTES).then(
        (body) => done(null, body),
        (error: Error) => done(error, undefined),
      );
      return;
    }
    const declared = Number(request.headers['content-length']);
    // Refused before a byte is read. Fastify closes the connection after an error here, so
    // the body the client may still be sending is not read either.
    if (declared > config.workspace.maxUploadBytes) done(new UploadTooLargeError(config.workspace.maxUploadBytes), undefined);
    else done(null, payload);
  });

  const archiveContent = {
    'application/x-tar': { schema: Type.String({ format: 'binary' }) },
    'application/gzip': { schema: Type.String({ format: 'binary' }) },
  };

  app.get(
    '/files',
    {
      schema: {
        summary: 'List a directory of the workspace, one page at a time, or download it as an archive (format)',
        tags: ['files'],
        querystring: ListFilesQuery,
        response: {
          200: {
            description: 'The listing, or with `format` the archive',
            content: { 'application/json': { schema: DirectoryListing }, ...archiveContent },
          },
          ...fileErrors,
        },
      },
    },
    async (request, reply) => {
      const { path: raw = '.', limit, cursor, format } = request.query;
      if (format !== undefined) return sendArchive(workspace, raw, format, request, reply);
      return reply
        .type('application/json')
        .send(await workspace.list(raw, { limit: limit === undefined ? undefined : listLimit(limit), cursor }));
    },
  );

  const download = {
    schema: {
      summary: 'Download a file (Range, If-None-Match and If-Modified-Since supported), or a directory as an archive (format)',
      tags: ['files'],
      params: FilePathParams,
      querystring: DownloadQuery,
      response: {
        200: {
          description: 'The file, or with `format` the directory as an archive',
          content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) }, ...archiveContent },
        },
        206: { description: 'The requested range', content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } } },
        304: { description: 'Not modified', type: 'null' },
        ...fileErrors,
      },
    },
    // HEAD is its own route below: Fastify's automatic one would read the whole file to discard it.
    exposeHeadRoute: false,
  } as const;
  const getOrHead = async (
    request: FastifyRequest<{ Params: { '*': string }; Querystring: { format?: ArchiveFormat } }>,
    reply: FastifyReply,
  ) => {
    const raw = request.params['*'];
    if (request.query.format !== undefined) return sendArchive(workspace, raw, request.query.format, request, reply);
    return sendFile(workspace, raw, request, reply);
  };
  app.get('/files/*', download, getOrHead);
  app.head('/files/*', { ...download, schema: { ...download.schema, summary: 'Headers of a download, without the body' } }, getOrHead);

  app.put(
    '/files/*',
    {
      // Uploads may take as long as they need while data keeps coming: UPLOAD_IDLE_TIMEOUT_MS.
      config: { streamsBody: true },
      schema: {
        summary:
          'Create or overwrite a file with the raw request body (parent directories are created), or unpack an archive into a directory (extract)',
        description:
          'With `?extract=tar` or `?extract=tar.gz` the body is an archive, unpacked into the directory all or nothing: ' +
          'an unsafe entry (absolute path, `..`, a link out of the workspace, an entry under a link, a device or FIFO) refuses ' +
          'the whole archive with 400 naming it; a body that is no archive or is cut short (it must end with the end-of-archive block) is 400 ' +
          'ERR_INVALID_ARCHIVE; over MAX_EXTRACT_ENTRIES or MAX_EXTRACT_BYTES is 413; a file or directory in ' +
          'the way is 409 (403 for a directory the server may not write into), all with nothing written; if the target changes while the archive ' +
          "is moved into place, 409 ERR_PATH_CHANGED, and what was moved before stays, each file whole. The archive's files replace those of " +
          'the same name, its directories merge, the rest of the target stays.',
        tags: ['files'],
        params: FilePathParams,
        querystring: UploadQuery,
        response: { 200: Type.Union([UploadResult, ExtractResult]), 201: UploadResult, ...fileErrors },
      },
    },
    async (request, reply) => {
      const raw = request.params['*'];
      const body = (request.body as Readable | undefined) ?? request.raw;
      const idle = new AbortController();
      const onIdle = () => idle.abort(new UploadTimeoutError(quote(raw), UPLOAD_IDLE_TIMEOUT_MS / 1000));
      request.raw.setTimeout(UPLOAD_IDLE_TIMEOUT_MS, onIdle);
      try {
        const format = request.query.extract;
        if (format !== undefined) {
          const result = await workspace.extract(raw, body, {
            format,
            maxBytes: config.workspace.maxUploadBytes,
            signal: idle.signal,
            maxEntries: config.workspace.maxExtractEntries,
            maxExtractBytes: config.workspace.maxExtractBytes,
          });
          return reply.code(200).send(result);
        }
        const result = await workspace.write(raw, body, { maxBytes: config.workspace.maxUploadBytes, signal: idle.signal });
        reply
          .code(result.created ? 201 : 200)
          .header('etag', result.etag)
          .header('last-modified', lastModified(result.mtimeMs));
        return { path: result.path, size: result.size, modified: result.mtimeMs / 1000 };
      } catch (error) {
        if (request.raw.complete) throw error;
        // What is left of the body is not worth reading: answer, then close the connection.
        reply.header('connection', 'close');
        if (idle.signal.aborted) throw idle.signal.reason;
        if (request.raw.readableAborted || (error as NodeJS.ErrnoException).code === 'ECONNRESET') throw new UploadAbortedError(quote(raw));
        throw error;
      } finally {
        request.raw.off('timeout', onIdle);
        request.raw.setTimeout(0);
      }
    },
  );

  app.post(
    '/files/*',
    {
      schema: {
        summary: 'Move (rename) or copy a file, link or directory, or make a directory (JSON body)',
        description:
          '`{"action":"mkdir"}` makes the directory and its parents (201; 200 if it exists already; 409 when a file is in the way). ' +
          '`{"action":"move"|"copy","to":"dest","overwrite":false}` moves or copies the path to `dest`, creating its parents ' +
          '(201; 200 when it replaced something with `overwrite`; 409 when `dest` exists without it). ' +
          'Directories are copied recursively with links copied as links; the workspace root cannot be moved. ' +
          'A move or copy that would make a relative link lead out of the workspace from its new place is 400 ERR_INVALID_PATH.',
        tags: ['files'],
        params: FilePathParams,
        body: FileActionBody,
        response: { 200: FileActionResult, 201: FileActionResult, ...fileErrors },
      },
    },
    async (request, reply) => {
      const raw = request.params['*'];
      const { action, to, overwrite } = request.body;
      let result: { path: string; created: boolean };
      if (action === 'mkdir') {
        if (to !== undefined || overwrite !== undefined) throw new InvalidRequestError('mkdir takes neither "to" nor "overwrite"');
        result = await workspace.mkdir(raw);
      } else {
        if (to === undefined) throw new InvalidRequestError(`${action} needs "to", the destination path`);
        result = action === 'move' ? await workspace.move(raw, to, { overwrite }) : await workspace.copy(raw, to, { overwrite });
      }
      reply.code(result.created ? 201 : 200);
      return { path: result.path };
    },
  );

  app.delete(
    '/files/*',
    {
      schema: {
        summary: 'Delete a file, a symlink (not its target) or a directory with everything in it',
        tags: ['files'],
        params: FilePathParams,
        response: { 204: { description: 'Deleted', type: 'null' }, ...fileErrors },
      },
    },
    async (request, reply) => {
      await workspace.remove(request.params['*']);
      return reply.code(204).send(null);
    },
  );
};

/**
 * A directory as an archive, streamed as it is built: no Content-Length (chunked), no ETag or
 * range support (the bytes are made anew each time). A client that goes away stops the walk.
 */
async function sendArchive(
  workspace: WorkspaceFiles,
  raw: string,
  format: ArchiveFormat,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const archive = await workspace.archive(raw, format);
  const base = archive.display === '.' ? 'workspace' : path.posix.basename(archive.display);
  const filename = `${base}.${format}`;
  reply
    .type(format === 'tar' ? 'application/x-tar' : 'application/gzip')
    .header(
      'content-disposition',
      `attachment; filename="${filename.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(filename)}`,
    )
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff');
  if (request.method === 'HEAD') {
    archive.stream.destroy();
    return reply.send();
  }
  return reply.send(archive.stream);
}

async function sendFile(workspace: WorkspaceFiles, raw: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const file = await workspace.openFile(raw);
  let plan: ReturnType<typeof planDownload>;
  try {
    plan = planDownload(
      {
        range: request.headers.range,
        ifRange: header(request, 'if-range'),
        ifNoneMatch: request.headers['if-none-match'],
        ifModifiedSince: request.headers['if-modified-since'],
      },
      file,
    );
  } catch (error) {
    await file.close();
    throw error;
  }

  reply.header('etag', file.etag).header('last-modified', lastModified(file.mtimeMs)).header('accept-ranges', 'bytes');
  // Workspace files change under the same name: caches must ask (cheaply, with the ETag) each time.
  reply.header('cache-control', 'no-cache');
  if (plan.status === 304 || plan.status === 416 || request.method === 'HEAD' || file.size === 0) await file.close();
  if (plan.status === 304) return reply.code(304).send();
  if (plan.status === 416) {
    reply.header('content-range', `bytes */${file.size}`);
    throw new RangeNotSatisfiableError(quote(request.headers.range ?? ''), file.size);
  }

  const [start, end] = plan.status === 206 ? [plan.start, plan.end] : [0, file.size - 1];
  if (plan.status === 206) reply.code(206).header('content-range', `bytes ${start}-${end}/${file.size}`);
  reply
    .type(mime.contentType(path.posix.extname(file.name)) || 'application/octet-stream')
    .header('x-content-type-options', 'nosniff')
    .header('content-length', end - start + 1);
  if (request.method === 'HEAD' || file.size === 0) return reply.send();
  return reply.send(file.stream(start, end));
}

/** Reads a small JSON body; the stream is a request body, never a file upload. */
async function readJson(payload: AsyncIterable<Buffer>, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of payload) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (error) {
    throw new InvalidJsonError(`Body is not valid JSON: ${(error as Error).message}`);
  }
}

function listLimit(raw: string): number {
  const limit = Number(raw);
  if (limit < 1 || limit > MAX_LIST_LIMIT) throw new InvalidRequestError(`limit must be between 1 and ${MAX_LIST_LIMIT}, got ${raw}`);
  return limit;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

export default fp(files, { name: 'file-routes', encapsulate: true, dependencies: ['openapi', 'error-handler', 'auth', 'workspace'] });
