import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { authHeaders, baseUrl, json, readEvents, stdoutOf } from '../helpers/api.js';

const clients: Array<{ client: Client; transport: StreamableHTTPClientTransport }> = [];
// Ending the sessions deletes their kernels: the files that run after this one share the server.
afterEach(async () => {
  await Promise.all(
    clients.splice(0).map(async ({ client, transport }) => {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    }),
  );
});

async function connect(): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${baseUrl}/mcp`), { requestInit: { headers: authHeaders() } });
  const client = new Client({ name: 'integration-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push({ client, transport });
  return { client, transport };
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

function textOf(result: CallToolResult): string {
  return result.content
    .filter((block) => block.type === 'text')
    .map((block) => block.text)
    .join('\n');
}

async function sessionContexts(client: Client): Promise<Array<{ id: string; this_session: boolean }>> {
  const listed = await call(client, 'list_contexts');
  return (JSON.parse(textOf(listed)) as Array<{ id: string; this_session: boolean }>).filter((context) => context.this_session);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('MCP over Streamable HTTP', () => {
  it('initializes with a session id and names this server', async () => {
    const { client, transport } = await connect();
    expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(client.getServerVersion()?.name).toBe('code-interpreter');
    expect(client.getServerCapabilities()?.tools).toBeDefined();
    expect(client.getInstructions()).toMatch(/execute_code/);
  });

  it('lists every tool with a description and a strict JSON schema', async () => {
    const { client } = await connect();
    const { tools } = await client.listTools();
    const byName = new Map(tools.map((tool) => [tool.name, tool]));
    expect([...byName.keys()].sort()).toEqual(
      [
        'create_context',
        'delete_file',
        'execute_code',
        'interrupt',
        'kill_command',
        'list_commands',
        'list_contexts',
        'list_files',
        'read_command_output',
        'read_file',
        'restart_context',
        'run_command',
        'send_command_input',
        'start_command',
        'write_file',
      ].sort(),
    );
    for (const tool of tools) {
      expect(tool.description!.length, tool.name).toBeGreaterThan(40);
      expect(tool.inputSchema.type).toBe('object');
      expect(tool.inputSchema.additionalProperties, tool.name).toBe(false);
      for (const [name, property] of Object.entries(tool.inputSchema.properties ?? {})) {
        expect((property as { description?: string }).description, `${tool.name}.${name}`).toEqual(expect.any(String));
      }
    }
    const execute = byName.get('execute_code')!.inputSchema;
    expect(execute.required).toEqual(['code']);
    expect(Object.keys(execute.properties!).sort()).toEqual(['code', 'context_id', 'language', 'timeout']);
    expect(execute.properties!.timeout).toMatchObject({ type: 'number', exclusiveMinimum: 0 });
    const write = byName.get('write_file')!.inputSchema;
    expect(write.required).toEqual(expect.arrayContaining(['path', 'content']));
    expect(write.properties!.encoding).toMatchObject({ enum: ['utf8', 'base64'], default: 'utf8' });
    expect(byName.get('read_file')!.annotations?.readOnlyHint).toBe(true);
    expect(byName.get('delete_file')!.annotations?.destructiveHint).toBe(true);
  });

  it('runs code and returns stdout and the value of the last expression', async () => {
    const { client } = await connect();
    const result = await call(client, 'execute_code', { code: 'print("hello from mcp")\n6 * 7' });
    expect(result.isError).toBeFalsy();
    expect(result.content[0]).toEqual({ type: 'text', text: 'hello from mcp\n' });
    expect(textOf(result)).toContain('42');
  });

  it('returns stderr apart from stdout, and says so when there is no output', async () => {
    const { client } = await connect();
    const result = await call(client, 'execute_code', { code: 'import sys\nprint("out")\nprint("warn", file=sys.stderr)' });
    expect(result.content.map((block) => (block.type === 'text' ? block.text : block.type))).toEqual(['out\n', '[stderr]\nwarn\n']);
    expect(textOf(await call(client, 'execute_code', { code: 'x = 1' }))).toBe('(no output)');
  });

  it('returns a matplotlib figure as image content holding a valid PNG', async () => {
    const { client } = await connect();
    const result = await call(client, 'execute_code', {
      code: 'import matplotlib\nmatplotlib.use("module://matplotlib_inline.backend_inline")\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()',
    });
    expect(result.isError).toBeFalsy();
    const images = result.content.filter((block) => block.type === 'image');
    expect(images).toHaveLength(1);
    const image = images[0] as { data: string; mimeType: string };
    expect(image.mimeType).toBe('image/png');
    const bytes = Buffer.from(image.data, 'base64');
    expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    // IHDR: width and height of a default figure, in pixels.
    expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
    expect(bytes.readUInt32BE(16)).toBeGreaterThan(100);
    expect(bytes.readUInt32BE(20)).toBeGreaterThan(100);
    // The figure's repr ("<Figure size 640x480 ...>") is noise next to the image.
    expect(textOf(result)).not.toMatch(/<Figure size/);
  });

  it('returns an exception as isError with its name, value and a traceback without colour codes', async () => {
    const { client } = await connect();
    const result = await call(client, 'execute_code', { code: 'def f():\n    return 1 / 0\nf()' });
    expect(result.isError).toBe(true);
    const text = textOf(result);
    expect(text.split('\n')[0]).toBe('ZeroDivisionError: division by zero');
    expect(text).toMatch(/Traceback|----> 3/);
    expect(text).toContain('return 1 / 0');
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/\x1b\[/);
  });

  it('stops code at its timeout with a TimeoutError, and the context keeps its variables', async () => {
    const { client } = await connect();
    await call(client, 'execute_code', { code: 'kept = "still here"' });
    const started = Date.now();
    const result = await call(client, 'execute_code', { code: 'import time\ntime.sleep(30)', timeout: 1 });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/^TimeoutError/);
    expect(textOf(await call(client, 'execute_code', { code: 'print(kept)' }))).toBe('still here\n');
  });

  it('sends progress notifications with the partial output while a 3-second loop runs', async () => {
    const { client } = await connect();
    const notices: Progress[] = [];
    const result = (await client.callTool(
      {
        name: 'execute_code',
        arguments: { code: 'import time\nfor i in range(6):\n    print(f"tick {i}", flush=True)\n    time.sleep(0.5)' },
      },
      undefined,
      { onprogress: (progress) => notices.push(progress), resetTimeoutOnProgress: true },
    )) as CallToolResult;
    expect(textOf(result)).toBe(['tick 0', 'tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5', ''].join('\n'));
    // Several notifications while it ran, each with output the previous ones had not carried.
    expect(notices.length).toBeGreaterThanOrEqual(3);
    expect(notices.map((notice) => notice.progress)).toEqual(notices.map((_, index) => index + 1));
    expect(notices[0]!.message).toContain('tick 0');
    expect(notices.map((notice) => notice.message).join('')).toContain('tick 4');
  });

  it('keeps two sessions apart: each has its own context', async () => {
    const { client: first } = await connect();
    const { client: second } = await connect();
    await call(first, 'execute_code', { code: 'secret = "first session"' });
    expect(textOf(await call(first, 'execute_code', { code: 'print(secret)' }))).toBe('first session\n');
    const other = await call(second, 'execute_code', { code: 'print(secret)' });
    expect(other.isError).toBe(true);
    expect(textOf(other)).toMatch(/^NameError: name 'secret' is not defined/);
    const [firstContexts, secondContexts] = [await sessionContexts(first), await sessionContexts(second)];
    expect(firstContexts).toHaveLength(1);
    expect(secondContexts).toHaveLength(1);
    expect(firstContexts[0]!.id).not.toBe(secondContexts[0]!.id);
  });

  it('runs in a named context, and in contexts it creates', async () => {
    const { client } = await connect();
    const created = JSON.parse(textOf(await call(client, 'create_context', {}))) as { id: string; language: string; this_session: boolean };
    expect(created).toMatchObject({ language: 'python', this_session: true });
    await call(client, 'execute_code', { code: 'where = "created"', context_id: created.id });
    expect(textOf(await call(client, 'execute_code', { code: 'print(where)', context_id: created.id }))).toBe('created\n');
    expect((await call(client, 'execute_code', { code: 'print(where)' })).isError).toBe(true);

    const interrupted = await call(client, 'interrupt', { context_id: created.id });
    expect(interrupted.isError).toBeFalsy();
    const restarted = await call(client, 'restart_context', { context_id: created.id });
    expect(JSON.parse(textOf(restarted))).toMatchObject({ id: created.id });
    expect(textOf(await call(client, 'execute_code', { code: 'print(where)', context_id: created.id }))).toMatch(/^NameError/);
  });

  it('interrupts a running execution from another call', async () => {
    const { client } = await connect();
    const created = JSON.parse(textOf(await call(client, 'create_context', {}))) as { id: string };
    const running = call(client, 'execute_code', {
      code: 'import time\nprint("started", flush=True)\ntime.sleep(30)',
      context_id: created.id,
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await call(client, 'interrupt', { context_id: created.id });
    const result = await running;
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/KeyboardInterrupt/);
  });

  it('interrupts the code of a call the client cancels', async () => {
    const { client } = await connect();
    await call(client, 'execute_code', { code: 'state = "kept"' });
    const cancel = new AbortController();
    const running = client.callTool({ name: 'execute_code', arguments: { code: 'import time\ntime.sleep(30)' } }, undefined, {
      signal: cancel.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    cancel.abort();
    await expect(running).rejects.toThrow();
    // The context is free again at once, its state intact: the sleep was interrupted.
    const started = Date.now();
    expect(textOf(await call(client, 'execute_code', { code: 'print(state)' }))).toBe('kept\n');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('writes a file, lists it, reads it back and deletes it', async () => {
    const { client } = await connect();
    const written = await call(client, 'write_file', { path: 'mcp-test/notes.txt', content: 'héllo\nwörld\n' });
    expect(textOf(written)).toMatch(/^Created mcp-test\/notes.txt \(14 bytes\)/);
    expect(textOf(await call(client, 'write_file', { path: 'mcp-test/notes.txt', content: 'héllo\nwörld\n' }))).toMatch(/^Replaced/);
    expect(textOf(await call(client, 'read_file', { path: 'mcp-test/notes.txt' }))).toBe('héllo\nwörld\n');
    // The kernel sees the same file at the same relative path.
    expect(textOf(await call(client, 'execute_code', { code: 'print(open("mcp-test/notes.txt", encoding="utf-8").read(), end="")' }))).toBe(
      'héllo\nwörld\n',
    );
    expect(textOf(await call(client, 'list_files', { path: 'mcp-test' }))).toMatch(/^mcp-test: 1 entry\nnotes.txt {2}14 bytes {2}\d{4}-/);

    // Valid UTF-8 as it happens (UTF-16 text), but NUL bytes say binary.
    const bytes = Buffer.from('AB\n', 'utf16le');
    await call(client, 'write_file', { path: 'mcp-test/data.bin', content: bytes.toString('base64'), encoding: 'base64' });
    const read = await call(client, 'read_file', { path: 'mcp-test/data.bin' });
    const resource = read.content.find((block) => block.type === 'resource') as {
      resource: { blob: string; uri: string; mimeType: string };
    };
    expect(Buffer.from(resource.resource.blob, 'base64').equals(bytes)).toBe(true);
    expect(resource.resource.uri).toBe(`${baseUrl}/files/mcp-test/data.bin`);
    // No NUL byte, but not UTF-8 either (Latin-1 text, say): still bytes, not mangled text.
    const latin1 = Buffer.from('café crème', 'latin1');
    await call(client, 'write_file', { path: 'mcp-test/latin1.txt', content: latin1.toString('base64'), encoding: 'base64' });
    const latin1Read = await call(client, 'read_file', { path: 'mcp-test/latin1.txt' });
    const latin1Blob = latin1Read.content.find((block) => block.type === 'resource') as { resource: { blob: string } } | undefined;
    expect(Buffer.from(latin1Blob!.resource.blob, 'base64').equals(latin1)).toBe(true);

    expect((await call(client, 'delete_file', { path: 'mcp-test' })).isError).toBeFalsy();
    const gone = await call(client, 'read_file', { path: 'mcp-test/notes.txt' });
    expect(gone.isError).toBe(true);
    expect(textOf(gone)).toMatch(/ERR_FILE_NOT_FOUND/);
  });

  it('lists a large directory in pages', async () => {
    const { client } = await connect();
    for (const name of ['a.txt', 'b.txt', 'c.txt']) await call(client, 'write_file', { path: `mcp-pages/${name}`, content: name });
    const first = textOf(await call(client, 'list_files', { path: 'mcp-pages', limit: 2 }));
    expect(first).toMatch(
      /^mcp-pages: 2 entries\na.txt .*\nb.txt .*\n\[more entries follow: call list_files with path "mcp-pages" and cursor "(.+)"\]$/,
    );
    const cursor = /cursor "(.+)"/.exec(first)![1]!;
    const second = textOf(await call(client, 'list_files', { path: 'mcp-pages', limit: 2, cursor }));
    expect(second).toMatch(/^mcp-pages: continued, 1 entry\nc.txt {2}5 bytes/);
    await call(client, 'delete_file', { path: 'mcp-pages' });
  });

  it('cuts long text files and answers large binary files with their download URL', async () => {
    const { client } = await connect();
    await call(client, 'execute_code', {
      code: 'import os\nopen("mcp-long.txt", "w").write("line\\n" * 10_000)\nopen("mcp-big.bin", "wb").write(os.urandom(2 * 1024 * 1024))',
    });
    const long = textOf(await call(client, 'read_file', { path: 'mcp-long.txt' }));
    expect(long.startsWith('line\n'.repeat(4000))).toBe(true);
    expect(long).toMatch(
      /\[\.\.\. cut: mcp-long.txt is 50,000 bytes; the first 20,000 characters are shown\. .*GET \S+\/files\/mcp-long.txt\.\]$/,
    );

    const big = textOf(await call(client, 'read_file', { path: 'mcp-big.bin' }));
    expect(big).toMatch(/^mcp-big.bin is 2,097,152 bytes of application\/octet-stream, more than the 1 MiB this tool returns\./);
    const url = /GET (\S+\/files\/mcp-big.bin)/.exec(big)![1]!;
    const download = await fetch(url, { headers: authHeaders() });
    expect(download.status).toBe(200);
    expect((await download.arrayBuffer()).byteLength).toBe(2 * 1024 * 1024);
    for (const path of ['mcp-long.txt', 'mcp-big.bin']) await call(client, 'delete_file', { path });
  });

  it('returns an image file as image content', async () => {
    const { client } = await connect();
    await call(client, 'execute_code', {
      code: 'import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\nplt.figure(); plt.plot([0, 1]); plt.savefig("mcp-plot.png"); plt.close("all")',
    });
    const read = await call(client, 'read_file', { path: 'mcp-plot.png' });
    expect(read.content[0]).toMatchObject({ type: 'image', mimeType: 'image/png' });
    expect(
      Buffer.from((read.content[0] as { data: string }).data, 'base64')
        .subarray(0, 8)
        .equals(PNG_SIGNATURE),
    ).toBe(true);
    await call(client, 'delete_file', { path: 'mcp-plot.png' });
  });

  it('refuses paths outside the workspace', async () => {
    const { client } = await connect();
    for (const path of ['../outside.txt', '/etc/passwd', 'a/../../b']) {
      const result = await call(client, 'read_file', { path });
      expect(result.isError, path).toBe(true);
      expect(textOf(result), path).toMatch(/ERR_PATH_OUTSIDE_WORKSPACE|ERR_INVALID_PATH/);
    }
    const write = await call(client, 'write_file', { path: '../escape.txt', content: 'x' });
    expect(write.isError).toBe(true);
    expect(textOf(write)).toMatch(/outside the workspace/);
    // A symlink made by code that points out of the workspace is not followed either.
    await call(client, 'execute_code', { code: 'import os\nos.path.lexists("mcp-link") or os.symlink("/etc", "mcp-link")' });
    const through = await call(client, 'read_file', { path: 'mcp-link/hostname' });
    expect(textOf(through)).toMatch(/ERR_PATH_OUTSIDE_WORKSPACE/);
    await call(client, 'execute_code', { code: 'import os\nos.unlink("mcp-link")' });
  });

  it('answers unknown tools and bad arguments with errors, and keeps serving', async () => {
    const { client } = await connect();
    const unknown = await call(client, 'no_such_tool', {});
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toMatch(/no_such_tool not found/);
    const missing = await call(client, 'execute_code', {});
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/Input validation error.*code/s);
    const extra = await call(client, 'read_file', { path: 'x', surprise: true });
    expect(extra.isError).toBe(true);
    const wrongType = await call(client, 'execute_code', { code: 'print(1)', timeout: 'soon' });
    expect(wrongType.isError).toBe(true);
    const both = await call(client, 'execute_code', { code: 'print(1)', language: 'python', context_id: 'x' });
    expect(textOf(both)).toMatch(/either context_id or language/);
    const badBase64 = await call(client, 'write_file', { path: 'x.bin', content: 'not base64!', encoding: 'base64' });
    expect(textOf(badBase64)).toMatch(/not valid base64/);
    const unknownContext = await call(client, 'execute_code', { code: '1', context_id: 'nope' });
    expect(textOf(unknownContext)).toMatch(/Context nope not found \(ERR_CONTEXT_NOT_FOUND\)/);
    expect(textOf(await call(client, 'execute_code', { code: 'print("alive")' }))).toBe('alive\n');
  });

  it('truncates long output in the middle and says how much was cut', async () => {
    const { client } = await connect();
    const result = await call(client, 'execute_code', { code: 'print("start"); print("x" * 100_000); print("end")' });
    const text = textOf(result);
    expect(text.startsWith('start\n')).toBe(true);
    expect(text.trimEnd().endsWith('end')).toBe(true);
    expect(text).toMatch(/\[\.\.\. 80,011 characters of stdout cut here/);
    expect(text.length).toBeLessThan(21_000);
    // The notice names the execution's events, which hold all of it.
    const url = /GET (\S+\/executions\/[\w-]+\/events)/.exec(text)![1]!;
    const events = await readEvents(await fetch(url, { headers: authHeaders() }));
    expect(stdoutOf(events)).toBe(`start\n${'x'.repeat(100_000)}\nend\n`);
  });

  it('deletes the session context when the client closes the session', async () => {
    const { client, transport } = await connect();
    await call(client, 'execute_code', { code: 'x = 1' });
    const created = JSON.parse(textOf(await call(client, 'create_context', {}))) as { id: string };
    const owned = (await sessionContexts(client)).map((context) => context.id);
    expect(owned).toHaveLength(2);
    expect(owned).toContain(created.id);
    const ids = async () => (await json<Array<{ id: string }>>('GET', '/contexts')).body.map((context) => context.id);
    expect(await ids()).toEqual(expect.arrayContaining(owned));

    await transport.terminateSession();
    const remaining = await ids();
    for (const id of owned) expect(remaining).not.toContain(id);

    // The session is gone: its id is answered 404, as MCP asks, so that clients start over.
    const stale = await fetch(`${baseUrl}/mcp`, {
      method: 'POST',
      headers: authHeaders({
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId ?? '',
      }),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(stale.status).toBe(404);
  });

  it('answers requests without a session with a JSON-RPC error', async () => {
    const response = await fetch(`${baseUrl}/mcp`, {
      method: 'POST',
      headers: authHeaders({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' }),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringMatching(/initialize/) } });
  });
});
