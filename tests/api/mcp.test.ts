import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

const TOKEN = 'mcp-api-test-token-0123456789';
const ALLOWED = 'https://app.example.com';

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'inject', version: '1' } },
};
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

const list = (value: string | string[] | number | undefined) =>
  String(value ?? '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== '');

describe('/mcp', () => {
  it('refuses a request without the token with 401 and opens no session', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN });
    const response = await app.inject({ method: 'POST', url: '/mcp', headers: mcpHeaders, payload: initialize });
    expect(response.statusCode).toBe(401);
    expect(response.headers['mcp-session-id']).toBeUndefined();
    expect(response.json()).toMatchObject({ code: 'ERR_UNAUTHORIZED' });
  });

  it('opens a session with the token, answering the initialize request', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN });
    const response = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...mcpHeaders, 'x-access-token': TOKEN },
      payload: initialize,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['mcp-session-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.body).toContain('"serverInfo":{"name":"code-interpreter"');
  });

  it('lets an allowed browser origin use it: preflight, and the session header exposed', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN, CORS_ORIGINS: ALLOWED });
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/mcp',
      headers: {
        origin: ALLOWED,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,mcp-session-id,mcp-protocol-version',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(list(preflight.headers['access-control-allow-headers'])).toEqual(
      expect.arrayContaining(['mcp-session-id', 'mcp-protocol-version', 'last-event-id']),
    );

    const response = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...mcpHeaders, origin: ALLOWED, authorization: `Bearer ${TOKEN}` },
      payload: initialize,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(list(response.headers['access-control-expose-headers'])).toContain('mcp-session-id');
  });

  it('keeps at most MCP_MAX_SESSIONS sessions: a new one closes the one unused the longest', async () => {
    const { app } = await startOffline({ MCP_MAX_SESSIONS: '2' });
    const open = async () => {
      const response = await app.inject({ method: 'POST', url: '/mcp', headers: mcpHeaders, payload: initialize });
      expect(response.statusCode).toBe(200);
      return response.headers['mcp-session-id'] as string;
    };
    const call = (id: string) =>
      app.inject({
        method: 'POST',
        url: '/mcp',
        headers: { ...mcpHeaders, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
        payload: { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      });
    const first = await open();
    const second = await open();
    await new Promise((resolve) => setTimeout(resolve, 5));
    // The first is used again: the second is now the one unused the longest.
    expect((await call(first)).statusCode).toBe(200);
    const third = await open();
    expect((await call(second)).statusCode).toBe(404);
    expect((await call(first)).statusCode).toBe(200);
    expect((await call(third)).statusCode).toBe(200);
  });

  it('answers a malformed body with 400, and a wrong Accept with the JSON-RPC 406', async () => {
    const { app } = await startOffline();
    const malformed = await app.inject({ method: 'POST', url: '/mcp', headers: mcpHeaders, payload: '{"jsonrpc":' });
    expect(malformed.statusCode).toBe(400);
    const notRpc = await app.inject({ method: 'POST', url: '/mcp', headers: mcpHeaders, payload: { hello: 'world' } });
    expect(notRpc.statusCode).toBe(400);
    const accept = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...mcpHeaders, accept: 'application/json' },
      payload: initialize,
    });
    expect(accept.statusCode).toBe(406);
    expect(accept.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
  });

  it('refuses pages of other origins and, without a token, unknown host names, before MCP', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN, CORS_ORIGINS: ALLOWED });
    const foreign = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...mcpHeaders, origin: 'https://evil.example.net', authorization: `Bearer ${TOKEN}` },
      payload: initialize,
    });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json()).toMatchObject({ code: 'ERR_ORIGIN_NOT_ALLOWED' });
    expect(foreign.headers['mcp-session-id']).toBeUndefined();

    const open = (await startOffline()).app;
    const rebound = await open.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...mcpHeaders, host: 'attacker.example:49999' },
      payload: initialize,
    });
    expect(rebound.statusCode).toBe(403);
    expect(rebound.json()).toMatchObject({ code: 'ERR_HOST_NOT_ALLOWED' });
    const local = await open.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...mcpHeaders, host: 'localhost:49999' },
      payload: initialize,
    });
    expect(local.statusCode).toBe(200);
  });
});
