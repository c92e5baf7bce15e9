import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestProcessHost } from '../helpers/process-host.js';

/**
 * The process host (server/process-host/), started from dist/ as this uid on a temp socket and
 * driven through its protocol, as the API drives it.
 */
describe('process host', () => {
  const host = new TestProcessHost();
  beforeAll(() => host.start());
  afterAll(() => host.stop());

  const alive = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat[stat.lastIndexOf(')') + 2] !== 'Z';
    } catch {
      return false;
    }
  };
  const waitGone = async (pids: number[]) => {
    const deadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return pids.filter(alive);
  };

  it('answers a ping with its pid', async () => {
    const client = await host.connect();
    client.send({ op: 'ping' });
    const { events } = await client.closed;
    expect(events).toEqual([{ ev: 'pong', pid: host.process!.pid }]);
  });

  it('runs a command: stdout, stderr, then the exit code after both', async () => {
    const client = await host.connect();
    client.start({ cmd: 'sh', args: ['-c', 'echo out; echo err >&2; printf "%s" "$FOO"; exit 3'], envs: { FOO: 'bar' } });
    const collected = await client.closed;
    expect(collected.stdout).toBe('out\nbar');
    expect(collected.stderr).toBe('err\n');
    expect(collected.events.map((event) => event.ev)).toEqual(['started', 'exit']);
    expect(collected.events[1]).toEqual({ ev: 'exit', exit_code: 3, signal: null });
  });

  it('runs in the workspace by default and in a cwd relative to it', async () => {
    mkdirSync(path.join(host.workspace, 'sub'), { recursive: true });
    const first = await host.connect();
    first.start({ cmd: 'pwd' });
    expect((await first.closed).stdout).toBe(`${host.workspace}\n`);
    const second = await host.connect();
    second.start({ cmd: 'pwd', cwd: 'sub' });
    expect((await second.closed).stdout).toBe(`${path.join(host.workspace, 'sub')}\n`);
  });

  it('refuses a cwd that does not exist, and says so', async () => {
    const client = await host.connect();
    client.start({ cmd: 'true', cwd: 'missing' });
    const { events } = await client.closed;
    expect(events).toEqual([{ ev: 'error', code: 'ENOENT', message: "cwd 'missing': does not exist" }]);
  });

  it('gives the process no variable of the host', async () => {
    const client = await host.connect();
    client.start({ cmd: 'env', envs: { CODE_INTERPRETER_PROCESS_ID: 'mine', CODE_INTERPRETER_PROCESS_HOST: 'mine' } });
    const { stdout } = await client.closed;
    expect(stdout).not.toMatch(/^PROCESS_HOST_SOCKET=/m);
    expect(stdout).not.toMatch(/^WORKSPACE_DIR=/m);
    // The markers are the host's, whatever the caller asked for.
    expect(stdout).toMatch(/^CODE_INTERPRETER_PROCESS_ID=[0-9a-f-]{36}$/m);
    expect(stdout).toContain(`CODE_INTERPRETER_PROCESS_HOST=${host.socketPath}\n`);
  });

  it('sets envs of any name after the memory limit, even for a command whose path holds "="', async () => {
    const any = await host.connect();
    any.start({ cmd: '/usr/bin/env', envs: { X: 'one two', 'my-var': 'v=w' } });
    const { stdout } = await any.closed;
    expect(stdout).toMatch(/^X=one two$/m);
    expect(stdout).toMatch(/^my-var=v=w$/m);

    const directory = path.join(host.workspace, 'odd=dir');
    mkdirSync(directory, { recursive: true });
    writeFileSync(path.join(directory, 'show'), '#!/bin/sh\nprintf "%s" "$X"\n', { mode: 0o755 });
    const odd = await host.connect();
    odd.start({ cmd: path.join(directory, 'show'), envs: { X: 'set' } });
    const shown = await odd.closed;
    expect(shown.stdout).toBe('set');
    expect(shown.events.at(-1)).toEqual({ ev: 'exit', exit_code: 0, signal: null });
  });

  it('writes stdin and closes it', async () => {
    const client = await host.connect();
    client.start({ cmd: 'cat', stdin: true });
    client.input('hello ');
    client.input(Buffer.from('wörld'));
    await client.until((collected) => collected.stdout === 'hello wörld');
    client.send({ op: 'close_stdin' });
    const collected = await client.closed;
    expect(collected.events.at(-1)).toEqual({ ev: 'exit', exit_code: 0, signal: null });
  });

  it('ends a process that never read its open stdin', async () => {
    const client = await host.connect();
    client.start({ cmd: 'echo', args: ['done'], stdin: true });
    const collected = await client.closed;
    expect(collected.stdout).toBe('done\n');
    expect(collected.events.at(-1)).toEqual({ ev: 'exit', exit_code: 0, signal: null });
  });

  it('closes the connection on a frame the API may not send, and kills the process', async () => {
    const client = await host.connect();
    client.start({ cmd: 'sleep', args: ['1000'] });
    await client.until((collected) => collected.events.length > 0);
    const pid = client.pid();
    client.socket.write(Buffer.from([0, 0, 0, 2, 1, 0x41])); // a stdout frame, host-bound
    await client.closed;
    expect(await waitGone([pid])).toEqual([]);
  });

  it('gives a process without stdin /dev/null', async () => {
    const client = await host.connect();
    client.start({ cmd: 'cat', stdin: false });
    expect((await client.closed).events.at(-1)).toEqual({ ev: 'exit', exit_code: 0, signal: null });
  });

  it('runs a terminal: a tty of its own, input, resize', async () => {
    const client = await host.connect();
    client.start({ cmd: 'sh', pty: { cols: 80, rows: 24 }, stdin: true });
    client.input('tty; stty size\n');
    await client.until((collected) => /\/dev\/pts\/\d+/.test(collected.pty) && collected.pty.includes('24 80'));
    client.send({ op: 'resize', cols: 100, rows: 30 });
    client.input('stty size; exit 5\n');
    const collected = await client.closed;
    expect(collected.pty).toContain('30 100');
    expect(collected.events.at(-1)).toEqual({ ev: 'exit', exit_code: 5, signal: null });
  });

  it('signals the whole tree, a grandchild in its own session included', async () => {
    const client = await host.connect();
    // A child (sleep) and a grandchild that left the group and the session (setsid).
    client.start({ cmd: 'sh', args: ['-c', 'sleep 1000 & setsid sleep 1001 & echo $!; wait'] });
    await client.until((collected) => /\d+\n/.test(collected.stdout));
    const root = client.pid();
    const escapee = Number(client.collected.stdout.trim());
    await new Promise((resolve) => setTimeout(resolve, 100));
    const tree = [root, escapee];
    expect(tree.every(alive)).toBe(true);
    client.send({ op: 'signal', signal: 'SIGTERM' });
    const collected = await client.closed;
    expect(collected.events.at(-1)).toEqual({ ev: 'exit', exit_code: null, signal: 'SIGTERM' });
    expect(await waitGone(tree)).toEqual([]);
  });

  it('kills the tree when the connection closes', async () => {
    const client = await host.connect();
    client.start({ cmd: 'sh', args: ['-c', 'sleep 1000 & echo $!; wait'] });
    await client.until((collected) => /\d+\n/.test(collected.stdout));
    const tree = [client.pid(), Number(client.collected.stdout.trim())];
    expect(tree.every(alive)).toBe(true);
    client.socket.destroy();
    expect(await waitGone(tree)).toEqual([]);
  });

  it('kills the tree at timeout_ms and says so', async () => {
    const client = await host.connect();
    client.start({ cmd: 'sleep', args: ['1000'], timeout_ms: 200 });
    const { events } = await client.closed;
    expect(events.at(-1)).toEqual({ ev: 'exit', exit_code: null, signal: 'SIGKILL', timed_out: true });
  });

  it('pauses a writer nobody reads: the bytes it writes stay bounded', async () => {
    const client = await host.connect();
    // `yes` writes as fast as it can; dd counts what got through its pipe to stdout.
    client.start({ cmd: 'sh', args: ['-c', 'yes | dd bs=64k 2>/dev/null'] });
    await client.until((collected) => collected.sizes.length > 0);
    client.socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const received = client.collected.stdout.length;
    // What the kernel holds in the socket buffers and the pipes: a few MiB at most, not the
    // ~1 GiB `yes` writes in 1.5 s unhindered.
    const hostRss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${host.process!.pid}/status`, 'utf8'))![1]) * 1024;
    expect(hostRss).toBeLessThan(150 * 1024 * 1024);
    client.socket.resume();
    await client.until((collected) => collected.stdout.length > received + 1024 * 1024);
    // Frames stay within 64 KiB.
    expect(Math.max(...client.collected.sizes)).toBeLessThanOrEqual(64 * 1024);
    client.socket.destroy();
  });

  it('never splits a character across frames', async () => {
    const client = await host.connect();
    // 100,000 three-byte characters (not a multiple of a pipe's 64 KiB), read in pipe-sized pieces.
    client.start({ cmd: process.execPath, args: ['-e', "process.stdout.write('€'.repeat(100000))"] });
    const collected = await client.closed;
    expect(collected.stdout).toBe('€'.repeat(100_000));
  });
});

describe('process host with KERNEL_MEMORY_LIMIT, and JUPYTER_TOKEN left in its environment', () => {
  const host = new TestProcessHost();
  beforeAll(() => host.start({ KERNEL_MEMORY_LIMIT: '512MiB', JUPYTER_TOKEN: 'jupyter-token-for-jupyter-only' }));
  afterAll(() => host.stop());

  const allocate = async (mebibytes: number) => {
    const client = await host.connect();
    client.start({ cmd: '/usr/bin/python3', args: ['-c', `b = bytearray(${mebibytes} * 2**20); print(len(b) >> 20)`] });
    return client.closed;
  };

  it('holds a command to the kernels’ memory limit: within it runs, past it fails', async () => {
    expect((await allocate(64)).stdout).toBe('64\n');
    const refused = await allocate(1024);
    expect(refused.stderr).toContain('MemoryError');
    expect(refused.events.at(-1)).toEqual({ ev: 'exit', exit_code: 1, signal: null });
  });

  it('never passes Jupyter’s token on to a command', async () => {
    const client = await host.connect();
    client.start({ cmd: 'env' });
    const { stdout } = await client.closed;
    expect(stdout).toMatch(/^CODE_INTERPRETER_PROCESS_ID=/m);
    expect(stdout).not.toContain('jupyter-token-for-jupyter-only');
  });
});
