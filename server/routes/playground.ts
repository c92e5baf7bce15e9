import { readdir, readFile } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { RouteNotFoundError } from '../errors.js';

export interface PlaygroundRoutesOptions {
  config: Config;
  /** Where `npm run build` put the page; dist/playground by default. */
  dir?: string;
}

/**
 * The page may load only its own files and talk only to this server: no inline script, no
 * third party; results are images (data: URLs, blobs) and HTML in a sandboxed srcdoc frame,
 * which inherits this policy and gets no scripts at all. `'self'` covers ws: of the same host.
 */
export const PLAYGROUND_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // CodeMirror sets styles of its own at run time (themes, measured sizes); scripts stay strict.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-src 'self' blob: data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/**
 * `GET /` and its assets, held in memory: the built page is a few files of some hundred KB,
 * read once at start. The page itself needs no token (it asks for one); the API it calls does.
 * Assets carry a content hash in their name, so they may be cached for good; the page may not.
 */
const playground: FastifyPluginAsyncTypebox<PlaygroundRoutesOptions> = async (app, options) => {
  if (!options.config.server.playground) return;
  // Built, this file is in dist/server/chunks (bundled) or dist/server/routes; run from source
  // (tests), in server/routes, where ../../playground holds the sources rather than the page.
  const here = fileURLToPath(import.meta.url);
  const dir =
    options.dir ??
    fileURLToPath(new URL(here.includes(`${sep}dist${sep}`) ? '../../playground/' : '../../dist/playground/', import.meta.url));
  const index = await readFile(join(dir, 'index.html'), 'utf8').catch(() => undefined);
  const assets = new Map<string, Buffer>();
  const names = await readdir(join(dir, 'assets')).catch(() => [] as string[]);
  for (const name of names) if (TYPES[extname(name)]) assets.set(name, await readFile(join(dir, 'assets', name)));

  app.get(
    '/',
    {
      schema: {
        summary: 'The playground: a page to run code and handle files in a browser (off with PLAYGROUND=false)',
        operationId: 'playground',
        tags: ['playground'],
        security: [],
        response: { 200: Type.String({ description: 'text/html' }) },
      },
    },
    async (request, reply) => {
      // Not built (`npm run build` makes it): as if it were off.
      if (!index) throw new RouteNotFoundError('GET', request.url);
      return reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('content-security-policy', PLAYGROUND_CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .send(index);
    },
  );

  app.get(
    '/assets/:name',
    {
      schema: {
        hide: true,
        security: [],
        params: Type.Object({ name: Type.String({ maxLength: 100 }) }),
      },
    },
    async (request, reply) => {
      const body = assets.get(request.params.name);
      if (!body) throw new RouteNotFoundError('GET', request.url);
      return reply
        .type(TYPES[extname(request.params.name)] ?? 'application/octet-stream')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .header('x-content-type-options', 'nosniff')
        .send(body);
    },
  );
};

export default playground;
