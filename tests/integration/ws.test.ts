import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { baseUrl, createContext, deleteContext, execute, json, mainResult } from '../helpers/api.js';
import { mainResultOf, stdoutOf, WsClient, type Frame } from './ws-client.js';

const created: string[] = [];
const clients: WsClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});
afterAll(async () => {
  await Promise.all(created.map((id) => deleteContext(id)));
});

async function newContext(): Promise<string> {
  const { id } = await createContext();
  created.push(id);
  return id;
}

async function open(options: Parameters<typeof WsClient.open>[0] = {}): Promise<WsClient> {
  const client = await WsClient.open(options);
  clients.push(client);
  return client;
}

const position = (client: WsClient, match: (frame: Frame) => boolean) => client.frames.findIndex(match);

/** A good execute on the socket still works: `1+1` gives 2. */
async function expectStillServes(client: WsClient, requestId: string): Promise<void> {
  const id = await client.execute(requestId, { code: '1+1' });
  const events = await client.events(id);
  expect(mainResultOf(events)?.text).toBe('2');
  expect(events.at(-1)).toEqual({ type: 'end_of_execution', execution_id: id });
}

describe('GET /ws: executions', () => {
  it('runs executions in two contexts at once over one socket, each context in order', async () => {
    const [first, second] = [await newContext(), await newContext()];
    const client = await open();
    // Sent back to back: the first context's second cell must wait for its first, while the
    // other context runs meanwhile.
    client.send({
      type: 'execute',
      request_id: 'a1',
      context_id: first,
      code: 'import time\nprint("a1 start", flush=True)\ntime.sleep(1.5)\nx = 1\nprint("a1 end")',
    });
    client.send({ type: 'execute', request_id: 'b1', context_id: second, code: 'y = 10\nprint("b1")' });
    client.send({ type: 'execute', request_id: 'a2', context_id: first, code: 'x + 1' });
    client.send({ type: 'execute', request_id: 'b2', context_id: second, code: 'y + 1' });

    const accepted = await Promise.all(
      ['a1', 'b1', 'a2', 'b2'].map((id) => client.waitFor((frame) => frame.type === 'accepted' && frame.request_id === id)),
    );
    const [a1, b1, a2, b2] = accepted.map((frame) => frame.execution_id as string) as [string, string, string, string];
    expect(accepted.map((frame) => frame.context_id)).toEqual([first, second, first, second]);
    expect(new Set([a1, b1, a2, b2]).size).toBe(4);

    const [eventsA1, eventsB1, eventsA2, eventsB2] = await Promise.all([a1, b1, a2, b2].map((id) => client.events(id)));
    expect(stdoutOf(eventsA1!)).toBe('a1 start\na1 end\n');
    expect(stdoutOf(eventsB1!)).toBe('b1\n');
    expect(mainResultOf(eventsA2!)?.text).toBe('2');
    expect(mainResultOf(eventsB2!)?.text).toBe('11');
    for (const [id, events] of [
      [a1, eventsA1!],
      [b1, eventsB1!],
      [a2, eventsA2!],
      [b2, eventsB2!],
    ] as const) {
      expect(events[0]).toMatchObject({ type: 'number_of_executions', execution_id: id });
      expect(events.at(-1)).toEqual({ type: 'end_of_execution', execution_id: id });
      expect(events.every((event) => event.execution_id === id)).toBe(true);
    }

    // In order within a context: a2 emitted nothing before a1 ended.
    const endOf = (id: string) => position(client, (frame) => frame.execution_id === id && frame.type === 'end_of_execution');
    const firstEventOf = (id: string) => position(client, (frame) => frame.execution_id === id && frame.type !== 'accepted');
    expect(firstEventOf(a2)).toBeGreaterThan(endOf(a1));
    expect(firstEventOf(b2)).toBeGreaterThan(endOf(b1));
    // In parallel across contexts: the second context was done while the first still slept.
    expect(endOf(b2)).toBeLessThan(endOf(a1));
  });

  it('starts execute frames in the order they were sent, however they name the context', async () => {
    const client = await open();
    client.send({ type: 'execute', request_id: 'probe', language: 'python', code: '1' });
    const contextId = (await client.waitFor((frame) => frame.request_id === 'probe')).context_id as string;
    // The first names its context by language, which takes a lookup; the second by id, which
    // does not: the second must still run second.
    client.send({ type: 'execute', request_id: 'l1', language: 'python', code: 'ordered = [1]' });
    client.send({ type: 'execute', request_id: 'l2', context_id: contextId, code: 'ordered.append(2)\nordered' });
    const second = (await client.waitFor((frame) => frame.request_id === 'l2')).execution_id as string;
    const events = await client.events(second);
    expect(events.filter((event) => event.type === 'error')).toEqual([]);
    expect(mainResultOf(events)?.text).toBe('[1, 2]');
  });

  it('interrupts a running execution on an interrupt frame', async () => {
    const context = await newContext();
    const client = await open();
    const id = await client.execute('long', { context_id: context, code: 'import time\nprint("sleeping", flush=True)\ntime.sleep(60)' });
    await client.waitFor((frame) => frame.execution_id === id && frame.type === 'stdout');
    client.send({ type: 'interrupt', execution_id: id });
    const events = await client.events(id, 20_000);
    expect(events.filter((event) => event.type === 'error').map((event) => event.name)).toEqual(['KeyboardInterrupt']);
    await expectStillServes(client, 'after-interrupt');
  });

  it('round-trips input(): input_request out, an input frame back', async () => {
    const client = await open();
    const id = await client.execute('ask', { code: 'name = input("Name? ")\nprint("hello", name)', stdin: true });
    const asked = await client.waitFor((frame) => frame.execution_id === id && frame.type === 'input_request');
    expect(asked).toMatchObject({ prompt: 'Name? ', password: false });
    client.send({ type: 'input', execution_id: id, value: 'Ada' });
    const events = await client.events(id);
    expect(stdoutOf(events)).toContain('hello Ada');
    expect(events.filter((event) => event.type === 'error')).toEqual([]);

    // Nothing is pending any more: the same code HTTP answers with, and the socket stays open.
    client.send({ type: 'input', request_id: 'late', execution_id: id, value: 'again' });
    const late = await client.waitFor((frame) => frame.request_id === 'late');
    expect(late).toMatchObject({ type: 'request_error', status: 409, code: 'ERR_INPUT_NOT_PENDING', execution_id: id });
    await expectStillServes(client, 'after-input');
  });

  it('attaches to an execution started over HTTP with on_disconnect "continue", from the start', async () => {
    const context = await newContext();
    const controller = new AbortController();
    const response = await fetch(`${baseUrl}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        context_id: context,
        on_disconnect: 'continue',
        code: 'import time\nprint("before", flush=True)\ntime.sleep(1.5)\nprint("after")\n6 * 7',
      }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    // The first line names the execution; then the HTTP client goes away.
    const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let head = '';
    while (!head.includes('\n')) head += new TextDecoder().decode((await reader.read()).value);
    const executionId = (JSON.parse(head.split('\n')[0]!) as { execution_id: string }).execution_id;
    controller.abort();

    const client = await open();
    client.send({ type: 'attach', request_id: 'att', execution_id: executionId, from: 0 });
    // Attaching twice on one socket would double every event.
    client.send({ type: 'attach', request_id: 'again', execution_id: executionId });
    expect(await client.waitFor((frame) => frame.request_id === 'att')).toMatchObject({
      type: 'accepted',
      execution_id: executionId,
      context_id: context,
    });
    expect(await client.waitFor((frame) => frame.request_id === 'again')).toMatchObject({
      type: 'request_error',
      status: 409,
      code: 'ERR_ALREADY_ATTACHED',
    });
    const events = await client.events(executionId);
    expect(stdoutOf(events)).toBe('before\nafter\n');
    expect(mainResultOf(events)?.text).toBe('42');
    expect(events[0]).toMatchObject({ type: 'number_of_executions', execution_id: executionId });

    // Once it has ended, the socket may read it again, from any index.
    client.send({ type: 'attach', request_id: 'replay', execution_id: executionId, from: 1 });
    expect(await client.waitFor((frame) => frame.request_id === 'replay')).toMatchObject({ type: 'accepted' });
    await client.waitFor(
      (frame) =>
        frame.execution_id === executionId &&
        frame.type === 'end_of_execution' &&
        client.frames.indexOf(frame) > client.frames.findIndex((f) => f.request_id === 'replay'),
    );
    const replayed = client.frames.slice(client.frames.findIndex((frame) => frame.request_id === 'replay') + 1);
    expect(replayed.map((frame) => frame.type)).toEqual(events.slice(1).map((frame) => frame.type));
  });

  it('attaching at or past the end of a finished execution gives its closing event, twice in one burst too', async () => {
    const client = await open();
    const id = await client.execute('done', { code: 'print("done")' });
    const events = await client.events(id);
    const count = events.length;
    const attaches = [count, count + 5, count - 1].map((from, index) => ({
      type: 'attach',
      request_id: `end-${index}`,
      execution_id: id,
      from,
    }));
    // One TCP write (the client's socket corked around the three sends): the server reads the
    // frames together, before the first reader has ended.
    const tcp = (client.socket as unknown as { _socket: import('node:net').Socket })._socket;
    tcp.cork();
    for (const attach of attaches) client.send(attach);
    tcp.uncork();
    for (const attach of attaches) {
      expect(await client.waitFor((frame) => frame.request_id === attach.request_id)).toMatchObject({ type: 'accepted', execution_id: id });
    }
    const deadline = Date.now() + 10_000;
    const ends = () => client.frames.filter((frame) => frame.execution_id === id && frame.type === 'end_of_execution').length;
    while (ends() < 1 + attaches.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ends()).toBe(1 + attaches.length);
    const afterRun = client.frames.slice(client.frames.findIndex((frame) => frame.request_id === 'end-0'));
    expect(afterRun.filter((frame) => frame.type !== 'accepted').map((frame) => frame.type)).toEqual([
      'end_of_execution',
      'end_of_execution',
      'end_of_execution',
    ]);
    expect(client.frames.filter((frame) => frame.type === 'request_error')).toEqual([]);
    await expectStillServes(client, 'after-attach-at-end');
  });

  it('answers an input frame naming a prompt that is no longer pending with 409', async () => {
    const client = await open();
    const id = await client.execute('ask2', { code: 'a = input("A? ")\nb = input("B? ")\nprint(a, b)', stdin: true });
    const first = await client.waitFor((frame) => frame.execution_id === id && frame.type === 'input_request');
    client.send({ type: 'input', execution_id: id, input_id: first.input_id, value: 'one' });
    const second = await client.waitFor(
      (frame) => frame.execution_id === id && frame.type === 'input_request' && frame.input_id !== first.input_id,
    );
    client.send({ type: 'input', request_id: 'retry', execution_id: id, input_id: first.input_id, value: 'one' });
    expect(await client.waitFor((frame) => frame.request_id === 'retry')).toMatchObject({
      type: 'request_error',
      status: 409,
      code: 'ERR_INPUT_NOT_PENDING',
    });
    client.send({ type: 'input', execution_id: id, input_id: second.input_id, value: 'two' });
    expect(stdoutOf(await client.events(id))).toBe('one two\n');
  });

  it('interrupts the executions of a socket that closes, and lets "continue" ones run on', async () => {
    const [interrupted, continued] = [await newContext(), await newContext()];
    const client = await open();
    const gone = await client.execute('gone', { context_id: interrupted, code: 'import time\nprint("x", flush=True)\ntime.sleep(60)' });
    const kept = await client.execute('kept', {
      context_id: continued,
      on_disconnect: 'continue',
      code: 'import time\nprint("x", flush=True)\ntime.sleep(2)\nprint("done")',
    });
    await client.waitFor((frame) => frame.execution_id === gone && frame.type === 'stdout');
    await client.waitFor((frame) => frame.execution_id === kept && frame.type === 'stdout');
    client.close();
    await client.waitForClose();

    // The interrupted context takes the next request at once (the sleep had 60 s to go).
    const after = await execute({ context_id: interrupted, code: '"free"' });
    expect(mainResult(after)?.text).toBe('free');
    const info = await json<{ state: string; outcome?: string }>('GET', `/executions/${gone}`);
    expect(info.body).toMatchObject({ state: 'finished', outcome: 'abandoned' });

    const watcher = await open();
    watcher.send({ type: 'attach', execution_id: kept });
    const events = await watcher.events(kept);
    expect(stdoutOf(events)).toBe('x\ndone\n');
  });
});

describe('GET /ws: refused frames', () => {
  it('answers each kind of bad frame with a request_error and keeps serving the socket', async () => {
    const client = await open();
    const refusals: Array<[frame: string | Buffer, expected: Record<string, unknown>]> = [
      ['{"type": "execute", "code": ', { request_id: null, status: 400, code: 'ERR_INVALID_JSON' }],
      [Buffer.from('{"type":"execute","code":"1+1"}'), { request_id: null, status: 400, code: 'ERR_INVALID_FRAME' }],
      ['[1, 2]', { request_id: null, status: 400, code: 'ERR_VALIDATION' }],
      ['{"type": "explode", "request_id": "r-unknown"}', { request_id: 'r-unknown', status: 400, code: 'ERR_INVALID_FRAME' }],
      ['{"request_id": "r-untyped"}', { request_id: 'r-untyped', status: 400, code: 'ERR_INVALID_FRAME' }],
      ['{"type": "execute", "request_id": "r-missing"}', { request_id: 'r-missing', status: 400, code: 'ERR_VALIDATION' }],
      ['{"type": "execute", "request_id": "r-type", "code": 5}', { request_id: 'r-type', status: 400, code: 'ERR_VALIDATION' }],
      [
        '{"type": "execute", "request_id": "r-extra", "code": "1", "cod": "2"}',
        { request_id: 'r-extra', status: 400, code: 'ERR_VALIDATION' },
      ],
      ['{"type": "input", "request_id": "r-input", "value": "x"}', { request_id: 'r-input', status: 400, code: 'ERR_VALIDATION' }],
      [
        JSON.stringify({ type: 'execute', request_id: 'r-long', code: 'x'.repeat(16 * 1024 * 1024 + 1) }),
        { request_id: 'r-long', status: 400, code: 'ERR_VALIDATION' },
      ],
      // Refused by the execution manager, with the codes and statuses HTTP answers with.
      [
        '{"type": "execute", "request_id": "r-both", "code": "1", "context_id": "c", "language": "python"}',
        { request_id: 'r-both', status: 400, code: 'ERR_CONTEXT_AND_LANGUAGE' },
      ],
      [
        '{"type": "execute", "request_id": "r-ctx", "code": "1", "context_id": "no-such-context"}',
        { request_id: 'r-ctx', status: 404, code: 'ERR_CONTEXT_NOT_FOUND' },
      ],
      [
        '{"type": "execute", "request_id": "r-lang", "code": "1", "language": "cobol"}',
        { request_id: 'r-lang', status: 400, code: 'ERR_UNKNOWN_LANGUAGE' },
      ],
      [
        '{"type": "interrupt", "request_id": "r-int", "execution_id": "nope"}',
        { request_id: 'r-int', execution_id: 'nope', status: 404, code: 'ERR_EXECUTION_NOT_FOUND' },
      ],
      [
        '{"type": "attach", "request_id": "r-att", "execution_id": "nope"}',
        { request_id: 'r-att', execution_id: 'nope', status: 404, code: 'ERR_EXECUTION_NOT_FOUND' },
      ],
    ];
    for (const [index, [frame, expected]] of refusals.entries()) {
      const before = client.frames.length;
      client.socket.send(frame, { binary: Buffer.isBuffer(frame) });
      const answer = await client.waitFor((candidate) => client.frames.indexOf(candidate) >= before);
      expect(answer, `frame ${index}: ${String(frame).slice(0, 80)}`).toMatchObject({ type: 'request_error', ...expected });
      expect(answer.message, `frame ${index}`).toEqual(expect.any(String));
      expect((answer.message as string).length).toBeGreaterThan(10);
      await expectStillServes(client, `good-${index}`);
    }
    // The messages say what was wrong.
    const message = (requestId: string) => client.frames.find((frame) => frame.request_id === requestId)?.message;
    expect(message('r-missing')).toBe("execute frame must have required property 'code'");
    expect(message('r-type')).toBe('execute frame/code must be string');
    expect(message('r-extra')).toMatch(/additional properties: 'cod'/);
    expect(message('r-unknown')).toMatch(/"explode".*execute, input, interrupt, attach/);
  });

  it('closes with 1009 and a reason on a frame over the limit, and with 1007 on text that is not UTF-8; other sockets go on', async () => {
    const bystander = await open();
    const oversized = await open();
    oversized.socket.send(Buffer.alloc(33 * 1024 * 1024, 0x20), { binary: false });
    expect(await oversized.waitForClose()).toEqual({ code: 1009, reason: 'Frames must not exceed 33554432 bytes' });

    const garbled = await open();
    garbled.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    expect(await garbled.waitForClose()).toEqual({ code: 1007, reason: 'Text frames must be UTF-8 JSON' });

    await expectStillServes(bystander, 'bystander');
    await expectStillServes(await open(), 'new-socket');
  });
});

describe('GET /ws: keepalive', () => {
  it('pings every KEEPALIVE_INTERVAL and closes a socket that stops answering', async () => {
    const healthy = await open();
    let pings = 0;
    healthy.socket.on('ping', () => pings++);
    const silent = await open({ autoPong: false });
    // The suite's own server pings every second; a server it targets (the container) every 5 s
    // by default: a silent socket goes after two intervals.
    const closed = await silent.waitForClose(25_000);
    expect(closed.code).toBe(1006);
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(healthy.closed).toBeUndefined();
    await expectStillServes(healthy, 'after-pings');
  });
});
