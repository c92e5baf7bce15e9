import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeProcessHost } from '../helpers/fake-process-host.js';
import { startOffline } from '../helpers/offline-app.js';

/** The HTTP door of processes over a fake process host: validation, streaming, control, limits. */

let host: FakeProcessHost;

beforeEach(async () => {
  host = await new FakeProcessHost().listen();
});

afterEach(async () => {
  await host.close();
});

function lines(body: string): Array<Record<string, unknown>> {
  return body
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function app(env: Record<string, string> = {}) {
  return (await startOffline({ PROCESS_HOST_SOCKET: host.socketPath, ...env })).app;
}

describe('POST /processes', () => {
  it('streams a command as NDJSON: process_started, output, exit, end_of_execution', async () => {
    const api = await app();
    const answer = await api.inject({ method: 'POST', url: '/processes', payload: { command: 'echo hi', envs: { A: 'b' }, cwd: 'sub' } });
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['content-type']).toBe('application/x-ndjson');
    expect(host.processes[0]!.start).toMatchObject({ cmd: '/bin/bash', args: ['-c', 'echo hi'], envs: { A: 'b' }, cwd: 'sub' });
    const events = lines(answer.body);
    expect(events.map((event) => event.type)).toEqual(['process_started', 'stdout', 'exit', 'end_of_execution']);
    expect(events[1]).toMatchObject({ text: 'hi\n' });
    expect(events[0]!.process_id).toBe(answer.headers['x-process-id']);
  });

  it('runs cmd with args, and answers 202 with the pid in the background; events?from re-reads', async () => {
    const api = await app();
    const started = await api.inject({ method: 'POST', url: '/processes', payload: { cmd: 'echo', args: ['a', 'b'], background: true } });
    expect(started.statusCode).toBe(202);
    const { process_id, pid, events_url } = started.json<{ process_id: string; pid: number; events_url: string }>();
    expect(pid).toBeGreaterThan(0);
    const all = lines((await api.inject({ method: 'GET', url: events_url })).body);
    expect(all.map((event) => event.type)).toEqual(['process_started', 'stdout', 'exit', 'end_of_execution']);
    expect(all[1]).toMatchObject({ text: 'a b\n' });
    const rest = lines((await api.inject({ method: 'GET', url: `${events_url}?from=2` })).body);
    expect(rest.map((event) => event.type)).toEqual(['exit', 'end_of_execution']);
    const info = (await api.inject({ method: 'GET', url: `/processes/${process_id}` })).json<Record<string, unknown>>();
    expect(info).toMatchObject({ id: process_id, pid, state: 'exited', exit_code: 0, cmd: 'echo', args: ['a', 'b'] });
  });

  it('refuses bad requests with a clear 400', async () => {
    const api = await app();
    const cases = [
      {},
      { command: 'ls', cmd: 'ls' },
      { command: 'ls', args: ['-l'] },
      { command: 'ls', pty: { cols: 0, rows: 1 } },
      { command: 'ls', envs: { 'A=B': '1' } },
      { command: 'ls', timeout: -1 },
    ];
    for (const payload of cases) {
      const answer = await api.inject({ method: 'POST', url: '/processes', payload });
      expect(answer.statusCode, JSON.stringify(payload)).toBe(400);
    }
    expect(host.processes).toHaveLength(0);
  });

  it('answers 429 ERR_TOO_MANY_PROCESSES past MAX_PROCESSES', async () => {
    const api = await app({ MAX_PROCESSES: '1' });
    expect((await api.inject({ method: 'POST', url: '/processes', payload: { cmd: 'sleep', background: true } })).statusCode).toBe(202);
    const refused = await api.inject({ method: 'POST', url: '/processes', payload: { cmd: 'sleep', background: true } });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ code: 'ERR_TOO_MANY_PROCESSES' });
  });

  it('answers 503 without a process host', async () => {
    const api = (await startOffline()).app;
    const answer = await api.inject({ method: 'POST', url: '/processes', payload: { command: 'ls' } });
    expect(answer.statusCode).toBe(503);
    expect(answer.json()).toMatchObject({ code: 'ERR_PROCESS_HOST_UNAVAILABLE' });
  });
});

describe('controlling a process', () => {
  it('takes input, closes stdin, and refuses input after', async () => {
    const api = await app();
    const { process_id } = (await api.inject({ method: 'POST', url: '/processes', payload: { cmd: 'cat', background: true } })).json<{
      process_id: string;
    }>();
    expect((await api.inject({ method: 'POST', url: `/processes/${process_id}/input`, payload: { data: 'hi\n' } })).statusCode).toBe(200);
    expect(
      (
        await api.inject({
          method: 'POST',
          url: `/processes/${process_id}/input`,
          payload: { data_base64: Buffer.from('yo').toString('base64') },
        })
      ).statusCode,
    ).toBe(200);
    expect((await api.inject({ method: 'POST', url: `/processes/${process_id}/input`, payload: {} })).statusCode).toBe(400);
    expect((await api.inject({ method: 'POST', url: `/processes/${process_id}/close-stdin` })).statusCode).toBe(200);
    const events = lines((await api.inject({ method: 'GET', url: `/processes/${process_id}/events` })).body);
    expect(events.filter((event) => event.type === 'stdout').map((event) => event.text)).toEqual(['hi\n', 'yo']);
    const late = await api.inject({ method: 'POST', url: `/processes/${process_id}/input`, payload: { data: 'x' } });
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ code: 'ERR_PROCESS_INPUT' });
    const resize = await api.inject({ method: 'POST', url: `/processes/${process_id}/resize`, payload: { cols: 80, rows: 24 } });
    expect(resize.json()).toMatchObject({ code: 'ERR_PROCESS_INPUT' });
  });

  it('signals the tree, lists processes, and DELETE kills and forgets', async () => {
    const api = await app();
    const start = async (tag: string) =>
      (await api.inject({ method: 'POST', url: '/processes', payload: { cmd: 'sleep', args: ['9'], tag, background: true } })).json<{
        process_id: string;
      }>().process_id;
    const a = await start('a');
    const b = await start('b');
    const listed = (await api.inject({ method: 'GET', url: '/processes?running=true' })).json<Array<{ id: string; tag: string }>>();
    expect(listed.map((info) => info.tag)).toEqual(['b', 'a']);
    expect((await api.inject({ method: 'POST', url: `/processes/${a}/signal`, payload: { signal: 'interrupt' } })).statusCode).toBe(200);
    const events = lines((await api.inject({ method: 'GET', url: `/processes/${a}/events` })).body);
    expect(events.at(-2)).toEqual({ type: 'exit', exit_code: null, signal: 'SIGINT', status: 'signal: interrupt' });
    expect((await api.inject({ method: 'POST', url: `/processes/${a}/signal`, payload: { signal: 'HUP' } })).statusCode).toBe(400);

    const deleted = await api.inject({ method: 'DELETE', url: `/processes/${b}` });
    expect(deleted.json()).toMatchObject({ id: b, state: 'exited' });
    expect(host.processes[1]!.requests).toEqual([{ op: 'signal', signal: 'SIGKILL' }]);
    expect((await api.inject({ method: 'GET', url: `/processes/${b}` })).json()).toMatchObject({ code: 'ERR_PROCESS_NOT_FOUND' });
    expect((await api.inject({ method: 'GET', url: '/processes' })).json<unknown[]>()).toHaveLength(1);
  });
});
