import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { hostAllowed, hostName } from '../../server/plugins/host-origin.js';
import { startOffline } from '../helpers/offline-app.js';

const TOKEN = 'a-test-token-0123456789-abcdef';
const EVIL = 'https://evil.example.net';

async function start(env: Record<string, string> = {}): Promise<FastifyInstance> {
  return (await startOffline(env)).app;
}

/** What a page on another site sends to run code: a "simple" request, so no preflight. */
function crossSiteExecute(app: FastifyInstance, headers: Record<string, string>) {
  return app.inject({
    method: 'POST',
    url: '/execute',
    headers: { 'content-type': 'text/plain', ...headers },
    payload: JSON.stringify({ code: 'print(1)' }),
  });
}

describe('Origin', () => {
  it('refuses a cross-site page without authentication: 403, and the connection is closed', async () => {
    const app = await start();
    const response = await crossSiteExecute(app, { origin: EVIL });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ code: 'ERR_ORIGIN_NOT_ALLOWED', message: expect.stringContaining(EVIL) });
    expect(response.headers.connection).toBe('close');
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
  });

  it.each(['null', 'http://localhost:5173', 'http://127.0.0.1', 'file://', 'not an origin'])('refuses Origin: %s', async (origin) => {
    const app = await start();
    const response = await app.inject({ method: 'GET', url: '/contexts', headers: { origin } });
    expect(response.statusCode).toBe(403);
    expect(response.json<{ code: string }>().code).toBe('ERR_ORIGIN_NOT_ALLOWED');
  });

  it('lets requests without Origin through: curl, SDKs and servers send none', async () => {
    const app = await start();
    expect((await app.inject({ method: 'GET', url: '/contexts' })).statusCode).toBe(200);
    // The route runs (and fails for want of Jupyter): the request was not refused at the door.
    expect((await crossSiteExecute(app, {})).statusCode).toBe(503);
  });

  it.each([
    ['http://localhost:49999', 'localhost:49999', undefined],
    ['http://127.0.0.1:49999', '127.0.0.1:49999', undefined],
    ['http://[::1]:49999', '[::1]:49999', undefined],
    // Behind a TLS proxy that keeps the Host header and says the scheme.
    ['https://localhost', 'localhost', 'https'],
    ['https://localhost:8443', 'localhost:8443', 'https'],
    ['http://localhost', 'localhost:80', undefined],
  ])('accepts the server’s own origin %s (Host %s, X-Forwarded-Proto %s)', async (origin, host, proto) => {
    const app = await start();
    const headers: Record<string, string> = { origin, host, ...(proto ? { 'x-forwarded-proto': proto } : {}) };
    const response = await app.inject({ method: 'GET', url: '/contexts', headers });
    expect(response.statusCode).toBe(200);
  });

  it.each([
    ['https://127.0.0.1:49999', '127.0.0.1:49999', undefined],
    ['https://localhost', 'localhost', undefined],
    ['http://localhost', 'localhost', 'https'],
    ['null', 'localhost:49999', undefined],
  ])('refuses the server’s host under another scheme: %s (Host %s, X-Forwarded-Proto %s)', async (origin, host, proto) => {
    const app = await start();
    const headers: Record<string, string> = { origin, host, ...(proto ? { 'x-forwarded-proto': proto } : {}) };
    const response = await app.inject({ method: 'GET', url: '/contexts', headers });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ code: 'ERR_ORIGIN_NOT_ALLOWED' });
  });

  it('refuses the same host on another port: that is another origin', async () => {
    const app = await start();
    const response = await app.inject({
      method: 'GET',
      url: '/contexts',
      headers: { origin: 'http://localhost:5173', host: 'localhost:49999' },
    });
    expect(response.statusCode).toBe(403);
  });

  it('accepts an origin of CORS_ORIGINS', async () => {
    const app = await start({ CORS_ORIGINS: 'http://localhost:5173' });
    const response = await app.inject({ method: 'GET', url: '/contexts', headers: { origin: 'http://localhost:5173' } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBe('http://localhost:5173');
  });

  it('refuses other origins with a token too, before the token is looked at', async () => {
    const app = await start({ ACCESS_TOKEN: TOKEN, CORS_ORIGINS: 'https://app.example.com' });
    const response = await crossSiteExecute(app, { origin: EVIL, authorization: `Bearer ${TOKEN}` });
    expect(response.statusCode).toBe(403);
    expect(response.json<{ code: string }>().code).toBe('ERR_ORIGIN_NOT_ALLOWED');
    const anyOrigin = await start({ ACCESS_TOKEN: TOKEN, CORS_ORIGINS: '*' });
    expect(
      (await anyOrigin.inject({ method: 'GET', url: '/contexts', headers: { origin: EVIL, authorization: `Bearer ${TOKEN}` } })).statusCode,
    ).toBe(200);
  });
});

describe('Host without authentication (DNS rebinding)', () => {
  it('refuses a page whose own name was re-pointed at this server, though it is same-origin', async () => {
    const app = await start();
    const response = await crossSiteExecute(app, { host: 'rebind.evil.example.net:49999', origin: 'http://rebind.evil.example.net:49999' });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ code: 'ERR_HOST_NOT_ALLOWED', message: expect.stringContaining('ALLOWED_HOSTS') });
    expect(response.headers.connection).toBe('close');
    // Its GETs, which carry no Origin, too.
    const get = await app.inject({ method: 'GET', url: '/contexts', headers: { host: 'rebind.evil.example.net:49999' } });
    expect(get.statusCode).toBe(403);
  });

  it.each([
    'localhost',
    'localhost:49999',
    'LOCALHOST.:49999',
    '127.0.0.1:49999',
    '127.1.2.3',
    '[::1]:49999',
    '[::ffff:127.0.0.1]',
    '10.0.0.5:49999',
    '[fd00::5]',
  ])('accepts Host: %s', async (host) => {
    const app = await start();
    expect((await app.inject({ method: 'GET', url: '/contexts', headers: { host } })).statusCode).toBe(200);
  });

  it.each(['example.com', 'localhost.example.com:49999', 'app.localhost', '[::1', '::1', 'a:1:2', 'localhost:port', '[not-an-ip]:80'])(
    'refuses Host: %s',
    async (host) => {
      const app = await start();
      const response = await app.inject({ method: 'GET', url: '/contexts', headers: { host } });
      expect(response.statusCode).toBe(403);
      expect(response.json<{ code: string }>().code).toBe('ERR_HOST_NOT_ALLOWED');
    },
  );

  it('accepts the names of ALLOWED_HOSTS, subdomains where the entry starts with a dot', async () => {
    const app = await start({ ALLOWED_HOSTS: 'api.example.com, .internal' });
    for (const host of ['api.example.com', 'API.example.com:8080', 'internal', 'sandbox-1.internal:49999', 'localhost']) {
      expect((await app.inject({ method: 'GET', url: '/contexts', headers: { host } })).statusCode, host).toBe(200);
    }
    for (const host of ['example.com', 'x.api.example.com', 'internal.evil.net', 'xinternal']) {
      expect((await app.inject({ method: 'GET', url: '/contexts', headers: { host } })).statusCode, host).toBe(403);
    }
  });

  it('leaves names alone with a token, unless ALLOWED_HOSTS is set', async () => {
    const headers = { host: 'sandbox.example.com', authorization: `Bearer ${TOKEN}` };
    const open = await start({ ACCESS_TOKEN: TOKEN });
    expect((await open.inject({ method: 'GET', url: '/contexts', headers })).statusCode).toBe(200);
    const listed = await start({ ACCESS_TOKEN: TOKEN, ALLOWED_HOSTS: 'api.example.com' });
    expect((await listed.inject({ method: 'GET', url: '/contexts', headers })).statusCode).toBe(403);
    expect((await listed.inject({ method: 'GET', url: '/contexts', headers: { ...headers, host: 'api.example.com' } })).statusCode).toBe(
      200,
    );
  });
});

describe('claim mode', () => {
  it('keeps other pages, and rebinding ones, from claiming the server first', async () => {
    const app = await start({ AUTH_MODE: 'claim' });
    const crossSite = await app.inject({ method: 'POST', url: '/claim', headers: { origin: EVIL } });
    expect(crossSite.statusCode).toBe(403);
    const rebound = await app.inject({
      method: 'POST',
      url: '/claim',
      headers: { host: 'rebind.evil.example.net:49999', origin: 'http://rebind.evil.example.net:49999' },
    });
    expect(rebound.statusCode).toBe(403);
    // Still unclaimed: the one it was meant for gets the token.
    const claimed = await app.inject({ method: 'POST', url: '/claim' });
    expect(claimed.statusCode).toBe(200);
    expect(claimed.json<{ token: string }>().token).toEqual(expect.any(String));
  });
});

describe('hostName and hostAllowed', () => {
  it.each([
    ['LocalHost:80', 'localhost'],
    ['example.com.', 'example.com'],
    ['[::1]:49999', '::1'],
    ['[::1]', '::1'],
    ['127.0.0.1:0', '127.0.0.1'],
    ['::1', undefined],
    ['[::1', undefined],
    ['host:', undefined],
    ['host:123456', undefined],
    ['', undefined],
    ['a b', 'a b'],
  ])('hostName(%j) is %j', (header, name) => {
    expect(hostName(header)).toBe(name);
  });

  it('does not take a name that merely ends like a listed domain', () => {
    expect(hostAllowed('evilexample.com', ['.example.com'])).toBe(false);
    expect(hostAllowed('a.example.com', ['.example.com'])).toBe(true);
    expect(hostAllowed('a b', [])).toBe(false);
  });
});
