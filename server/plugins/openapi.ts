import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import swagger from '@fastify/swagger';
import type { RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { errorResponses } from '../schemas/common.js';

const DESCRIPTION = `Runs code in persistent Jupyter kernels and streams what they emit.

**Executions** (\`POST /execute\`) answer \`application/x-ndjson\`: one JSON object per line, an
\`ExecutionEvent\`, sent as the kernel emits it and always ending with \`{"type":"end_of_execution"}\`.
Read the body line by line rather than waiting for its end. Errors raised by the code are
events in a 200 stream; a request that is refused before anything runs gets a 4xx/5xx answer.

**Contexts** are kernels with their own state: variables and imports persist between executions
in a context. Without \`context_id\` or \`language\`, code runs in the default Python context.

**Files** are addressed by workspace-relative paths.

**Errors** all have the same shape, \`ErrorResponse\`, whose \`code\` is stable: match on it.

**Authentication**, when the server has an access token (\`ACCESS_TOKEN\`, or \`POST /claim\`),
is \`Authorization: Bearer <token>\` or \`X-Access-Token: <token>\` on every request but the
health checks.`;

/**
 * `GET /openapi.json`: an OpenAPI 3 description generated from the route schemas, so it
 * cannot drift from what the server validates and sends. Registered before any route, since
 * @fastify/swagger learns the routes from an `onRoute` hook.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    // Fastify adds a HEAD route for every GET on its own; those share the GET's handler and
    // would only repeat it. HEAD routes written on purpose (files) are documented.
    const getHandlers = new Map<string, RouteOptions['handler']>();
    app.addHook('onRoute', (route) => {
      if (([] as string[]).concat(route.method).includes('GET')) getHandlers.set(route.url, route.handler);
    });
    const isAutomaticHead = (route: RouteOptions) => route.method === 'HEAD' && getHandlers.get(route.url) === route.handler;

    const authenticated = config.access.mode !== 'none';
    await app.register(swagger, {
      openapi: {
        // 3.0 rather than 3.1: it is what most client generators read fully.
        openapi: '3.0.3',
        info: {
          title: 'Code Interpreter API',
          version: packageVersion(),
          description: DESCRIPTION,
          license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
        },
        tags: [
          { name: 'execution', description: 'Run code and stream its output' },
          { name: 'contexts', description: 'Kernels with their own state' },
          { name: 'processes', description: "Commands and terminals, run as the kernels' user" },
          { name: 'files', description: 'Files in the workspace' },
          { name: 'mcp', description: 'The Model Context Protocol endpoint (Streamable HTTP)' },
          { name: 'access', description: 'Access control' },
          { name: 'health', description: 'Liveness and readiness probes' },
          { name: 'meta', description: 'This description' },
          { name: 'playground', description: 'A page to try the server in a browser' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <token>' },
            accessTokenHeader: {
              type: 'apiKey',
              in: 'header',
              name: 'X-Access-Token',
              description: 'The same token, in a header of its own',
            },
          },
        },
        // Either header will do. The requirement is stated only when this server asks for a
        // token, so that the description matches the deployment it comes from.
        ...(authenticated ? { security: [{ bearerAuth: [] }, { accessTokenHeader: [] }] } : {}),
      },
      exposeHeadRoutes: true,
      // Shared schemas keep their own names (components/schemas/ErrorResponse, ...), not def-0.
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
      transform: ({ schema, url, route }) => {
        if (isAutomaticHead(route)) return { schema: { ...schema, hide: true }, url };
        // Client generators name their methods after operationId; a route that sets none still
        // gets a stable one.
        const documented = { ...schema, operationId: schema?.operationId ?? operationIdOf(route.method, url) };
        // A wildcard route (`/files/*`) is a path that may contain slashes: `{path}` says so
        // better than swagger's `{*}`.
        if (!url.endsWith('*')) return { schema: documented, url };
        const params = schema?.params as { properties?: Record<string, unknown> } | undefined;
        const wildcard = params?.properties?.['*'] as Record<string, unknown> | undefined;
        return {
          url: `${url.slice(0, -1)}{path}`,
          schema: {
            ...documented,
            params: {
              type: 'object',
              required: ['path'],
              properties: {
                ...Object.fromEntries(Object.entries(params?.properties ?? {}).filter(([name]) => name !== '*')),
                path: { type: 'string', description: 'Workspace-relative path; may contain slashes', ...wildcard },
              },
            },
          },
        };
      },
      transformObject: (document) => toOpenapi30Bounds('openapiObject' in document ? document.openapiObject : document.swaggerObject),
    });

    app.get(
      '/openapi.json',
      {
        schema: {
          summary: 'This OpenAPI description',
          operationId: 'openapi',
          description: 'Generated from the schemas the server validates requests and answers with.',
          tags: ['meta'],
          response: {
            200: { description: 'An OpenAPI 3 document', type: 'object', additionalProperties: true },
            401: errorResponses[401],
            403: errorResponses[403],
          },
        },
      },
      async () => app.swagger(),
    );
  },
  { name: 'openapi' },
);

/** `getFilesPath` for GET /files/*, `postContextsContextIdRestart` for POST /contexts/:context_id/restart. */
function operationIdOf(method: RouteOptions['method'], url: string): string {
  const words = [([] as string[]).concat(method)[0]!.toLowerCase(), ...url.replace('*', 'path').split(/[^A-Za-z0-9]+/)];
  return words
    .filter((word) => word !== '')
    .map((word, i) => (i === 0 ? word : word[0]!.toUpperCase() + word.slice(1)))
    .join('');
}

/**
 * TypeBox writes today's JSON Schema, where `exclusiveMinimum` is a number; OpenAPI 3.0 still
 * has draft 4's boolean next to `minimum`. Everything else @fastify/swagger converts itself.
 */
function toOpenapi30Bounds<T>(node: T): T {
  if (Array.isArray(node)) {
    node.forEach(toOpenapi30Bounds);
  } else if (typeof node === 'object' && node !== null) {
    const schema = node as Record<string, unknown>;
    for (const [exclusive, inclusive] of [
      ['exclusiveMinimum', 'minimum'],
      ['exclusiveMaximum', 'maximum'],
    ] as const) {
      if (typeof schema[exclusive] === 'number') {
        schema[inclusive] = schema[exclusive];
        schema[exclusive] = true;
      }
    }
    Object.values(schema).forEach(toOpenapi30Bounds);
  }
  return node;
}

/** The version in the package.json next to the code: two levels up in server/, three in dist/, four from the bundle's chunks. */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string };
      if (pkg.version) return pkg.version;
    } catch {
      // not here
    }
    dir = path.dirname(dir);
  }
  throw new Error('package.json not found next to the server code');
}
