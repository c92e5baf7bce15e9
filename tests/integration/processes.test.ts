import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { freePort } from '../helpers/processes.js';
import { TestProcessHost } from '../helpers/process-host.js';

/**
 * POST /processes and its endpoints against the real process host (from dist/): real commands,
 * their real exit codes, signals that reach the tree, and the limit.
 */
describe('processes over HTTP', () => {
  const host = new TestProcessHost();
  let api: FastifyInstance;

  beforeAll(async () => {
    await host.start();
    // No Jupyter behind this app: processes need none (JUPYTER_WAIT_SECONDS=0 keeps it from waiting).
    const config = loadConfig({
      JUPYTER_URL: `http://127.0.0.1:${await freePort()}`,
      JUPYTER_WAIT_SECONDS: '0',
      WORKSPACE_DIR: host.workspace,
      PROCESS_HOST_SOCKET: host.socketPath,
      MAX_PROCESSES: '3',
    });
    api = await buildApp(config);
    await api.ready();
  });
  afterAll(async () => {
    await api.close();
    await host.stop();
  });

  type Event = Record<string, unknown> & { type: string };
  const run = async (payload: Record<string, unknown>): Promise<Event[]> => {
    const answer = await api.inject({ method: 'POST', url: '/processes', payload });
    expect(answer.statusCode, answer.body).toBe(200);
    return answer.body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Event);
  };
  const text = (events: Event[], type: string) =>
    events
      .filter((event) => event.type === type)
      .map((event) => event.text)
      .join('');
  const exitOf = (events: Event[]) => events.find((event) => event.type === 'exit');
  const background = async (payload: Record<string, unknown>) => {
    const answer = await api.inject({ method: 'POST', url: '/processes', payload: { ...payload, background: true } });
    expect(answer.statusCode, answer.body).toBe(202);
    return answer.json<{ process_id: string; pid: number; events_url: string }>();
  };
  const events = async (url: string): Promise<Event[]> =>
    (await api.inject({ method: 'GET', url })).body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Event);
  const alive = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat[stat.lastIndexOf(')') + 2] !== 'Z';
    } catch {
      return false;
    }
  };

  it('streams stdout and stderr, then the exit code', async () => {
    const seen = await run({ command: 'echo hi; echo oops >&2; exit 3' });
    expect(seen[0]).toMatchObject({ type: 'process_started' });
    expect(text(seen, 'stdout')).toBe('hi\n');
    expect(text(seen, 'stderr')).toBe('oops\n');
    expect(exitOf(seen)).toEqual({ type: 'exit', exit_code: 3, signal: null, status: 'exit status 3' });
    expect(seen.at(-1)).toEqual({ type: 'end_of_execution' });
  });

  it('runs cmd with args in cwd with envs, relative to the workspace', async () => {
    mkdirSync(path.join(host.workspace, 'sub'), { recursive: true });
    const seen = await run({ cmd: 'sh', args: ['-c', 'pwd; printf "%s\\n" "$GREETING"'], cwd: 'sub', envs: { GREETING: 'hello there' } });
    expect(text(seen, 'stdout')).toBe(`${path.join(host.workspace, 'sub')}\nhello there\n`);
    const missing = await api.inject({ method: 'POST', url: '/processes', payload: { command: 'true', cwd: 'no/such/dir' } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ code: 'ERR_INVALID_CWD' });
  });

  it("runs as the host's user, without the API's variables", async () => {
    const seen = await run({ command: 'id -u; env' });
    const [uid, ...env] = text(seen, 'stdout').split('\n');
    expect(Number(uid)).toBe(process.getuid!());
    const names = env.map((line) => line.split('=')[0]);
    expect(names).not.toContain('PROCESS_HOST_SOCKET');
    expect(names).not.toContain('ACCESS_TOKEN');
    expect(names).not.toContain('JUPYTER_TOKEN');
  });

  it('kills a command at its timeout and reports a TimeoutError', async () => {
    const started = Date.now();
    const seen = await run({ command: 'sleep 30', timeout: 0.3 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(exitOf(seen)).toMatchObject({ exit_code: null, signal: 'SIGKILL', status: 'signal: killed' });
    expect(seen.at(-2)).toMatchObject({ type: 'error', name: 'TimeoutError' });
  });

  it('runs in the background, re-reads from an index, takes stdin and its close', async () => {
    const { process_id, pid, events_url } = await background({ command: 'echo ready; cat; echo done' });
    expect(alive(pid)).toBe(true);
    const input = await api.inject({ method: 'POST', url: `/processes/${process_id}/input`, payload: { data: 'line one\n' } });
    expect(input.statusCode).toBe(200);
    await api.inject({ method: 'POST', url: `/processes/${process_id}/close-stdin` });
    const all = await events(events_url);
    expect(text(all, 'stdout')).toBe('ready\nline one\ndone\n');
    expect(exitOf(all)).toMatchObject({ exit_code: 0 });
    const tail = await events(`${events_url}?from=${all.length - 2}`);
    expect(tail.map((event) => event.type)).toEqual(['exit', 'end_of_execution']);
  });

  it('signals the whole tree, and DELETE kills and forgets', async () => {
    const { process_id, events_url } = await background({ command: 'sleep 60 & sleep 60 & echo $!; wait' });
    let child = 0;
    for (let i = 0; i < 100 && !child; i++) {
      child = Number(text(await eventsSoFar(process_id), 'stdout').trim());
      if (!child) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(alive(child)).toBe(true);
    await api.inject({ method: 'POST', url: `/processes/${process_id}/signal`, payload: { signal: 'terminate' } });
    const seen = await events(events_url);
    expect(exitOf(seen)).toMatchObject({ signal: 'SIGTERM', status: 'signal: terminated' });
    expect(alive(child)).toBe(false);

    const other = await background({ command: 'sleep 60' });
    const deleted = await api.inject({ method: 'DELETE', url: `/processes/${other.process_id}` });
    expect(deleted.json()).toMatchObject({ state: 'exited' });
    for (let i = 0; i < 100 && alive(other.pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(alive(other.pid)).toBe(false);
    expect((await api.inject({ method: 'GET', url: `/processes/${other.process_id}` })).statusCode).toBe(404);
  });

  it('refuses one process more than MAX_PROCESSES with 429', async () => {
    const started = [
      await background({ command: 'sleep 60' }),
      await background({ command: 'sleep 60' }),
      await background({ command: 'sleep 60' }),
    ];
    const refused = await api.inject({ method: 'POST', url: '/processes', payload: { command: 'true' } });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ code: 'ERR_TOO_MANY_PROCESSES' });
    for (const { process_id } of started) await api.inject({ method: 'DELETE', url: `/processes/${process_id}` });
    expect((await run({ command: 'true' })).at(-1)).toEqual({ type: 'end_of_execution' });
  });

  it('counts commands and terminals in /metrics: started, finished by outcome, running, output bytes', async () => {
    const scrape = async () => {
      const body = (await api.inject({ method: 'GET', url: '/metrics' })).body;
      return (series: string) => Number(new RegExp(`^code_interpreter_${series} (\\S+)$`, 'm').exec(body)?.[1] ?? NaN);
    };
    const before = await scrape();
    await run({ command: 'printf 12345; exit 3' });
    await run({ command: 'exit 1' });
    await run({ command: 'printf abc >&2' });
    const terminal = await background({ command: 'sleep 60', pty: { cols: 80, rows: 24 } });
    const during = await scrape();
    expect(during('commands_running{kind="terminal"}')).toBe(1);
    await api.inject({ method: 'DELETE', url: `/processes/${terminal.process_id}` });
    const after = await scrape();
    const delta = (series: string) => after(series) - before(series);
    expect(delta('commands_started_total{kind="command"}')).toBe(3);
    expect(delta('commands_started_total{kind="terminal"}')).toBe(1);
    expect(delta('commands_finished_total{kind="command",outcome="error"}')).toBe(2);
    expect(delta('commands_finished_total{kind="command",outcome="ok"}')).toBe(1);
    expect(delta('commands_finished_total{kind="terminal",outcome="signal"}')).toBe(1);
    expect(delta('command_output_bytes_total{stream="stdout"}')).toBe(5);
    expect(delta('command_output_bytes_total{stream="stderr"}')).toBe(3);
    expect(after('commands_running{kind="terminal"}')).toBe(0);
  });

  /** What the log holds now, without waiting for the end (the process is still running). */
  async function eventsSoFar(id: string): Promise<Event[]> {
    const process = api.processes.get(id);
    const held: Event[] = [];
    for (let index = process.log.firstIndex; index < process.log.length; index++) held.push(process.log.at(index)!.event as Event);
    return held;
  }
});
