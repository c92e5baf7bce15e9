import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../helpers/processes.js';
import { eventually, ProcessesApp } from '../helpers/processes-app.js';
import { WsClient, wsUrl, type Frame } from './ws-client.js';

/**
 * Commands and terminals over GET /ws, against the real process host: several of them on one
 * socket, input, resize, signals, re-attaching from an index, detaching, and what the socket's
 * close does to what it started.
 */
describe('GET /ws: processes', () => {
  const app = new ProcessesApp();
  const clients: WsClient[] = [];

  beforeAll(() => app.start({ MAX_PROCESSES: '6' }));
  afterAll(() => app.stop());
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });

  const open = async () => {
    const client = await WsClient.open({ url: wsUrl(app.baseUrl), headers: {} });
    clients.push(client);
    return client;
  };

  /** Sends `process_start` and resolves with its `accepted` (or throws with the `request_error`). */
  const start = async (client: WsClient, requestId: string, fields: Record<string, unknown>): Promise<Frame> => {
    client.send({ type: 'process_start', request_id: requestId, ...fields });
    const answer = await client.waitFor(
      (frame) => frame.request_id === requestId && (frame.type === 'accepted' || frame.type === 'request_error'),
    );
    if (answer.type !== 'accepted') throw new Error(`process_start ${requestId} refused: ${JSON.stringify(answer)}`);
    return answer;
  };
  const eventsOf = async (client: WsClient, id: string): Promise<Frame[]> => {
    await client.waitFor((frame) => frame.process_id === id && frame.type === 'end_of_execution');
    return client.frames.filter((frame) => frame.process_id === id && !['accepted', 'request_error', 'detached'].includes(frame.type));
  };
  const textOf = (frames: Frame[], type: 'stdout' | 'stderr') =>
    frames
      .filter((frame) => frame.type === type)
      .map((frame) => frame.text)
      .join('');
  const ptyOf = (frames: Frame[]) =>
    Buffer.concat(frames.filter((frame) => frame.type === 'pty').map((frame) => Buffer.from(frame.data as string, 'base64'))).toString();

  it('runs two commands and a terminal on one socket, each event with its process id', async () => {
    const client = await open();
    const [first, second, terminal] = await Promise.all([
      start(client, 'p1', { command: 'echo one; sleep 0.3; echo one-end' }),
      start(client, 'p2', { command: 'echo two >&2; exit 4' }),
      start(client, 't1', { cmd: 'bash', args: ['--norc', '--noprofile'], pty: { cols: 80, rows: 24 } }),
    ]);
    const ids = [first, second, terminal].map((frame) => frame.process_id as string);
    expect(new Set(ids).size).toBe(3);
    expect(first.pid).toEqual(expect.any(Number));

    // The terminal's size, then another one, as the program inside sees it.
    client.send({ type: 'process_input', process_id: ids[2], data: 'stty size\n' });
    await eventually(() => ptyOf(client.frames.filter((frame) => frame.process_id === ids[2])).includes('24 80'), 10_000, 'stty 24 80');
    client.send({ type: 'process_resize', process_id: ids[2], cols: 100, rows: 30 });
    client.send({ type: 'process_input', process_id: ids[2], data: 'stty size; exit 7\n' });

    const [one, two, term] = await Promise.all(ids.map((id) => eventsOf(client, id)));
    expect(one![0]).toEqual({ type: 'process_started', process_id: ids[0], pid: first.pid });
    expect(textOf(one!, 'stdout')).toBe('one\none-end\n');
    expect(one!.find((frame) => frame.type === 'exit')).toEqual({
      type: 'exit',
      exit_code: 0,
      signal: null,
      status: 'exit status 0',
      process_id: ids[0],
    });
    expect(textOf(two!, 'stderr')).toBe('two\n');
    expect(two!.find((frame) => frame.type === 'exit')).toMatchObject({ exit_code: 4 });
    expect(ptyOf(term!)).toContain('30 100');
    expect(term!.find((frame) => frame.type === 'exit')).toMatchObject({ exit_code: 7 });
    for (const [index, events] of [one!, two!, term!].entries()) {
      expect(events.at(-1)).toEqual({ type: 'end_of_execution', process_id: ids[index] });
    }
  });

  it('writes stdin and closes it; signals reach the process', async () => {
    const client = await open();
    const cat = (await start(client, 'cat', { cmd: 'cat' })).process_id as string;
    client.send({ type: 'process_input', process_id: cat, data: 'hello ' });
    client.send({ type: 'process_input', process_id: cat, data_base64: Buffer.from('bytes\n').toString('base64') });
    client.send({ type: 'process_close_stdin', process_id: cat });
    const catEvents = await eventsOf(client, cat);
    expect(textOf(catEvents, 'stdout')).toBe('hello bytes\n');
    expect(catEvents.find((frame) => frame.type === 'exit')).toMatchObject({ exit_code: 0 });

    const sleeper = (await start(client, 'sleep', { command: 'sleep 30' })).process_id as string;
    client.send({ type: 'process_signal', request_id: 'int', process_id: sleeper, signal: 'interrupt' });
    const sleepEvents = await eventsOf(client, sleeper);
    expect(sleepEvents.find((frame) => frame.type === 'exit')).toMatchObject({ exit_code: null, signal: 'SIGINT' });

    // Input to a process that ended is refused with the HTTP door's code, addressed to the frame.
    client.send({ type: 'process_input', request_id: 'late', process_id: cat, data: 'x' });
    expect(await client.waitFor((frame) => frame.request_id === 'late')).toMatchObject({
      type: 'request_error',
      process_id: cat,
      status: 409,
      code: 'ERR_PROCESS_INPUT',
    });
    client.send({ type: 'process_start', request_id: 'both', command: 'true', cmd: 'true' });
    expect(await client.waitFor((frame) => frame.request_id === 'both')).toMatchObject({ type: 'request_error', status: 400 });
  });

  it('detaches, and re-attaches on another socket from an index', async () => {
    const first = await open();
    const accepted = await start(first, 'count', { command: 'for i in 1 2 3; do echo $i; sleep 0.4; done', on_disconnect: 'continue' });
    const id = accepted.process_id as string;
    await first.waitFor((frame) => frame.process_id === id && frame.type === 'stdout');
    first.send({ type: 'process_detach', request_id: 'off', process_id: id });
    await first.waitFor((frame) => frame.type === 'detached' && frame.request_id === 'off');
    const seenBefore = first.frames.filter((frame) => frame.process_id === id).length;

    const second = await open();
    // Index 0 is process_started: from 1, the output comes again from its first line.
    second.send({ type: 'process_attach', request_id: 'again', process_id: id, from: 1 });
    expect(await second.waitFor((frame) => frame.request_id === 'again')).toMatchObject({ type: 'accepted', process_id: id });
    const events = await eventsOf(second, id);
    expect(events[0]).toMatchObject({ type: 'stdout', text: '1\n' });
    expect(textOf(events, 'stdout')).toBe('1\n2\n3\n');
    expect(events.some((frame) => frame.type === 'process_started')).toBe(false);
    // Nothing more came to the socket that detached.
    expect(first.frames.filter((frame) => frame.process_id === id).length).toBe(seenBefore);
  });

  it('kills what the socket started when it closes, detached or not, unless asked to continue', async () => {
    const client = await open();
    const followed = await start(client, 'a', { command: 'sleep 30' });
    const detached = await start(client, 'b', { command: 'sleep 30' });
    const kept = await start(client, 'c', { command: 'sleep 30', on_disconnect: 'continue' });
    client.send({ type: 'process_detach', request_id: 'd', process_id: detached.process_id });
    await client.waitFor((frame) => frame.type === 'detached');
    // Detaching let it run.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(isAlive(detached.pid as number)).toBe(true);

    client.close();
    await eventually(
      () => !isAlive(followed.pid as number) && !isAlive(detached.pid as number),
      10_000,
      'the kill of what the socket started',
    );
    expect(isAlive(kept.pid as number)).toBe(true);
    const deleted = await app.api.inject({ method: 'DELETE', url: `/processes/${kept.process_id as string}` });
    expect(deleted.statusCode).toBe(200);
    expect(isAlive(kept.pid as number)).toBe(false);
  });

  it('pauses the pipe of a process whose socket does not read, and loses nothing', async () => {
    const client = await open();
    const total = 24 * 1024 * 1024;
    const accepted = await start(client, 'flood', { command: `head -c ${total} /dev/zero | tr '\\0' a` });
    const id = accepted.process_id as string;
    client.socket.pause();
    const process = app.api.processes.get(id);
    // Long enough for the whole output many times over, were the pipe not paused.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(process.state).toBe('running');
    // What the socket has not taken stays near the requester's high-water mark (1 MiB).
    expect(process.log.lagBytes).toBeLessThan(2 * 1024 * 1024);
    client.socket.resume();
    const events = await eventsOf(client, id);
    expect(textOf(events, 'stdout').length).toBe(total);
    expect(events.some((frame) => frame.type === 'events_dropped')).toBe(false);
    expect(events.find((frame) => frame.type === 'exit')).toMatchObject({ exit_code: 0 });
  });

  it('refuses a start beyond MAX_PROCESSES with 429, and a second attach to a running process', async () => {
    const client = await open();
    const pids: number[] = [];
    let refusal: Frame | undefined;
    for (let i = 0; i < 10 && !refusal; i++) {
      client.send({ type: 'process_start', request_id: `s${i}`, command: 'sleep 30' });
      const answer = await client.waitFor((frame) => frame.request_id === `s${i}`);
      if (answer.type === 'accepted') pids.push(answer.pid as number);
      else refusal = answer;
    }
    expect(refusal).toMatchObject({ type: 'request_error', status: 429, code: 'ERR_TOO_MANY_PROCESSES' });
    expect(pids.length).toBeLessThanOrEqual(6);

    const first = client.frames.find((frame) => frame.type === 'accepted')!.process_id as string;
    client.send({ type: 'process_attach', request_id: 'twice', process_id: first });
    expect(await client.waitFor((frame) => frame.request_id === 'twice')).toMatchObject({ status: 409, code: 'ERR_ALREADY_ATTACHED' });
    client.close();
    await eventually(() => pids.every((pid) => !isAlive(pid)), 10_000, 'the end of every sleep');
  });
});
