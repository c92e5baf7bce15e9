import { ProcessManager } from '../../server/processes/manager.js';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { text } from 'node:stream/consumers';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContextRegistry } from '../../server/contexts/registry.js';
import { ContextNotFoundError } from '../../server/errors.js';
import { McpSessions, type SessionsOptions } from '../../server/transports/mcp/sessions.js';
import type { WorkspaceFiles } from '../../server/workspace/files.js';
import { FakeExecution, FakeExecutionManager, recordingLogger } from '../helpers/fake-executions.js';

/**
 * The MCP sessions against a fake context registry and execution manager, over the SDK's own
 * client on 127.0.0.1: the cap on sessions, idle expiry, closing, and what a tool's failure
 * tells the model. The integration suite runs the same tools against real kernels.
 */

interface FakeContext {
  id: string;
  language: string;
  isClosed: boolean;
  info: { id: string; language: string; cwd: string };
}

class FakeRegistry {
  readonly defaultLanguage = 'python';
  readonly contexts = new Map<string, FakeContext>();
  readonly deleted: string[] = [];
  /** What `create` does instead of creating, when set. */
  failCreate: Error | undefined;

  async create(language = 'python', cwd = '/work'): Promise<FakeContext> {
    if (this.failCreate) throw this.failCreate;
    const id = `ctx-${this.contexts.size + this.deleted.length + 1}`;
    const context = { id, language, isClosed: false, info: { id, language, cwd } };
    this.contexts.set(id, context);
    return context;
  }

  get(id: string): FakeContext {
    const context = this.contexts.get(id);
    if (!context) throw new ContextNotFoundError(id);
    return context;
  }

  list() {
    return [...this.contexts.values()].map((context) => context.info);
  }

  async restart(id: string): Promise<FakeContext> {
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const context = this.get(id);
    context.isClosed = true;
    this.contexts.delete(id);
    this.deleted.push(id);
  }

  async defaultContext(): Promise<FakeContext> {
    return this.contexts.get('ctx-default') ?? this.add('ctx-default');
  }

  add(id: string): FakeContext {
    const context = { id, language: 'python', isClosed: false, info: { id, language: 'python', cwd: '/work' } };
    this.contexts.set(id, context);
    return context;
  }
}

interface Setup {
  sessions: McpSessions;
  registry: FakeRegistry;
  manager: FakeExecutionManager;
  log: ReturnType<typeof recordingLogger>;
  url: string;
}

const servers: Server[] = [];
const clients: Client[] = [];
const allSessions: McpSessions[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close().catch(() => undefined)));
  await Promise.all(allSessions.splice(0).map((sessions) => sessions.close()));
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function setUp(options: Partial<SessionsOptions> = {}): Promise<Setup> {
  const registry = new FakeRegistry();
  const manager = new FakeExecutionManager();
  const log = recordingLogger();
  const sessions = new McpSessions({
    contexts: registry as unknown as ContextRegistry,
    files: {} as WorkspaceFiles,
    executions: manager.asManager(),
    processes: new ProcessManager({
      hostSocket: undefined,
      logger: log,
      maxProcesses: 1,
      bufferBytes: 1 << 20,
      totalBufferBytes: 1 << 20,
      retentionMs: 1000,
      maxRetained: 1,
    }),
    logger: log,
    options: {
      idleMs: 0,
      maxSessions: 10,
      maxTextChars: 10_000,
      maxFileBytes: 1024,
      maxUploadBytes: 1024,
      heartbeatMs: 0,
      version: '0.0.0-test',
      ...options,
    },
  });
  allSessions.push(sessions);
  const server = createServer((request, response) => {
    void (async () => {
      const raw = request.method === 'POST' ? await text(request) : '';
      await sessions.handle(request, response, raw ? JSON.parse(raw) : undefined, 'http://127.0.0.1');
    })();
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { sessions, registry, manager, log, url: `http://127.0.0.1:${port}/mcp` };
}

async function connect(url: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'unit-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

const textOf = (result: CallToolResult) => result.content.map((block) => (block.type === 'text' ? block.text : '')).join('\n');

/** A raw initialize request, to read the HTTP status a refused one gets. */
async function initialize(url: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
}

async function until(condition: () => boolean, timeoutMs = 4_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('MCP sessions', () => {
  it("deletes the session's contexts when the client ends it, and no other", async () => {
    const { sessions, registry, url } = await setUp();
    registry.add('someone-elses');
    const { client, transport } = await connect(url);
    expect(sessions.size).toBe(1);
    const created = JSON.parse(textOf(await call(client, 'create_context', { cwd: 'sub' }))) as { id: string; this_session: boolean };
    expect(created).toMatchObject({ language: 'python', cwd: 'sub', this_session: true });
    const listed = JSON.parse(textOf(await call(client, 'list_contexts'))) as Array<{ id: string; this_session: boolean }>;
    expect(listed.map(({ id, this_session }) => [id, this_session])).toEqual([
      ['someone-elses', false],
      [created.id, true],
    ]);
    await transport.terminateSession();
    await until(() => registry.deleted.length > 0);
    expect(registry.deleted).toEqual([created.id]);
    expect(sessions.size).toBe(0);
  });

  it('closes a session unused for idleMs, with its contexts; its id is then unknown (404)', async () => {
    const { sessions, registry, url, log } = await setUp({ idleMs: 100 });
    const { client, transport } = await connect(url);
    const { id } = JSON.parse(textOf(await call(client, 'create_context'))) as { id: string };
    await until(() => sessions.size === 0);
    await until(() => registry.deleted.includes(id));
    expect(log.lines.find((line) => line.message === 'MCP session closed')?.data).toMatchObject({
      reason: 'unused for 0.1 s',
      contexts: 1,
    });
    const stale = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId!,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(stale.status).toBe(404);
  });

  it('is not closed for idleness while a call runs', async () => {
    const { sessions, manager, registry, url } = await setUp({ idleMs: 100 });
    registry.add('ctx-busy');
    const execution = manager.add(new FakeExecution('exec-1', 'ctx-busy'));
    manager.onStart = async () => execution;
    const { client } = await connect(url);
    const running = call(client, 'execute_code', { code: 'sleep', context_id: 'ctx-busy' });
    await until(() => execution.reads.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sessions.size).toBe(1);
    execution.push({ type: 'stdout', text: 'done\n' }).end();
    expect(textOf(await running)).toMatch(/done/);
    await until(() => sessions.size === 0);
  });

  it('makes room for a new session by closing the one unused the longest, and refuses one (429) when all are busy', async () => {
    const { sessions, registry, manager, url } = await setUp({ maxSessions: 2 });
    const first = await connect(url);
    const { id: firstContext } = JSON.parse(textOf(await call(first.client, 'create_context'))) as { id: string };
    await new Promise((resolve) => setTimeout(resolve, 10));
    const second = await connect(url);
    // Full: the third takes the place of the first, the one unused the longest.
    const third = await connect(url);
    expect(sessions.size).toBe(2);
    await until(() => registry.deleted.includes(firstContext));
    await expect(call(first.client, 'list_contexts')).rejects.toThrow();

    // Both remaining sessions have a call running: nothing can be closed to make room.
    registry.add('ctx-busy');
    const executions = [new FakeExecution('exec-a', 'ctx-busy'), new FakeExecution('exec-b', 'ctx-busy')];
    manager.onStart = async () => manager.add(executions[manager.started.length - 1]!);
    const calls = [second, third].map(({ client }) => call(client, 'execute_code', { code: 'sleep', context_id: 'ctx-busy' }));
    await until(() => executions.every((execution) => execution.reads.length === 1));
    const refused = await initialize(url);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/MCP_MAX_SESSIONS/);
    for (const execution of executions) execution.end();
    await Promise.all(calls);
    // Once a call has ended, its session can make room again.
    expect((await initialize(url)).status).toBe(200);
  });

  it('on server close ends every session, leaves the contexts to the registry, and opens no new one', async () => {
    const { sessions, registry, url } = await setUp();
    const { client } = await connect(url);
    await call(client, 'create_context');
    await sessions.close();
    expect(sessions.size).toBe(0);
    expect(registry.deleted).toEqual([]);
    expect((await initialize(url)).status).toBe(503);
  });

  it("tells the model a refusal's message and code, and nothing of an internal failure", async () => {
    const { registry, url, log } = await setUp();
    const { client } = await connect(url);
    const refused = await call(client, 'restart_context', { context_id: 'nope' });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toBe('Context nope not found (ERR_CONTEXT_NOT_FOUND)');
    // Node's own errors carry ERR_ codes too; theirs say things of the server's insides.
    registry.failCreate = Object.assign(new TypeError('The "path" argument must be of type string. Received /secret/place'), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
    const failed = await call(client, 'create_context');
    expect(failed.isError).toBe(true);
    expect(textOf(failed)).toBe('Internal error in create_context; the server log has the details.');
    expect(log.lines.find((line) => line.level === 'error')).toMatchObject({ message: 'tool failed' });
  });
});
