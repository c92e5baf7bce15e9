import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../helpers/processes.js';
import { eventually, ProcessesApp } from '../helpers/processes-app.js';

/**
 * The command tools of MCP against the real process host, with the SDK's own client: a
 * command's output and exit code, its timeout, background commands read from an index,
 * written to and killed, and the end of a session killing what it started.
 */
describe('MCP: commands', () => {
  const app = new ProcessesApp();
  const sessions: Array<{ client: Client; transport: StreamableHTTPClientTransport }> = [];

  // A small text bound, to see output cut and paged.
  beforeAll(() => app.start({ MCP_MAX_TEXT: '200' }));
  afterAll(() => app.stop());
  afterEach(async () => {
    for (const { client, transport } of sessions.splice(0)) {
      await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    }
  });

  const connect = async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${app.baseUrl}/mcp`));
    const client = new Client({ name: 'commands-test', version: '1.0.0' });
    await client.connect(transport);
    sessions.push({ client, transport });
    return { client, transport };
  };
  const call = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
    (await client.callTool({ name, arguments: args })) as CallToolResult;
  const textOf = (result: CallToolResult) =>
    result.content
      .filter((block) => block.type === 'text')
      .map((block) => block.text)
      .join('\n');

  it('runs a command and answers its stdout, stderr and exit code', async () => {
    const { client } = await connect();
    const ok = await call(client, 'run_command', { command: 'echo "$GREETING from $(pwd)"', envs: { GREETING: 'hi' } });
    expect(ok.isError).toBeFalsy();
    expect(textOf(ok)).toBe(`hi from ${app.host.workspace}\n\n[exit code 0]`);

    const failed = await call(client, 'run_command', { command: 'echo out; echo err >&2; exit 3' });
    expect(failed.isError).toBe(true);
    expect(failed.content).toEqual([
      { type: 'text', text: 'out\n' },
      { type: 'text', text: '[stderr]\nerr\n' },
      { type: 'text', text: '[exit code 3]' },
    ]);

    // Output past MCP_MAX_TEXT is cut in the middle, with where to read all of it.
    const long = textOf(await call(client, 'run_command', { command: 'seq 1 1000' }));
    expect(long.startsWith('1\n2\n3\n')).toBe(true);
    expect(long).toMatch(/characters of stdout cut here .*GET http:\/\/127\.0\.0\.1:\d+\/processes\/[0-9a-f-]{36}\/events/);
    expect(long).toContain('999\n1000\n');

    const missing = await call(client, 'run_command', { command: 'true', cwd: 'no/such/dir' });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/ERR_INVALID_CWD/);
  });

  it('kills a command at its timeout, with its children', async () => {
    const { client } = await connect();
    const started = Date.now();
    const result = await call(client, 'run_command', { command: 'sleep 30 & echo $!; wait', timeout: 1 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.isError).toBe(true);
    const text = textOf(result);
    expect(text).toMatch(/killed by SIGKILL/);
    expect(text).toMatch(/TimeoutError: The process ran longer than its timeout of 1000 ms/);
    const child = Number(text.split('\n')[0]);
    await eventually(() => !isAlive(child), 5000, 'the child killed');
  });

  it('starts a command in the background, reads it from an index, writes its stdin and kills it', async () => {
    const { client } = await connect();
    const started = JSON.parse(
      textOf(await call(client, 'start_command', { command: 'echo ready; while read line; do echo "got $line"; done', tag: 'echo' })),
    ) as { process_id: string; pid: number };
    expect(started.pid).toEqual(expect.any(Number));

    const first = textOf(await call(client, 'read_command_output', { process_id: started.process_id, wait: 5 }));
    expect(first).toMatch(/^ready\n\[running \(pid \d+\); read on with from (\d+)\]$/);
    const from = Number(/from (\d+)/.exec(first)![1]);

    await call(client, 'send_command_input', { process_id: started.process_id, data: 'one\n' });
    const second = textOf(await call(client, 'read_command_output', { process_id: started.process_id, from, wait: 5 }));
    expect(second).toMatch(/^got one\n\[running/);

    const listed = JSON.parse(textOf(await call(client, 'list_commands', { running: true }))) as Array<Record<string, unknown>>;
    expect(listed.find((entry) => entry.process_id === started.process_id)).toMatchObject({
      tag: 'echo',
      state: 'running',
      this_session: true,
    });

    const killed = await call(client, 'kill_command', { process_id: started.process_id });
    expect(textOf(killed)).toMatch(/ended: killed by SIGKILL/);
    expect(isAlive(started.pid)).toBe(false);
    // From 0 again: everything it printed, and how it ended.
    expect(textOf(await call(client, 'read_command_output', { process_id: started.process_id }))).toBe(
      'ready\ngot one\n[ended: killed by SIGKILL; all output read]',
    );
  });

  it('pages output longer than an answer', async () => {
    const { client } = await connect();
    const { process_id: id } = JSON.parse(
      textOf(await call(client, 'start_command', { command: 'for i in 1 2 3; do seq 1 40; sleep 0.2; done' })),
    ) as {
      process_id: string;
    };
    await eventually(() => app.api.processes.get(id).state === 'exited', 10_000, 'the command ended');
    let from = 0;
    let all = '';
    let pages = 0;
    for (; pages < 10; pages++) {
      const answer = textOf(await call(client, 'read_command_output', { process_id: id, from }));
      const state = answer.slice(answer.lastIndexOf('['));
      all += answer.slice(0, answer.lastIndexOf('['));
      if (state.includes('all output read')) break;
      from = Number(/from (\d+)/.exec(state)![1]);
    }
    const expected = Array.from({ length: 3 }, () => Array.from({ length: 40 }, (_, i) => `${i + 1}\n`).join('')).join('');
    expect(all).toBe(expected);
    // 333 characters in chunks of 111, 200 an answer: one chunk a page.
    expect(pages).toBeGreaterThanOrEqual(2);
  });

  it('kills the command of a cancelled run_command call', async () => {
    const { client } = await connect();
    const cancel = new AbortController();
    const pending = client.callTool({ name: 'run_command', arguments: { command: 'sleep 45' } }, undefined, { signal: cancel.signal });
    pending.catch(() => undefined);
    let pid: number | undefined;
    await eventually(() => {
      const running = app.api.processes.list({ running: true }).find((process) => process.config.args[1] === 'sleep 45');
      pid = running?.pid;
      return pid !== undefined;
    });
    cancel.abort();
    await expect(pending).rejects.toThrow();
    await eventually(() => !isAlive(pid!), 10_000, 'the cancelled command killed');
  });

  it("kills the session's commands when the session ends", async () => {
    const { client, transport } = await connect();
    const { pid } = JSON.parse(textOf(await call(client, 'start_command', { command: 'sleep 60' }))) as { pid: number };
    const other = await connect();
    const { pid: otherPid } = JSON.parse(textOf(await call(other.client, 'start_command', { command: 'sleep 60' }))) as { pid: number };
    expect(isAlive(pid)).toBe(true);
    await transport.terminateSession();
    await eventually(() => !isAlive(pid), 10_000, "the session's command killed");
    expect(isAlive(otherPid)).toBe(true);
  });
});
