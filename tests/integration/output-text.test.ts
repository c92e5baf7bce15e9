import { isUtf8 } from 'node:buffer';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, baseUrl, createContext, deleteContext, readEvents, request, stdoutOf, type ExecutionEvent } from '../helpers/api.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';
import { WsClient, stdoutOf as framesStdoutOf } from './ws-client.js';

/**
 * Pieces of text that each take a path of their own through the server's decoding of kernel
 * messages, printed one message each (flushed) so that one piece's path does not decide the
 * others'. Python's json writes them as UTF-8 with ensure_ascii off.
 */
const PIECES: Array<[string, string]> = [
  ['accents and CJK', 'café, naïve, 日本語'],
  ['emoji, surrogate pairs in JavaScript', '🐍 👩‍👩‍👧 𝕏'],
  ['quotes and backslash runs', 'say "hi" \\ \\\\" \\"\\\\ end\\'],
  ['control characters and line separators', 'tab\there\r\u0001\u001f\u007f\u2028\u2029'],
];

/** Python source for a string literal holding `text` exactly (JSON's escapes are Python's too). */
const python = (text: string) => JSON.stringify(text);

const printPieces = [
  'import sys',
  ...PIECES.map(([, text]) => `sys.stdout.write(${python(text)} + "\\n"); sys.stdout.flush()`),
  // A lone surrogate reaches Jupyter as the raw byte 0xff (surrogateescape): not UTF-8.
  'sys.stdout.write("lone \\udcff byte\\n"); sys.stdout.flush()',
].join('\n');
const expectedPieces = `${PIECES.map(([, text]) => `${text}\n`).join('')}lone \ufffd byte\n`;

describe('stream text on its way from the kernel to every transport', () => {
  let context: string;
  beforeAll(async () => {
    context = (await createContext()).id;
  });
  afterAll(async () => {
    await deleteContext(context);
  });

  it('arrives over POST /execute exactly as printed, in valid UTF-8, one line per event', async () => {
    const response = await request('POST', '/execute', { context_id: context, code: printPieces });
    expect(response.status).toBe(200);
    const body = Buffer.from(await response.arrayBuffer());
    expect(isUtf8(body)).toBe(true);
    const events = await readEvents(new Response(body, { headers: response.headers }));
    expect(stdoutOf(events)).toBe(expectedPieces);
    expect(events.filter((event) => event.type === 'stdout')).toHaveLength(PIECES.length + 1);
  });

  it('arrives over GET /ws exactly as printed (ws refuses text frames that are not UTF-8)', async () => {
    const client = await WsClient.open();
    try {
      const id = await client.execute('pieces', { context_id: context, code: printPieces });
      const frames = await client.events(id);
      expect(framesStdoutOf(frames)).toBe(expectedPieces);
      expect(frames.filter((frame) => frame.type === 'stdout').every((frame) => frame.execution_id === id)).toBe(true);
      expect(client.closed).toBeUndefined();
    } finally {
      client.close();
    }
  });

  it('arrives through MCP execute_code exactly as printed', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${baseUrl}/mcp`), { requestInit: { headers: authHeaders() } });
    const client = new Client({ name: 'output-text-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const result = (await client.callTool({ name: 'execute_code', arguments: { code: printPieces } })) as CallToolResult;
      const text = result.content.map((block) => (block.type === 'text' ? block.text : '')).join('\n');
      for (const line of expectedPieces.split('\n').filter(Boolean)) expect(text).toContain(line);
    } finally {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    }
  });

  it('delivers a 4 MiB line of multi-byte characters whole, once, and a re-attached reader gets the same', async () => {
    // 1 + 4 bytes per pair: 860,000 pairs are 4.1 MiB of UTF-8 in one write, so one message.
    const code = 'import sys\nsys.stdout.write("é🐍" * 860_000 + "\\n")';
    const response = await request('POST', '/execute', { context_id: context, code });
    const id = response.headers.get('x-execution-id')!;
    const events = await readEvents(response);
    const expected = `${'é🐍'.repeat(860_000)}\n`;
    expect(stdoutOf(events)).toBe(expected);
    expect(events.find((event) => event.type === 'output_truncated')).toBeUndefined();
    // The log keeps the line's bytes only; a later reader gets the event parsed from them.
    const replay = await readEvents(await request('GET', `/executions/${id}/events`));
    expect(stdoutOf(replay)).toBe(expected);
  });
});

describe('the output budget counts UTF-8 bytes', () => {
  let server: StartedServer;
  beforeAll(async () => {
    server = await startServer({ MAX_OUTPUT_BYTES: '1000' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('drops a message of multi-byte text that would pass the budget in bytes, though not in characters', async () => {
    // Each message is 300 two-byte characters and a newline: 601 bytes, 301 characters.
    const response = await fetch(`${server.baseUrl}/execute`, {
      method: 'POST',
      body: JSON.stringify({ code: 'for _ in range(2):\n    print("é" * 300, flush=True)' }),
    });
    const events: ExecutionEvent[] = await readEvents(response);
    expect(stdoutOf(events)).toBe(`${'é'.repeat(300)}\n`);
    expect(events.find((event) => event.type === 'output_truncated')).toMatchObject({ stream_bytes_dropped: 601, limit_bytes: 1000 });
  });
});
