import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loggerOptions } from '../../server/logger.js';
import { startOffline } from '../helpers/offline-app.js';

const TOKEN = 'a-test-token-0123456789-abcdef';

interface Route {
  method: string;
  url: string;
}

/** Builds the app for `env`, with every route it registers and, on request, its log lines. */
async function start(env: Record<string, string>, logs?: string[]): Promise<{ app: FastifyInstance; routes: Route[] }> {
  const logger = logs
    ? pino(
        // The options main.ts gives the production logger.
        loggerOptions('trace'),
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            logs.push(chunk.toString());
            callback();
          },
        }),
      )
    : undefined;
  const { app, routes } = await startOffline(env, { logger });
  return { app, routes: routes.flatMap((route) => ([] as string[]).concat(route.method).map((method) => ({ method, url: route.url }))) };
}

/** A URL that reaches the route: parameters and wildcards filled with names that exist nowhere. */
function concrete(url: string): string {
  // A watch of a directory that exists would stream until the client leaves.
  if (url === '/watch') return '/watch?path=auth-test/no-such-dir';
  const filled = url.replace(/:\w+/g, 'no-such-id').replace('*', 'auth-test/no-such-file.txt');
  return filled.startsWith('/') ? filled : `/${filled}`;
}

// The health checks, and the playground page with its assets: the page asks for the token itself.
const isPublic = (route: Route) => ['/health', '/ready', '/', '/assets/:name'].includes(route.url);
const isClaim = (route: Route) => route.method === 'POST' && route.url === '/claim';
const label = (route: Route) => `${route.method} ${route.url}`;

/** Calls each route and returns those whose status `ok` rejects, with the status they got. */
async function offenders(
  app: FastifyInstance,
  routes: Route[],
  headers: Record<string, string>,
  ok: (status: number) => boolean,
): Promise<string[]> {
  const found: string[] = [];
  for (const route of routes) {
    const response = await app.inject({ method: route.method as 'GET', url: concrete(route.url), headers });
    if (!ok(response.statusCode)) found.push(`${label(route)} -> ${response.statusCode}`);
  }
  return found;
}

const admitted = (status: number) => status !== 401 && status !== 403;

const WRONG_CREDENTIALS: Record<string, string>[] = [
  { authorization: 'Bearer not-the-token-at-all-0000' },
  { authorization: `Bearer ${TOKEN}x` },
  { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
  { authorization: `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}` },
  { authorization: `Token ${TOKEN}` },
  { authorization: TOKEN },
  { 'x-access-token': 'not-the-token-at-all-0000' },
  { 'x-access-token': TOKEN.toUpperCase() },
];

describe('AUTH_MODE=token', () => {
  const env = { ACCESS_TOKEN: TOKEN };

  it('enumerates the routes it guards', async () => {
    const { routes } = await start(env);
    const names = routes.map(label);
    // The list the other tests walk through is the app's own, not a copy that could go stale.
    expect(names).toEqual(expect.arrayContaining(['GET /health', 'GET /ready', 'POST /execute', 'GET /contexts', 'POST /contexts']));
    expect(names).not.toContain('POST /claim');
  });

  it('refuses every route but the health checks without credentials: 401, JSON, WWW-Authenticate', async () => {
    const { app, routes } = await start(env);
    const wrong: string[] = [];
    for (const route of routes.filter((r) => !isPublic(r))) {
      const response = await app.inject({ method: route.method as 'GET', url: concrete(route.url) });
      const body = route.method === 'HEAD' ? undefined : response.json<{ code: string; statusCode: number }>();
      if (
        response.statusCode !== 401 ||
        response.headers['www-authenticate'] !== 'Bearer' ||
        (body !== undefined && (body.code !== 'ERR_UNAUTHORIZED' || body.statusCode !== 401))
      ) {
        wrong.push(`${label(route)} -> ${response.statusCode} ${String(response.headers['www-authenticate'])} ${response.body}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('answers the health checks without credentials', async () => {
    const { app, routes } = await start(env);
    expect(await offenders(app, routes.filter(isPublic), {}, admitted)).toEqual([]);
    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toBe('OK');
  });

  it.each(WRONG_CREDENTIALS)('refuses every guarded route with wrong credentials %j', async (headers) => {
    const { app, routes } = await start(env);
    expect(
      await offenders(
        app,
        routes.filter((r) => !isPublic(r)),
        headers,
        (status) => status === 401,
      ),
    ).toEqual([]);
    const response = await app.inject({ method: 'GET', url: '/contexts', headers });
    expect(response.json()).toMatchObject({ statusCode: 401, code: 'ERR_UNAUTHORIZED', error: 'Unauthorized' });
    if (headers.authorization?.startsWith('Bearer ') || headers['x-access-token'] !== undefined) {
      expect(response.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    }
  });

  it.each([
    { authorization: `Bearer ${TOKEN}` },
    { authorization: `bearer ${TOKEN}` },
    { 'x-access-token': TOKEN },
    // A proxy's credentials in Authorization do not hide the token in X-Access-Token.
    { authorization: 'Basic dXNlcjpwYXNz', 'x-access-token': TOKEN },
  ] as Record<string, string>[])('admits every route with the token in %j', async (headers) => {
    const { app, routes } = await start(env);
    expect(await offenders(app, routes, headers, admitted)).toEqual([]);
    const listed = await app.inject({ method: 'GET', url: '/contexts', headers });
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual([]);
  });

  it('answers 401 for a route that does not exist, and 404 once authenticated', async () => {
    const { app } = await start(env);
    expect((await app.inject({ method: 'GET', url: '/no/such/route' })).statusCode).toBe(401);
    const found = await app.inject({ method: 'GET', url: '/no/such/route', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(found.statusCode).toBe(404);
    expect(found.json()).toMatchObject({ code: 'ERR_ROUTE_NOT_FOUND' });
  });

  it('has no POST /claim', async () => {
    const { app } = await start(env);
    expect((await app.inject({ method: 'POST', url: '/claim', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'POST', url: '/claim' })).statusCode).toBe(401);
  });

  it.each(['token', 'access_token'])('refuses the token in the query string (?%s=), saying where it goes', async (name) => {
    const { app } = await start(env);
    const response = await app.inject({ method: 'GET', url: `/contexts?${name}=${TOKEN}` });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ code: 'ERR_UNAUTHORIZED' });
    expect(response.json<{ message: string }>().message).toMatch(/not accepted.*Authorization: Bearer/);
  });

  it('ignores a token-looking query parameter when the headers authenticate', async () => {
    const { app } = await start(env);
    const response = await app.inject({ method: 'GET', url: '/contexts?token=whatever', headers: { 'x-access-token': TOKEN } });
    expect(admitted(response.statusCode)).toBe(true);
  });

  it('keeps the token out of the log, the one sent in the URL included', async () => {
    const logs: string[] = [];
    const { app } = await start(env, logs);
    await app.inject({ method: 'GET', url: '/contexts', headers: { authorization: `Bearer ${TOKEN}` } });
    await app.inject({ method: 'GET', url: '/contexts', headers: { 'x-access-token': TOKEN } });
    await app.inject({ method: 'GET', url: `/contexts?token=${TOKEN}&access_token=${TOKEN}` });
    await app.inject({ method: 'GET', url: '/contexts', headers: { authorization: `Bearer ${TOKEN}x` } });
    // The log is there, and it saw the requests.
    expect(logs.some((line) => line.includes('request completed') && line.includes('/contexts?token=%5Bredacted%5D'))).toBe(true);
    expect(logs.filter((line) => line.includes(TOKEN))).toEqual([]);
  });
});

describe('secrets in the URL', () => {
  const names = [
    'token',
    'TOKEN',
    'access_token',
    'api_key',
    'apikey',
    'API-KEY',
    'authorization',
    'x-access-token',
    'X-Access-Token',
    'secret',
    'password',
    'Password',
    'session_id',
  ];

  it.each<Record<string, string>>([{}, { ACCESS_TOKEN: TOKEN }])(
    'never reach the log, whatever the name and its case (%o)',
    async (env) => {
      const logs: string[] = [];
      const { app } = await start(env, logs);
      for (const [index, name] of names.entries()) {
        await app.inject({ method: 'GET', url: `/files?path=notes&${encodeURIComponent(name)}=secret-value-${index}-0123456789` });
      }
      const requests = logs.filter((line) => line.includes('request completed'));
      expect(requests).toHaveLength(names.length);
      expect(logs.filter((line) => line.includes('secret-value-'))).toEqual([]);
      // What is not a secret stays readable.
      expect(requests.every((line) => line.includes('/files?path=notes&'))).toBe(true);
    },
  );

  it("log the values of the API's own query parameters only, whatever the others are named", async () => {
    const logs: string[] = [];
    const { app } = await start({}, logs);
    await app.inject({
      method: 'GET',
      url: '/files?path=notes&limit=5&bearer=value-one-0123456789&private_key=value-two-0123456789&x=value-three',
    });
    await app.inject({ method: 'GET', url: '/executions/abc/events?from=3&sig2=value-four-0123456789' });
    const requests = logs.filter((line) => line.includes('request completed'));
    expect(requests).toHaveLength(2);
    expect(logs.filter((line) => line.includes('value-'))).toEqual([]);
    expect(requests[0]).toContain('/files?path=notes&limit=5&bearer=%5Bredacted%5D&private_key=%5Bredacted%5D&x=%5Bredacted%5D');
    expect(requests[1]).toContain('/executions/abc/events?from=3&sig2=%5Bredacted%5D');
  });

  it.each(names)('refuses ?%s= with the message that says where a token goes', async (name) => {
    const { app } = await start({ ACCESS_TOKEN: TOKEN });
    const response = await app.inject({ method: 'GET', url: `/contexts?${encodeURIComponent(name)}=${TOKEN}` });
    expect(response.statusCode).toBe(401);
    expect(response.json<{ message: string }>().message).toMatch(/not accepted/);
  });
});

describe('AUTH_MODE=claim', () => {
  const env = { AUTH_MODE: 'claim' };

  it('answers 403 on every route but the health checks and POST /claim until claimed', async () => {
    const { app, routes } = await start(env);
    const guarded = routes.filter((r) => !isPublic(r) && !isClaim(r));
    expect(guarded.length).toBeGreaterThan(3);
    const attempts: Record<string, string>[] = [{}, { authorization: `Bearer ${TOKEN}` }, { 'x-access-token': TOKEN }];
    for (const headers of attempts) {
      expect(await offenders(app, guarded, headers, (status) => status === 403)).toEqual([]);
    }
    const response = await app.inject({ method: 'POST', url: '/execute', payload: { code: '1+1' } });
    expect(response.json()).toMatchObject({ statusCode: 403, code: 'ERR_UNCLAIMED', error: 'Forbidden' });
    expect(await offenders(app, routes.filter(isPublic), {}, admitted)).toEqual([]);
  });

  it('hands the token to exactly one of many concurrent claims, over HTTP', async () => {
    const { app } = await start(env);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const responses = await Promise.all(Array.from({ length: 25 }, () => fetch(`${base}/claim`, { method: 'POST' })));
    const bodies = await Promise.all(
      responses.map(async (response) => ({ status: response.status, body: (await response.json()) as Record<string, unknown> })),
    );
    const winners = bodies.filter((answer) => answer.status === 200);
    expect(winners).toHaveLength(1);
    expect(bodies.filter((answer) => answer.status === 404)).toHaveLength(24);

    const token = winners[0]!.body.token as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(responses[bodies.indexOf(winners[0]!)]!.headers.get('cache-control')).toBe('no-store');
  });

  it('then admits the token, and only it, on every route; POST /claim is 404 forever', async () => {
    const logs: string[] = [];
    const { app, routes } = await start(env, logs);
    const claimed = await app.inject({ method: 'POST', url: '/claim' });
    expect(claimed.statusCode).toBe(200);
    const token = claimed.json<{ token: string }>().token;

    const guarded = routes.filter((r) => !isPublic(r) && !isClaim(r));
    expect(await offenders(app, guarded, {}, (status) => status === 401)).toEqual([]);
    expect(await offenders(app, guarded, { authorization: `Bearer ${TOKEN}` }, (status) => status === 401)).toEqual([]);
    expect(await offenders(app, guarded, { authorization: `Bearer ${token.slice(0, -1)}` }, (status) => status === 401)).toEqual([]);
    expect(await offenders(app, guarded, { authorization: `Bearer ${token}` }, admitted)).toEqual([]);
    expect(await offenders(app, guarded, { 'x-access-token': token }, admitted)).toEqual([]);
    expect((await app.inject({ method: 'GET', url: `/contexts?token=${token}` })).statusCode).toBe(401);

    for (const headers of [{}, { authorization: `Bearer ${token}` }, { 'content-type': 'application/json' }]) {
      const again = await app.inject({ method: 'POST', url: '/claim', headers });
      expect(again.statusCode).toBe(404);
      expect(again.json()).toMatchObject({ code: 'ERR_ROUTE_NOT_FOUND' });
    }
    expect(logs.some((line) => line.includes('server claimed'))).toBe(true);
    expect(logs.filter((line) => line.includes(token))).toEqual([]);
  });

  it('claims whatever the body: none, empty JSON, an object', async () => {
    for (const request of [
      {},
      { headers: { 'content-type': 'application/json' } },
      { headers: { 'content-type': 'application/json' }, payload: '{}' },
      { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: '' },
    ]) {
      const { app } = await start(env);
      const response = await app.inject({ method: 'POST', url: '/claim', ...request });
      expect(response.statusCode, JSON.stringify(request)).toBe(200);
    }
  });

  it('issues a different token on every server', async () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const { app } = await start(env);
      tokens.add((await app.inject({ method: 'POST', url: '/claim' })).json<{ token: string }>().token);
    }
    expect(tokens.size).toBe(3);
  });
});

describe('AUTH_MODE=none', () => {
  it('admits every route without credentials and has no POST /claim', async () => {
    const { app, routes } = await start({});
    expect(routes.length).toBeGreaterThan(5);
    expect(await offenders(app, routes, {}, admitted)).toEqual([]);
    expect((await app.inject({ method: 'POST', url: '/claim' })).statusCode).toBe(404);
  });

  const warnings = (logs: string[]) =>
    logs
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((entry) => entry.level === 40 && /AUTHENTICATION IS OFF/.test(entry.msg));

  it('warns, naming how to turn auth on, when it listens beyond loopback', async () => {
    const logs: string[] = [];
    const { app } = await start({}, logs);
    await app.listen({ host: '0.0.0.0', port: 0 });
    const [warning, ...more] = warnings(logs);
    expect(more).toEqual([]);
    expect(warning?.msg).toMatch(/ACCESS_TOKEN/);
    expect(warning?.msg).toMatch(/AUTH_MODE=claim/);
  });

  it('does not warn on loopback, nor with a token', async () => {
    const quiet: string[] = [];
    const { app } = await start({}, quiet);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const guarded: string[] = [];
    const { app: withToken } = await start({ ACCESS_TOKEN: TOKEN }, guarded);
    await withToken.listen({ host: '0.0.0.0', port: 0 });
    expect(quiet.some((line) => line.includes('Server listening'))).toBe(true);
    expect(warnings(quiet)).toEqual([]);
    expect(warnings(guarded)).toEqual([]);
  });
});
