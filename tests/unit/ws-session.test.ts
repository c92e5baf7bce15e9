import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ContextNotFoundError } from '../../server/errors.js';
import { ProcessManager } from '../../server/processes/manager.js';
import { SOCKET_HIGH_WATER_BYTES } from '../../server/transports/ws/sender.js';
import { SocketSession } from '../../server/transports/ws/session.js';
import { WorkspaceWatches } from '../../server/workspace/watches.js';
import { Workspace } from '../../server/workspace/workspace.js';
import { FakeExecution, FakeExecutionManager, recordingLogger } from '../helpers/fake-executions.js';

/**
 * The WebSocket session between a real socket pair on 127.0.0.1 and a fake execution manager:
 * frames in, manager calls and events out, refusals, bounds. The integration suite runs the
 * same door against real kernels.
 */

type Frame = Record<string, unknown>;

interface Opened {
  client: WebSocket;
  manager: FakeExecutionManager;
  log: ReturnType<typeof recordingLogger>;
  frames: Frame[];
  /** The server's end of the socket. */
  serverSide: () => WebSocket;
  /** Resolves with the first frame received (from now on, or already) that matches. */
  next: (match: (frame: Frame) => boolean) => Promise<Frame>;
}

const servers: Server[] = [];
const clients: WebSocket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function open(options: { keepaliveIntervalMs?: number } = {}): Promise<Opened> {
  const manager = new FakeExecutionManager();
  const log = recordingLogger();
  const server = createServer();
  servers.push(server);
  const wss = new WebSocketServer({ server });
  let serverSocket: WebSocket | undefined;
  wss.on('connection', (socket, request) => {
    serverSocket = socket;
    new SocketSession(socket, request.socket, {
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
      watches: new WorkspaceWatches(new Workspace(tmpdir()), { maxWatches: 1, maxDirectories: 1, maxQueuedEvents: 1 }),
      findContext: (id) => {
        throw new ContextNotFoundError(id);
      },
      log,
      socketId: 'socket-1',
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 0,
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  clients.push(client);
  const frames: Frame[] = [];
  const waiters: Array<{ match: (frame: Frame) => boolean; resolve: (frame: Frame) => void }> = [];
  client.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as Frame;
    frames.push(frame);
    for (const waiter of waiters.filter((candidate) => candidate.match(frame))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(frame);
    }
  });
  await once(client, 'open');
  const next = (match: (frame: Frame) => boolean) =>
    new Promise<Frame>((resolve) => {
      const seen = frames.find(match);
      if (seen) resolve(seen);
      else waiters.push({ match, resolve });
    });
  return { client, manager, log, frames, serverSide: () => serverSocket!, next };
}

const send = (client: WebSocket, frame: Frame | string) => client.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
const ofType = (type: string, requestId?: string) => (frame: Frame) =>
  frame.type === type && (requestId === undefined || frame.request_id === requestId);

describe('the WebSocket session', () => {
  it('starts an execution from an execute frame and sends its events with its id, as the requester', async () => {
    const { client, manager, next, frames } = await open();
    send(client, {
      type: 'execute',
      request_id: 'r1',
      code: 'print(1)',
      language: 'python',
      timeout: 5,
      env_vars: { A: 'b' },
      stdin: true,
      on_disconnect: 'continue',
      stats: true,
    });
    expect(await next(ofType('accepted', 'r1'))).toEqual({
      type: 'accepted',
      request_id: 'r1',
      execution_id: 'exec-1',
      context_id: 'ctx-1',
    });
    expect(manager.started).toEqual([
      {
        code: 'print(1)',
        contextId: undefined,
        language: 'python',
        envVars: { A: 'b' },
        timeoutSeconds: 5,
        stdin: true,
        onDisconnect: 'continue',
        stats: true,
      },
    ]);
    manager
      .get('exec-1')
      .push({ type: 'stdout', text: '1\n' }, { type: 'number_of_executions', execution_count: 3, execution_id: 'exec-1' })
      .end();
    await next(ofType('end_of_execution'));
    expect(manager.get('exec-1').reads).toMatchObject([{ from: 0, requester: true }]);
    expect(frames.filter((frame) => frame.type !== 'accepted')).toEqual([
      { type: 'stdout', text: '1\n', execution_id: 'exec-1' },
      { type: 'number_of_executions', execution_count: 3, execution_id: 'exec-1' },
      { type: 'end_of_execution', execution_id: 'exec-1' },
    ]);
  });

  it('starts execute frames one after the other, in the order they came', async () => {
    const { client, manager, next } = await open();
    const release: Array<() => void> = [];
    manager.onStart = async (request) => {
      await new Promise<void>((resolve) => release.push(resolve));
      return manager.add(new FakeExecution(`exec-${request.code}`));
    };
    send(client, { type: 'execute', request_id: 'a', code: 'a' });
    send(client, { type: 'execute', request_id: 'b', code: 'b' });
    await until(() => release.length === 1);
    // The second waits for the first to be started, however long that takes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(manager.started.map((request) => request.code)).toEqual(['a']);
    release[0]!();
    await next(ofType('accepted', 'a'));
    await until(() => release.length === 2);
    release[1]!();
    expect(await next(ofType('accepted', 'b'))).toMatchObject({ execution_id: 'exec-b' });
  });

  it('answers a frame it cannot act on with request_error and the code HTTP would give, and stays open', async () => {
    const { client, manager, next, frames } = await open();
    send(client, 'not json');
    client.send(Buffer.from('{"type":"execute"}'), { binary: true });
    send(client, { type: 'shout', request_id: 'r2' });
    send(client, { type: 'execute', request_id: 'r3' });
    send(client, { type: 'input', request_id: 'r4', execution_id: 'nope', value: 'x' });
    await next(ofType('request_error', 'r4'));
    const errors = frames.filter(ofType('request_error')).map(({ request_id, status, code }) => ({ request_id, status, code }));
    expect(errors).toEqual([
      { request_id: null, status: 400, code: 'ERR_INVALID_JSON' },
      { request_id: null, status: 400, code: 'ERR_INVALID_FRAME' },
      { request_id: 'r2', status: 400, code: 'ERR_INVALID_FRAME' },
      { request_id: 'r3', status: 400, code: 'ERR_VALIDATION' },
      { request_id: 'r4', status: 404, code: 'ERR_EXECUTION_NOT_FOUND' },
    ]);
    expect(frames.find(ofType('request_error', 'r3'))?.message).toBe("execute frame must have required property 'code'");
    expect(frames.find(ofType('request_error', 'r4'))?.execution_id).toBe('nope');
    expect(manager.started).toEqual([]);
    send(client, { type: 'execute', request_id: 'r5', code: '1' });
    await next(ofType('accepted', 'r5'));
  });

  it("answers the manager's refusals with their code, and its failures with ERR_INTERNAL alone", async () => {
    const { client, manager, next, log } = await open();
    manager.onStart = async (request) => {
      if (request.contextId === 'gone') throw new ContextNotFoundError('gone');
      throw Object.assign(new Error('secret detail'), { code: 'ERR_INVALID_ARG_TYPE' });
    };
    send(client, { type: 'execute', request_id: 'r1', code: '1', context_id: 'gone' });
    send(client, { type: 'execute', request_id: 'r2', code: '1' });
    expect(await next(ofType('request_error', 'r1'))).toEqual({
      type: 'request_error',
      request_id: 'r1',
      status: 404,
      code: 'ERR_CONTEXT_NOT_FOUND',
      message: 'Context gone not found',
    });
    expect(await next(ofType('request_error', 'r2'))).toEqual({
      type: 'request_error',
      request_id: 'r2',
      status: 500,
      code: 'ERR_INTERNAL',
      message: 'Internal server error (request id socket-1)',
    });
    expect(log.lines.filter((line) => line.level === 'error').map((line) => line.message)).toEqual(['websocket request failed']);
  });

  it('hands input and interrupt frames to the execution they name', async () => {
    const { client, manager, next } = await open();
    const execution = manager.add(new FakeExecution('exec-9'));
    execution.waitingForInput = true;
    send(client, { type: 'input', request_id: 'i1', execution_id: 'exec-9', value: 'Ada', input_id: 'p1' });
    send(client, { type: 'interrupt', request_id: 'x1', execution_id: 'exec-9' });
    // Answered already: the execution refuses, and so does the session.
    send(client, { type: 'input', request_id: 'i2', execution_id: 'exec-9', value: 'again' });
    expect(await next(ofType('request_error', 'i2'))).toMatchObject({ status: 409, code: 'ERR_INPUT_NOT_PENDING', execution_id: 'exec-9' });
    expect(execution.inputs).toEqual([{ value: 'Ada', inputId: 'p1' }]);
    expect(execution.interrupts).toBe(1);
  });

  it('attaches to an execution from an index, not as its requester, and refuses a second reader on one socket', async () => {
    const { client, manager, next } = await open();
    const execution = manager.add(new FakeExecution('exec-7').push({ type: 'stdout', text: 'a' }, { type: 'stdout', text: 'b' }));
    send(client, { type: 'attach', request_id: 'a1', execution_id: 'exec-7', from: 1 });
    await next(ofType('accepted', 'a1'));
    send(client, { type: 'attach', request_id: 'a2', execution_id: 'exec-7' });
    expect(await next(ofType('request_error', 'a2'))).toMatchObject({ status: 409, code: 'ERR_ALREADY_ATTACHED' });
    expect(await next(ofType('stdout'))).toEqual({ type: 'stdout', text: 'b', execution_id: 'exec-7' });
    expect(execution.reads).toMatchObject([{ from: 1, requester: false }]);
  });

  it('stops every reader when the socket closes, which is how an execution learns its requester left', async () => {
    const { client, manager, next, log } = await open();
    send(client, { type: 'execute', request_id: 'r1', code: 'while True: pass' });
    await next(ofType('accepted', 'r1'));
    const read = manager.get('exec-1').reads[0]!;
    expect(read.signal?.aborted).toBe(false);
    client.close();
    await until(() => read.signal?.aborted === true);
    await until(() => log.lines.some((line) => line.message === 'websocket closed'));
  });

  it('takes no more events from an execution while the client does not read, and all of them once it does', async () => {
    const { client, manager, next, frames } = await open();
    send(client, { type: 'execute', request_id: 'r1', code: 'flood' });
    await next(ofType('accepted', 'r1'));
    const execution = manager.get('exec-1');
    // The client stops reading: the kernel's side of its TCP connection fills up.
    (client as unknown as { _socket: Socket })._socket.pause();
    const text = 'x'.repeat(64 * 1024);
    const count = 400; // 25 MiB of output
    for (let i = 0; i < count; i++) execution.push({ type: 'stdout', text });
    execution.end();
    await until(() => execution.pulled > 0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pulledWhilePaused = execution.pulled;
    const pulledBytes = pulledWhilePaused * text.length;
    console.log(`paused reader: ${pulledWhilePaused} of ${count + 1} events pulled (${(pulledBytes / 2 ** 20).toFixed(1)} MiB)`);
    // The socket's buffer, the kernel's buffers in between, and one event more: nowhere near all.
    expect(pulledBytes).toBeLessThan(SOCKET_HIGH_WATER_BYTES + 16 * 2 ** 20);
    expect(pulledWhilePaused).toBeLessThan(count);
    (client as unknown as { _socket: Socket })._socket.resume();
    await next(ofType('end_of_execution'));
    expect(frames.filter(ofType('stdout'))).toHaveLength(count);
  });

  it('closes a socket that keeps sending frames without reading the answers', async () => {
    const { client, manager, next, log, serverSide } = await open();
    send(client, { type: 'execute', request_id: 'r1', code: 'flood' });
    await next(ofType('accepted', 'r1'));
    (client as unknown as { _socket: Socket })._socket.pause();
    const execution = manager.get('exec-1');
    for (let i = 0; i < 400; i++) execution.push({ type: 'stdout', text: 'x'.repeat(64 * 1024) });
    await until(() => serverSide().bufferedAmount > SOCKET_HIGH_WATER_BYTES);
    // Each refused frame is answered, and the answers pile up behind the events.
    for (let i = 0; i < 2000 && serverSide().readyState === WebSocket.OPEN; i++) {
      send(client, { type: 'shout', request_id: `r${i}` });
      if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await until(() => serverSide().readyState === WebSocket.CLOSED);
    expect(log.lines.map((line) => line.message)).toContain('websocket closed: the client sends frames but does not read the answers');
  });

  it('closes a socket whose peer stops answering pings', async () => {
    const { client, log, serverSide } = await open({ keepaliveIntervalMs: 50 });
    (client as unknown as { _socket: Socket })._socket.pause();
    await until(() => serverSide().readyState === WebSocket.CLOSED);
    expect(log.lines.map((line) => line.message)).toContain('websocket closed: no answer to ping');
  });

  it('keeps a socket whose peer answers pings', async () => {
    const { serverSide } = await open({ keepaliveIntervalMs: 50 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(serverSide().readyState).toBe(WebSocket.OPEN);
  });
});

async function until(condition: () => boolean, timeoutMs = 4_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the WebSocket session: processes', () => {
  it('refuses process frames with the codes of the HTTP door, addressed to the process named', async () => {
    const { client, next } = await open();
    // This session's process manager has no host: a start is refused, not thrown.
    send(client, { type: 'process_start', request_id: 's', command: 'true' });
    expect(await next(ofType('request_error', 's'))).toMatchObject({ status: 503, code: 'ERR_PROCESS_HOST_UNAVAILABLE' });
    send(client, { type: 'process_start', request_id: 'c', command: 'true', context_id: 'nope' });
    expect(await next(ofType('request_error', 'c'))).toMatchObject({ status: 404, code: 'ERR_CONTEXT_NOT_FOUND' });
    send(client, { type: 'process_start', request_id: 'b', command: 'true', background: true });
    expect(await next(ofType('request_error', 'b'))).toMatchObject({ status: 400, code: 'ERR_VALIDATION' });
    const fields: Record<string, Frame> = {
      process_input: { data: 'x' },
      process_close_stdin: {},
      process_signal: { signal: 'kill' },
      process_resize: { cols: 1, rows: 1 },
      process_attach: { from: 0 },
      process_detach: {},
    };
    for (const [type, extra] of Object.entries(fields)) {
      send(client, { type, request_id: type, process_id: 'p-1', ...extra });
      expect(await next(ofType('request_error', type)), type).toMatchObject({
        process_id: 'p-1',
        status: 404,
        code: 'ERR_PROCESS_NOT_FOUND',
      });
    }
  });
});
