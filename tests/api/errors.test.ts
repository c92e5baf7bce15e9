import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { text } from 'node:stream/consumers';
import createError from '@fastify/error';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import * as errors from '../../server/errors.js';
import { errorCatalog } from '../../server/errors.js';
import { toContractError } from '../../server/transports/errors.js';
import { startOffline } from '../helpers/offline-app.js';

const catalog = errorCatalog();
const codes = catalog.map(({ code }) => code);

/** The app with routes that fail in the ways a bug would, and its log lines. */
async function start(): Promise<{ app: FastifyInstance; logs: string[] }> {
  const logs: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logs.push(chunk.toString());
        callback();
      },
    }),
  );
  const { app } = await startOffline({}, { logger }, (app) => {
    // Node's own error, with its internal code and message.
    app.get('/test/node-error', async () => Buffer.from(42 as never));
    // An error that looks like the server's own: a code and a 4xx status.
    app.get('/test/lookalike', async () => {
      throw Object.assign(new Error('the secret at /etc/lookalike'), { code: 'ERR_LOOKS_OURS', statusCode: 400 });
    });
    // Made by @fastify/error like the contract's, with a code outside it.
    const NotOurs = createError('ERR_NOT_IN_THE_CONTRACT', 'internal detail %s', 409);
    app.get('/test/not-ours', async () => {
      throw new NotOurs('/var/lib/detail');
    });
    // A contract code with another status than errors.ts gives it.
    const Impostor = createError('ERR_CONTEXT_NOT_FOUND', 'Context %s not found', 418);
    app.get('/test/impostor', async () => {
      throw new Impostor('x');
    });
    app.get('/test/plain', async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.1:5432 with password hunter2');
    });
    app.get('/test/string', async () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what this route tests: a throw that is not an Error
      throw 'a thrown string';
    });
    // The framework's own runtime error: a reply that cannot be serialized.
    app.get(
      '/test/framework',
      { schema: { response: { 200: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } } },
      async () => ({}),
    );
    app.get('/test/contract', async () => {
      throw new errors.ContextNotFoundError('abc');
    });
  });
  return { app, logs };
}

function expectErrorShape(body: unknown): void {
  expect(Object.keys(body as object).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  expect(codes).toContain((body as { code: string }).code);
}

describe('the error contract: every code a client sees is in errors.ts', () => {
  it.each(['/test/node-error', '/test/lookalike', '/test/not-ours', '/test/plain', '/test/string', '/test/framework'])(
    'answers %s with a generic 500 ERR_INTERNAL naming the request id; the details only in the log',
    async (url) => {
      const { app, logs } = await start();
      const response = await app.inject({ method: 'GET', url, headers: { 'x-request-id': 'req-under-test-1' } });
      expect(response.statusCode).toBe(500);
      const body = response.json<{ code: string; message: string }>();
      expectErrorShape(body);
      expect(body).toEqual({
        statusCode: 500,
        code: 'ERR_INTERNAL',
        error: 'Internal Server Error',
        message: 'Internal server error (request id req-under-test-1)',
      });
      const failure = logs.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'request failed');
      expect(failure).toMatchObject({ level: 50, reqId: 'req-under-test-1', code: 'ERR_INTERNAL' });
    },
  );

  it("never leaks a Node error's code or message, which the log keeps", async () => {
    const { app, logs } = await start();
    const response = await app.inject({ method: 'GET', url: '/test/node-error' });
    expect(response.body).not.toMatch(/ERR_INVALID_ARG_TYPE|first argument|Received/);
    expect(logs.join('')).toMatch(/ERR_INVALID_ARG_TYPE/);
    expect(logs.join('')).toMatch(/The first argument must be/);
  });

  it('never leaks a lookalike code, nor its status, nor the framework codes', async () => {
    const { app } = await start();
    for (const url of ['/test/lookalike', '/test/not-ours', '/test/framework']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.body).not.toMatch(/ERR_LOOKS_OURS|ERR_NOT_IN_THE_CONTRACT|FST_ERR|secret|\/var\/lib/);
    }
  });

  it("answers a contract code with errors.ts's status whoever made the error", async () => {
    const { app } = await start();
    const response = await app.inject({ method: 'GET', url: '/test/impostor' });
    expect(response.json()).toEqual({ statusCode: 404, code: 'ERR_CONTEXT_NOT_FOUND', error: 'Not Found', message: 'Context x not found' });
  });

  it("passes the server's own errors through with their status and message, logged as refusals", async () => {
    const { app, logs } = await start();
    const response = await app.inject({ method: 'GET', url: '/test/contract' });
    expect(response.json()).toEqual({
      statusCode: 404,
      code: 'ERR_CONTEXT_NOT_FOUND',
      error: 'Not Found',
      message: 'Context abc not found',
    });
    expect(logs.some((line) => line.includes('"msg":"request refused"') && line.includes('ERR_CONTEXT_NOT_FOUND'))).toBe(true);
  });
});

describe("the framework's refusals, mapped onto the contract", () => {
  const cases: Array<[string, InjectOptions, number, string, RegExp]> = [
    [
      'schema validation',
      { method: 'POST', url: '/execute', payload: { language: 'python' } },
      400,
      'ERR_VALIDATION',
      /body must have required property 'code'/,
    ],
    ['a field of the wrong type', { method: 'POST', url: '/execute', payload: { code: 42 } }, 400, 'ERR_VALIDATION', /code must be string/],
    [
      'invalid JSON',
      { method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload: '{"code":' },
      400,
      'ERR_INVALID_JSON',
      /not valid JSON/,
    ],
    [
      'an empty body where one is needed',
      { method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload: '' },
      400,
      'ERR_VALIDATION',
      /body/,
    ],
    [
      'a body too large',
      {
        method: 'POST',
        url: '/contexts',
        headers: { 'content-type': 'application/json' },
        payload: `{"cwd":"${'x'.repeat(32 * 1024 * 1024)}"}`,
      },
      413,
      'ERR_BODY_TOO_LARGE',
      /33554432 bytes/,
    ],
    [
      'a malformed Content-Type',
      { method: 'POST', url: '/execute', headers: { 'content-type': '/json' }, payload: '{"code":"1"}' },
      415,
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      /"\/json"/,
    ],
    ['an unknown route', { method: 'GET', url: '/nowhere?x=1' }, 404, 'ERR_ROUTE_NOT_FOUND', /^Route GET \/nowhere not found$/],
    [
      'an unknown route, with an empty JSON body',
      { method: 'POST', url: '/nowhere', headers: { 'content-type': 'application/json' }, payload: '' },
      404,
      'ERR_ROUTE_NOT_FOUND',
      /nowhere/,
    ],
    [
      'a method the path does not have',
      { method: 'PATCH', url: '/contexts/abc/restart' },
      405,
      'ERR_METHOD_NOT_ALLOWED',
      /PATCH.*allowed: POST$/,
    ],
    ['a malformed URL', { method: 'GET', url: '/contexts/%E0%A4%A' }, 400, 'ERR_INVALID_REQUEST', /URL is malformed/],
    [
      'a path parameter over the router limit',
      { method: 'DELETE', url: `/contexts/${'a'.repeat(101)}` },
      414,
      'ERR_URL_TOO_LONG',
      /100 characters/,
    ],
  ];

  it.each(cases)('%s', async (_label, request, status, code, message) => {
    const { app } = await start();
    const response = await app.inject(request);
    const body = response.json<{ code: string; message: string; statusCode: number }>();
    expectErrorShape(body);
    expect(body.statusCode).toBe(status);
    expect(response.statusCode).toBe(status);
    expect(body.code).toBe(code);
    expect(body.message).toMatch(message);
  });

  it('names the methods a path has in Allow when it answers 405', async () => {
    const { app } = await start();
    const response = await app.inject({ method: 'PUT', url: '/contexts' });
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('GET, HEAD, POST');
  });

  it('maps every 4xx the framework can raise at run time, none to ERR_INTERNAL', () => {
    const request = { id: 'r', headers: {}, bodyLimit: 10 };
    const frameworkCodes = [
      'FST_ERR_VALIDATION',
      'FST_ERR_CTP_INVALID_JSON_BODY',
      'FST_ERR_CTP_EMPTY_JSON_BODY',
      'FST_ERR_CTP_BODY_TOO_LARGE',
      'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      'FST_ERR_CTP_INVALID_CONTENT_LENGTH',
      'FST_ERR_BAD_URL',
      'FST_ERR_INVALID_URL',
      'FST_ERR_MAX_PARAM_LENGTH',
      'FST_ERR_ROUTE_MISSING_CONTENT_TYPE',
      'FST_ERR_ROUTE_MISSING_CONTENT',
    ];
    for (const code of frameworkCodes) {
      const mapped = toContractError(Object.assign(new Error('framework text'), { code, statusCode: 400 }), request);
      expect(mapped.code, code).not.toBe('ERR_INTERNAL');
      expect(codes, code).toContain(mapped.code);
    }
  });

  it('answers HTTP too malformed to route, and headers too large, in the same shape', async () => {
    const { app } = await start();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const raw = async (request: string) => {
      const socket = connect(port, '127.0.0.1');
      socket.end(request);
      return text(socket);
    };
    const malformed = await raw('GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n');
    expect(malformed).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(malformed.slice(malformed.indexOf('\r\n\r\n') + 4))).toEqual({
      statusCode: 400,
      code: 'ERR_INVALID_REQUEST',
      error: 'Bad Request',
      message: 'Malformed HTTP request',
    });
    const huge = await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(huge.slice(huge.indexOf('\r\n\r\n') + 4))).toMatchObject({ statusCode: 431, code: 'ERR_HEADERS_TOO_LARGE' });
  });
});

describe('the list of codes', () => {
  it('holds every createError of errors.ts, each with its status', () => {
    const constructors = Object.values(errors).filter(
      (value) => typeof value === 'function' && value !== errorCatalog && value !== errors.ApiError,
    );
    expect(catalog).toHaveLength(constructors.length);
    for (const { code, statusCode } of catalog) {
      expect(code).toMatch(/^ERR_[A-Z_]+$/);
      expect(statusCode).toBeGreaterThanOrEqual(400);
    }
    expect(codes).toContain('ERR_INTERNAL');
  });

  it('is the enum of ErrorResponse.code in /openapi.json', async () => {
    const { app } = await start();
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      components: { schemas: Record<string, { properties: { code: { enum: string[] } } }> };
    }>();
    expect(document.components.schemas.ErrorResponse!.properties.code.enum).toEqual(codes);
  });

  it('is in docs/api.md, each code with its status', () => {
    const page = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    const listed = [...page.matchAll(/^\| `(ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map(([, code, status]) => ({
      code,
      statusCode: Number(status),
    }));
    expect(listed.sort((a, b) => a.code!.localeCompare(b.code!))).toEqual(catalog);
  });
});
