import { readFileSync } from 'node:fs';
import { compileErrors, validate } from '@readme/openapi-parser';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

interface Operation {
  operationId?: string;
  security?: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: { $ref?: string } }> }>;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  security?: Array<Record<string, string[]>>;
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: Record<string, Record<string, unknown>> };
  paths: Record<string, Record<string, Operation>>;
}

const TOKEN = 'openapi-test-token-0123456789';
const packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Headers that get past the server's access control, whatever its mode. */
async function credentials(server: FastifyInstance, env: Record<string, string>): Promise<Record<string, string>> {
  if (env.ACCESS_TOKEN) return { authorization: `Bearer ${env.ACCESS_TOKEN}` };
  if (env.AUTH_MODE !== 'claim') return {};
  const claim = await server.inject({ method: 'POST', url: '/claim' });
  expect(claim.statusCode).toBe(200);
  return { authorization: `Bearer ${claim.json<{ token: string }>().token}` };
}

async function fetchDocument(server: FastifyInstance, headers: Record<string, string> = {}): Promise<OpenApiDocument> {
  const response = await server.inject({ method: 'GET', url: '/openapi.json', headers });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  return response.json<OpenApiDocument>();
}

/** The operations a client can call: one per method and route, less the HEADs Fastify adds to GETs. */
function callableOperations(routes: RouteOptions[]): Array<{ method: string; path: string }> {
  const getHandlers = new Map(routes.filter((route) => route.method === 'GET').map((route) => [route.url, route.handler]));
  return routes
    .flatMap((route) => ([] as string[]).concat(route.method).map((method) => ({ method, route })))
    .filter(({ method, route }) => !(method === 'HEAD' && getHandlers.get(route.url) === route.handler))
    .map(({ method, route }) => ({
      method: method.toLowerCase(),
      path: route.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{path}'),
      hidden: route.schema?.hide === true,
    }))
    .filter((operation) => !operation.hidden)
    .map(({ method, path }) => ({ method, path }));
}

function allRefs(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((item) => allRefs(item, found));
  else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') found.push(value);
      else allRefs(value, found);
    }
  }
  return found;
}

async function expectValidOpenApi(document: OpenApiDocument): Promise<void> {
  // validate() dereferences what it is given.
  const result = await validate(structuredClone(document) as never);
  expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3 document with title, version, description and security schemes', async () => {
    const { app } = await startOffline();
    const document = await fetchDocument(app);
    await expectValidOpenApi(document);
    expect(document.openapi).toMatch(/^3\./);
    expect(document.info.title).toBe('Code Interpreter API');
    expect(document.info.version).toBe(packageVersion);
    expect(document.info.description).toContain('application/x-ndjson');
    expect(document.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.components.securitySchemes.accessTokenHeader).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Access-Token' });
  });

  it.each([
    ['no authentication', {}],
    ['a token', { ACCESS_TOKEN: TOKEN }],
    ['claim mode', { AUTH_MODE: 'claim' }],
    ['CORS on', { CORS_ORIGINS: 'https://app.example.com' }],
  ])('documents every route the server registers, with %s', async (_name, env: Record<string, string>) => {
    const { app, routes } = await startOffline(env);
    const document = await fetchDocument(app, await credentials(app, env));
    await expectValidOpenApi(document);

    const operations = callableOperations(routes);
    expect(operations.length).toBeGreaterThan(5);
    for (const { method, path } of operations) {
      const operation = document.paths[path]?.[method];
      expect(operation, `${method.toUpperCase()} ${path} is not documented`).toBeDefined();
      expect(operation!.operationId, `${method.toUpperCase()} ${path} has no operationId`).toEqual(expect.any(String));
    }
    // ... and nothing else: no HEAD duplicate of every GET, no route that does not exist.
    const documented = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`));
    expect(documented.sort()).toEqual(operations.map(({ method, path }) => `${method} ${path}`).sort());
  });

  it('names the shared schemas and resolves every reference inside the document', async () => {
    const { app } = await startOffline();
    const document = await fetchDocument(app);
    expect(Object.keys(document.components.schemas)).toEqual(expect.arrayContaining(['ErrorResponse', 'Context', 'ExecutionEvent']));
    const refs = allRefs(document.paths);
    expect(refs).toContain('#/components/schemas/ErrorResponse');
    expect(refs).toContain('#/components/schemas/Context');
    for (const ref of allRefs(document)) {
      expect(ref).toMatch(/^#\/components\/schemas\/[\w.-]+$/);
      expect(document.components.schemas[ref.slice('#/components/schemas/'.length)], ref).toBeDefined();
    }
  });

  it('documents the NDJSON stream of POST /execute with every event type', async () => {
    const { app } = await startOffline();
    const document = await fetchDocument(app);
    const execute = document.paths['/execute']!.post!;
    expect(execute.requestBody?.content['application/json']?.schema).toMatchObject({ required: ['code'] });
    expect(execute.responses['200']!.content).toEqual({
      'application/x-ndjson': { schema: { $ref: '#/components/schemas/ExecutionEvent' } },
    });
    const variants = document.components.schemas.ExecutionEvent!.anyOf as Array<{ properties: { type: { enum: string[] } } }>;
    const types = variants.map((variant) => variant.properties.type.enum[0]);
    expect(types).toEqual(
      expect.arrayContaining(['number_of_executions', 'stdout', 'stderr', 'result', 'error', 'end_of_execution', 'keepalive']),
    );
  });

  it('documents the error shape on every error answer, as the error handler sends it', async () => {
    const { app } = await startOffline();
    const document = await fetchDocument(app);
    expect(document.components.schemas.ErrorResponse).toMatchObject({ required: ['statusCode', 'code', 'error', 'message'] });
    for (const status of ['400', '404', '503']) {
      expect(document.paths['/contexts/{context_id}']!.delete!.responses[status]!.content!['application/json']!.schema).toEqual({
        $ref: '#/components/schemas/ErrorResponse',
      });
    }
    const notFound = await app.inject({ method: 'DELETE', url: '/contexts/nope' });
    expect(notFound.statusCode).toBe(404);
    expect(Object.keys(notFound.json()).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  });

  it('asks for a token only where the server does, and never for the health checks', async () => {
    const open = (await startOffline()).app;
    const openDocument = await fetchDocument(open);
    expect(openDocument.security).toBeUndefined();
    await open.close();

    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN });
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(401);
    const document = await fetchDocument(app, { 'x-access-token': TOKEN });
    expect(document.security).toEqual([{ bearerAuth: [] }, { accessTokenHeader: [] }]);
    expect(document.paths['/health']!.get!.security).toEqual([]);
    expect(document.paths['/ready']!.get!.security).toEqual([]);
    expect(document.paths['/execute']!.post!.security).toBeUndefined();
  });

  it('marks POST /claim as needing no token in claim mode', async () => {
    const { app } = await startOffline({ AUTH_MODE: 'claim' });
    const document = await fetchDocument(app, await credentials(app, { AUTH_MODE: 'claim' }));
    expect(document.paths['/claim']!.post!.security).toEqual([]);
  });
});
