import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProcessManager, type ProcessManagerOptions } from '../../server/processes/manager.js';
import type { ManagedProcess } from '../../server/processes/process.js';
import type { OutputEvent } from '../../server/runs/events.js';
import { FakeProcessHost } from '../helpers/fake-process-host.js';

/** ProcessManager and ManagedProcess over a fake host on a real Unix socket: the protocol as the host speaks it. */

let host: FakeProcessHost;
let managers: ProcessManager[] = [];

beforeEach(async () => {
  host = await new FakeProcessHost().listen();
});

afterEach(async () => {
  await Promise.all(managers.map((manager) => manager.close(100)));
  managers = [];
  await host.close();
});

function manager(options: Partial<ProcessManagerOptions> = {}): ProcessManager {
  const created = new ProcessManager({
    hostSocket: host.socketPath,
    logger: pino({ level: 'silent' }),
    maxProcesses: 8,
    bufferBytes: 1024 * 1024,
    totalBufferBytes: 16 * 1024 * 1024,
    retentionMs: 60_000,
    maxRetained: 100,
    ...options,
  });
  managers.push(created);
  return created;
}

async function events(process: ManagedProcess, from = 0): Promise<OutputEvent[]> {
  const all: OutputEvent[] = [];
  for await (const entry of process.read({ from })) all.push(entry.event);
  return all;
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(5);
  expect(condition()).toBe(true);
}

describe('ProcessManager', () => {
  it('starts a process, and its log holds process_started, its output, exit and end_of_execution', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'echo', args: ['hi', 'there'], envs: { A: '1' }, cwd: 'sub', tag: 't1' });
    expect(process.pid).toBeGreaterThanOrEqual(1000);
    expect(host.processes[0]!.start).toMatchObject({
      op: 'start',
      id: process.id,
      cmd: 'echo',
      args: ['hi', 'there'],
      envs: { A: '1' },
      cwd: 'sub',
      stdin: true,
    });
    const seen = await events(process);
    expect(seen.map((event) => event.type)).toEqual(['process_started', 'stdout', 'exit', 'end_of_execution']);
    expect(seen[0]).toEqual({ type: 'process_started', process_id: process.id, pid: process.pid });
    expect(seen[1]).toMatchObject({ type: 'stdout', text: 'hi there\n' });
    expect(seen[2]).toEqual({ type: 'exit', exit_code: 0, signal: null, status: 'exit status 0' });
    expect(process.info).toMatchObject({ state: 'exited', exit_code: 0, tag: 't1' });
    expect(processes.findByPid(process.pid!)).toBe(process);
    expect(processes.findByTag('t1')).toBe(process);
    expect(processes.get(process.id)).toBe(process);
  });

  it('re-reads a finished process from an index, and a late reader of a trimmed log learns what it missed', async () => {
    const processes = manager({ bufferBytes: 200 });
    host.onStart = (fake) => {
      fake.send({ ev: 'started', pid: host.pid() });
      for (let i = 0; i < 10; i++) fake.output('stdout', `line ${i} ${'x'.repeat(40)}\n`);
      fake.exit(3);
    };
    const process = await processes.start({ cmd: 'chatty' });
    await process.finished;
    const late = await events(process);
    expect(late[0]).toMatchObject({ type: 'events_dropped' });
    expect(late.at(-2)).toEqual({ type: 'exit', exit_code: 3, signal: null, status: 'exit status 3' });
    expect(await events(process, process.log.length)).toEqual([{ type: 'end_of_execution' }]);
  });

  it('sends stdin and closes it; input after that is refused', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'cat' });
    await process.write(Buffer.from('hello\n'), 'stdin');
    await until(() => process.log.length >= 2);
    process.closeStdin();
    await process.finished;
    const seen = await events(process);
    expect(seen[1]).toMatchObject({ type: 'stdout', text: 'hello\n' });
    expect(host.processes[0]!.requests).toEqual([{ op: 'close_stdin' }]);
    await expect(process.write(Buffer.from('more'), 'stdin')).rejects.toMatchObject({ code: 'ERR_PROCESS_INPUT' });
    await expect(process.write(Buffer.from('x'), 'pty')).rejects.toMatchObject({ code: 'ERR_PROCESS_INPUT' });
  });

  it('bounds input the process has not taken yet, and keeps concurrent writes whole and in order', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'sleep' });
    const fake = host.processes[0]!;
    fake.socket.pause(); // a process that reads nothing: the host stops reading its socket
    const MiB = 1024 * 1024;
    const writes = [0, 1, 2, 3].map((n) => process.write(Buffer.alloc(MiB, 65 + n), 'stdin'));
    await expect(process.write(Buffer.alloc(MiB, 90), 'stdin')).rejects.toMatchObject({ code: 'ERR_PROCESS_INPUT' });
    fake.socket.resume();
    await Promise.all(writes);
    await until(() => Buffer.concat(fake.input).length === 4 * MiB);
    const received = Buffer.concat(fake.input);
    for (let n = 0; n < 4; n++) expect(received.subarray(n * MiB, (n + 1) * MiB).every((byte) => byte === 65 + n)).toBe(true);
  });

  it('signals the tree and reports how it ended in Go words', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'sleep', args: ['100'] });
    process.signal('terminate');
    await process.finished;
    expect(host.processes[0]!.requests).toEqual([{ op: 'signal', signal: 'SIGTERM' }]);
    expect((await events(process)).at(-2)).toEqual({ type: 'exit', exit_code: null, signal: 'SIGTERM', status: 'signal: terminated' });
  });

  it('kills a process at its timeout and says so', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'sleep', timeoutMs: 50 });
    expect(host.processes[0]!.start.timeout_ms).toBeGreaterThan(50);
    await process.finished;
    expect(host.processes[0]!.requests).toEqual([{ op: 'signal', signal: 'SIGKILL' }]);
    const seen = await events(process);
    expect(seen.slice(-3).map((event) => event.type)).toEqual(['exit', 'error', 'end_of_execution']);
    expect(seen.at(-2)).toMatchObject({ type: 'error', name: 'TimeoutError' });
  });

  it('refuses one process more than MAX_PROCESSES with 429, and takes one again once a slot is free', async () => {
    const processes = manager({ maxProcesses: 2 });
    const first = await processes.start({ cmd: 'sleep' });
    await processes.start({ cmd: 'sleep' });
    await expect(processes.start({ cmd: 'sleep' })).rejects.toMatchObject({ code: 'ERR_TOO_MANY_PROCESSES', statusCode: 429 });
    expect(host.processes).toHaveLength(2);
    first.signal('kill');
    await first.finished;
    await processes.start({ cmd: 'sleep' });
    expect(processes.runningCount).toBe(2);
  });

  it('turns a refused start into a coded error and frees the slot', async () => {
    const processes = manager({ maxProcesses: 1 });
    await expect(processes.start({ cmd: 'missing-cwd', cwd: '/nope' })).rejects.toMatchObject({ code: 'ERR_INVALID_CWD', statusCode: 400 });
    expect(processes.runningCount).toBe(0);
    expect(processes.list()).toEqual([]);
  });

  it('refuses bad input before anything reaches the host', async () => {
    const processes = manager();
    await expect(processes.start({ cmd: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_REQUEST' });
    await expect(processes.start({ cmd: 'echo', args: ['a\0b'] })).rejects.toMatchObject({ code: 'ERR_INVALID_REQUEST' });
    await expect(processes.start({ cmd: 'echo', envs: { 'A=B': '1' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ENV_VAR' });
    await expect(processes.start({ cmd: 'echo', pty: { cols: 0, rows: 10 } })).rejects.toMatchObject({ code: 'ERR_INVALID_REQUEST' });
    // Within the byte limit as text, beyond a frame once JSON escapes it (six bytes a control character).
    await expect(processes.start({ cmd: 'echo', envs: { A: '\u0001'.repeat(400_000) } })).rejects.toMatchObject({
      code: 'ERR_INVALID_REQUEST',
      message: expect.stringMatching(/once encoded as JSON/) as string,
    });
    expect(host.processes).toHaveLength(0);
    expect(host.connections).toBe(0);
  });

  it('kills a process whose owner goes while the host is still starting it, and refuses its start', async () => {
    const processes = manager();
    // The host takes the start and never answers it.
    host.onStart = () => undefined;
    const starting = processes.start({ cmd: 'sleep', owner: { kind: 'context', id: 'c1' } });
    await until(() => host.processes.length === 1);
    expect(processes.list().map((process) => process.state)).toEqual(['starting']);
    const killed = processes.killOwnedBy({ kind: 'context', id: 'c1' }, 50);
    await expect(starting).rejects.toMatchObject({ code: 'ERR_PROCESS_HOST_UNAVAILABLE' });
    await killed;
    await host.processes[0]!.closed;
    expect(processes.list()).toEqual([]);
    expect(processes.runningCount).toBe(0);
  });

  it('ends a process with ProcessHostLost when the host goes away', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'sleep' });
    host.processes[0]!.socket.destroy();
    await process.finished;
    const seen = await events(process);
    expect(seen.slice(-2)).toMatchObject([{ type: 'error', name: 'ProcessHostLost' }, { type: 'end_of_execution' }]);
    expect(processes.runningCount).toBe(0);
  });

  it("kills an owner's processes and no other's", async () => {
    const processes = manager();
    const mine = await processes.start({ cmd: 'sleep', owner: { kind: 'context', id: 'c1' } });
    const other = await processes.start({ cmd: 'sleep', owner: { kind: 'context', id: 'c2' } });
    await processes.killOwnedBy({ kind: 'context', id: 'c1' });
    expect(mine.state).toBe('exited');
    expect(other.state).toBe('running');
  });

  it('kills a foreground process whose requester goes away, but not one that continues', async () => {
    const processes = manager();
    const killed = await processes.start({ cmd: 'sleep' });
    const kept = await processes.start({ cmd: 'sleep', onDisconnect: 'continue' });
    for (const process of [killed, kept]) {
      const gone = new AbortController();
      const reading = (async () => {
        for await (const entry of process.read({ requester: true, signal: gone.signal })) void entry;
      })();
      await sleep(10);
      gone.abort();
      await reading;
    }
    await killed.finished;
    expect(host.processes[0]!.requests).toEqual([{ op: 'signal', signal: 'SIGKILL' }]);
    expect(kept.state).toBe('running');
  });

  it('pauses the host connection while the requester lags, so the process is held back', async () => {
    const processes = manager({ bufferBytes: 64 * 1024 * 1024, totalBufferBytes: 128 * 1024 * 1024 });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    host.onStart = (fake) => {
      fake.send({ ev: 'started', pid: host.pid() });
      const pump = () => {
        while (written < 32 * 1024 * 1024) {
          written += chunk.length;
          if (!fake.output('stdout', chunk)) return void fake.socket.once('drain', pump);
        }
        fake.exit(0);
      };
      pump();
    };
    const process = await processes.start({ cmd: 'flood' });
    const iterator = process.read({ requester: true });
    await iterator.next();
    await sleep(300);
    // Without the pause the whole 32 MiB would sit in the log by now.
    expect(process.log.bufferedBytes).toBeLessThan(8 * 1024 * 1024);
    expect(written).toBeLessThan(16 * 1024 * 1024);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) void next;
    expect(written).toBe(32 * 1024 * 1024);
  });

  it('kills every process at close and refuses new ones', async () => {
    const processes = manager();
    const a = await processes.start({ cmd: 'sleep' });
    const b = await processes.start({ cmd: 'sleep' });
    await processes.close(1000);
    expect([a.state, b.state]).toEqual(['exited', 'exited']);
    await expect(processes.start({ cmd: 'echo' })).rejects.toMatchObject({ code: 'ERR_SERVER_SHUTTING_DOWN' });
  });

  it('answers 503 when no process host is configured', async () => {
    await expect(manager({ hostSocket: undefined }).start({ cmd: 'echo' })).rejects.toMatchObject({
      code: 'ERR_PROCESS_HOST_UNAVAILABLE',
      statusCode: 503,
    });
  });

  it('forgets finished processes beyond the count cap, oldest first, and after their retention', async () => {
    const notFound = expect.objectContaining({ code: 'ERR_PROCESS_NOT_FOUND' }) as Error;
    const capped = manager({ maxRetained: 1 });
    const first = await capped.start({ cmd: 'echo', args: ['1'] });
    await first.finished;
    const second = await capped.start({ cmd: 'echo', args: ['2'] });
    await second.finished;
    expect(() => capped.get(first.id)).toThrow(notFound);
    expect(capped.get(second.id)).toBe(second);

    const brief = manager({ retentionMs: 30 });
    const short = await brief.start({ cmd: 'echo', args: ['3'] });
    await short.finished;
    expect(brief.get(short.id)).toBe(short);
    await until(() => brief.list().length === 0);
    expect(() => brief.get(short.id)).toThrow(notFound);
    expect(brief.totalBufferedBytes).toBe(0);
  });

  it('forgets a deleted process', async () => {
    const processes = manager();
    const process = await processes.start({ cmd: 'sleep' });
    await processes.remove(process.id);
    expect(() => processes.get(process.id)).toThrow(expect.objectContaining({ code: 'ERR_PROCESS_NOT_FOUND' }) as Error);
    await host.processes[0]!.closed;
  });
});
