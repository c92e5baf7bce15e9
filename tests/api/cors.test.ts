import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

const TOKEN = 'a-test-token-0123456789-abcdef';
const ALLOWED = 'https://app.example.com';
const OTHER = 'https://evil.example.net';

async function start(env: Record<string, string>): Promise<FastifyInstance> {
  return (await startOffline(env)).app;
}

/** What a browser sends before a cross-origin request with an Authorization header. */
function preflight(app: FastifyInstance, url: string, origin: string, method = 'POST') {
  return app.inject({
    method: 'OPTIONS',
    url,
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });
}

const list = (value: string | string[] | number | undefined) =>
  String(value ?? '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== '');

describe('CORS off (the default)', () => {
  it('adds no CORS header and answers no preflight', async () => {
    const app = await start({ ACCESS_TOKEN: TOKEN });
    const response = await preflight(app, '/execute', ALLOWED);
    expect(response.statusCode).toBe(403);
    expect(response.headers['access-control-allow-origin']).toBeUndefined();

    // Without CORS_ORIGINS no other origin may call at all (see host-origin.test.ts).
    const open = await start({});
    const unauthenticated = await preflight(open, '/execute', ALLOWED);
    expect(unauthenticated.statusCode).toBe(403);
    expect(unauthenticated.headers['access-control-allow-origin']).toBeUndefined();
    const get = await open.inject({ method: 'GET', url: '/contexts' });
    expect(get.statusCode).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('CORS_ORIGINS allow-list', () => {
  const env = { ACCESS_TOKEN: TOKEN, CORS_ORIGINS: `${ALLOWED}, http://localhost:5173` };

  it.each(['/execute', '/contexts', '/contexts/abc/restart', '/files/dir/a.txt', '/no/such/route'])(
    'answers the preflight to %s from an allowed origin without credentials',
    async (url) => {
      const app = await start(env);
      const response = await preflight(app, url, ALLOWED);
      expect(response.statusCode).toBe(204);
      expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
      expect(list(response.headers['access-control-allow-headers'])).toEqual(
        expect.arrayContaining(['authorization', 'x-access-token', 'content-type']),
      );
      expect(list(response.headers['access-control-allow-methods'])).toEqual(expect.arrayContaining(['get', 'post', 'put', 'delete']));
      expect(list(response.headers.vary)).toContain('origin');
      // Tokens travel in headers: no cookies, so no credentialed CORS.
      expect(response.headers['access-control-allow-credentials']).toBeUndefined();
    },
  );

  it('answers the second allowed origin with its own name', async () => {
    const app = await start(env);
    const response = await preflight(app, '/execute', 'http://localhost:5173', 'PUT');
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('http://localhost:5173');
  });

  it('gives a disallowed origin no CORS headers: its preflight is refused', async () => {
    const app = await start(env);
    for (const origin of [OTHER, `${ALLOWED}.evil.example.net`, 'http://app.example.com', 'null']) {
      const response = await preflight(app, '/execute', origin);
      expect(response.statusCode, origin).toBe(403);
      expect(response.json<{ code: string }>().code, origin).toBe('ERR_ORIGIN_NOT_ALLOWED');
      expect(response.headers['access-control-allow-origin'], origin).toBeUndefined();
      expect(response.headers['access-control-allow-headers'], origin).toBeUndefined();
    }
  });

  it('lets an allowed origin read answers, refusals included, and the headers that matter', async () => {
    const app = await start(env);
    const ok = await app.inject({ method: 'GET', url: '/contexts', headers: { origin: ALLOWED, authorization: `Bearer ${TOKEN}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(list(ok.headers['access-control-expose-headers'])).toEqual(
      expect.arrayContaining(['content-type', 'content-length', 'etag', 'last-modified', 'content-range', 'accept-ranges']),
    );

    const refused = await app.inject({ method: 'GET', url: '/contexts', headers: { origin: ALLOWED } });
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
  });

  it('does not let another origin in, even with the token', async () => {
    const app = await start(env);
    const response = await app.inject({ method: 'GET', url: '/contexts', headers: { origin: OTHER, authorization: `Bearer ${TOKEN}` } });
    expect(response.statusCode).toBe(403);
    expect(response.json<{ code: string }>().code).toBe('ERR_ORIGIN_NOT_ALLOWED');
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('still requires the token on the actual request after a preflight', async () => {
    const app = await start(env);
    expect((await preflight(app, '/contexts', ALLOWED, 'GET')).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/contexts', headers: { origin: ALLOWED } })).statusCode).toBe(401);
  });

  it('answers the preflight to POST /claim in claim mode before the claim', async () => {
    const app = await start({ AUTH_MODE: 'claim', CORS_ORIGINS: ALLOWED });
    expect((await preflight(app, '/claim', ALLOWED)).statusCode).toBe(204);
    const claimed = await app.inject({ method: 'POST', url: '/claim', headers: { origin: ALLOWED } });
    expect(claimed.statusCode).toBe(200);
    expect(claimed.headers['access-control-allow-origin']).toBe(ALLOWED);
  });
});

describe('CORS_ORIGINS=*', () => {
  it('allows any origin', async () => {
    const app = await start({ ACCESS_TOKEN: TOKEN, CORS_ORIGINS: '*' });
    const response = await preflight(app, '/execute', OTHER);
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    const get = await app.inject({ method: 'GET', url: '/contexts', headers: { origin: OTHER, 'x-access-token': TOKEN } });
    expect(get.statusCode).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe('*');
  });
});
