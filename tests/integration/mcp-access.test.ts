import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * A server of its own: with an access token, and sessions that expire after 2 s unused.
 */
const TOKEN = 'mcp-access-test-token-0123456789';
let server: StartedServer;

beforeAll(async () => {
  server = await startServer({ ACCESS_TOKEN: TOKEN, MCP_SESSION_IDLE: '2' });
});
afterAll(async () => {
  await server?.stop();
});

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

function post(headers: Record<string, string>, body = initialize): Promise<Response> {
  return fetch(`${server.baseUrl}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
  });
}

async function connect(headers: Record<string, string>): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${server.baseUrl}/mcp`), { requestInit: { headers } });
  const client = new Client({ name: 'integration-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

async function contextIds(): Promise<string[]> {
  const response = await fetch(`${server.baseUrl}/contexts`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return ((await response.json()) as Array<{ id: string }>).map((context) => context.id);
}

function textOf(result: CallToolResult): string {
  return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('\n');
}

describe('MCP access control', () => {
  it('answers 401 without a token, before any MCP processing', async () => {
    for (const method of ['POST', 'GET', 'DELETE']) {
      const response =
        method === 'POST'
          ? await post({})
          : await fetch(`${server.baseUrl}/mcp`, { method, headers: { accept: 'text/event-stream', 'mcp-session-id': 'anything' } });
      expect(response.status, method).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      // The server's own error, not a JSON-RPC answer: the request never reached MCP.
      expect(response.headers.get('mcp-session-id')).toBeNull();
      expect(await response.json()).toMatchObject({ statusCode: 401, code: 'ERR_UNAUTHORIZED' });
    }
  });

  it('answers 401 to a wrong token, and to the SDK client without one', async () => {
    const wrong = await post({ authorization: 'Bearer not-the-token-at-all' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/invalid_token/);
    await expect(connect({})).rejects.toThrow(/401/);
  });

  it('serves the SDK client with the token in either header', async () => {
    for (const headers of [{ authorization: `Bearer ${TOKEN}` }, { 'x-access-token': TOKEN }] as Array<Record<string, string>>) {
      const { client } = await connect(headers);
      const result = (await client.callTool({ name: 'execute_code', arguments: { code: 'print(2 + 2)' } })) as CallToolResult;
      expect(textOf(result)).toBe('4\n');
      await client.close();
    }
  });
});

describe('MCP session expiry (MCP_SESSION_IDLE=2)', () => {
  it('closes a session unused for MCP_SESSION_IDLE and deletes its context', async () => {
    const { client, transport } = await connect({ authorization: `Bearer ${TOKEN}` });
    await client.callTool({ name: 'execute_code', arguments: { code: 'x = 1' } });
    const listed = (await client.callTool({ name: 'list_contexts', arguments: {} })) as CallToolResult;
    const own = (JSON.parse(textOf(listed)) as Array<{ id: string; this_session: boolean }>).find((context) => context.this_session)!;
    expect(await contextIds()).toContain(own.id);

    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(await contextIds()).not.toContain(own.id);
    const stale = await post(
      { authorization: `Bearer ${TOKEN}`, 'mcp-session-id': transport.sessionId! },
      JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    );
    expect(stale.status).toBe(404);
    await client.close();
  });

  it('does not expire a session while one of its calls runs longer than MCP_SESSION_IDLE', async () => {
    const { client } = await connect({ authorization: `Bearer ${TOKEN}` });
    await client.callTool({ name: 'execute_code', arguments: { code: 'kept = "yes"' } });
    const long = (await client.callTool({
      name: 'execute_code',
      arguments: { code: 'import time\ntime.sleep(4)\nprint(kept)' },
    })) as CallToolResult;
    expect(textOf(long)).toBe('yes\n');
    // Right after the long call, the session and its state are still there.
    const after = (await client.callTool({ name: 'execute_code', arguments: { code: 'print(kept)' } })) as CallToolResult;
    expect(textOf(after)).toBe('yes\n');
    await client.close();
  });
});
