import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * MCP_MAX_SESSIONS when every session is busy: a new session would have to end a running call,
 * so it is refused (429, Retry-After) instead. A server of its own with room for one session.
 */
let server: StartedServer;
beforeAll(async () => {
  server = await startServer({ MCP_MAX_SESSIONS: '1' });
});
afterAll(async () => {
  await server?.stop();
});

const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'cap-test', version: '1' } },
};
const post = (body: unknown, session?: string) =>
  fetch(`${server.baseUrl}/mcp`, {
    method: 'POST',
    headers: session ? { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' } : headers,
    body: JSON.stringify(body),
  });

describe('MCP_MAX_SESSIONS', () => {
  it('refuses a new session with 429 while the only one has a call running, and admits it after', async () => {
    const opened = await post(initialize);
    expect(opened.status).toBe(200);
    await opened.text();
    const session = opened.headers.get('mcp-session-id')!;

    const call = post(
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'execute_code', arguments: { code: 'import time\ntime.sleep(4)\nprint("done")' } },
      },
      session,
    );
    const running = await call;
    expect(running.status).toBe(200);
    // The answer streams; until it ends the call runs. Give the kernel a moment to start it.
    const answer = running.text();
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const refused = await post(initialize);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({
      jsonrpc: '2.0',
      error: { code: -32000, message: expect.stringContaining('MCP_MAX_SESSIONS') },
    });

    expect(await answer).toContain('done');
    const admitted = await post(initialize);
    expect(admitted.status).toBe(200);
    await admitted.text();
    // It took the place of the first, now unused.
    expect((await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' }, session)).status).toBe(404);
  });
});
