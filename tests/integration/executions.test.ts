import { afterAll, describe, expect, it } from 'vitest';
import { baseUrl, createContext, deleteContext, json, readEvents, request, stdoutOf, type ExecutionEvent } from '../helpers/api.js';
import { startServer } from '../helpers/start-server.js';

interface Info {
  id: string;
  context_id: string;
  state: string;
  outcome?: string;
  event_count: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads an NDJSON stream, handing each event to `onEvent`; keepalives left out. */
async function streamOf(response: Response, onEvent?: (event: ExecutionEvent) => void | Promise<void>): Promise<ExecutionEvent[]> {
  const events: ExecutionEvent[] = [];
  // A handler may still be at work when the stream ends (its request slower than the code):
  // the stream is done once every handler is.
  const handlers: Array<Promise<void>> = [];
  await readEvents(response, (event) => {
    if (event.type === 'keepalive') return;
    events.push(event);
    if (onEvent) handlers.push(Promise.resolve(onEvent(event)));
  });
  await Promise.all(handlers);
  return events;
}

async function background(
  body: Record<string, unknown>,
  base = baseUrl,
): Promise<{ execution_id: string; context_id: string; events_url: string }> {
  const response = await fetch(`${base}/execute`, { method: 'POST', body: JSON.stringify({ ...body, background: true }) });
  expect(response.status).toBe(202);
  return (await response.json()) as { execution_id: string; context_id: string; events_url: string };
}

async function eventsFrom(id: string, from = 0, base = baseUrl): Promise<ExecutionEvent[]> {
  const response = await fetch(`${base}/executions/${id}/events?from=${from}`);
  expect(response.status).toBe(200);
  return (await readEvents(response)).filter((event) => event.type !== 'keepalive');
}

async function infoOf(id: string): Promise<Info> {
  const { status, body } = await json<Info>('GET', `/executions/${id}`);
  expect(status).toBe(200);
  return body;
}

async function waitForState(id: string, state: string): Promise<Info> {
  for (let i = 0; i < 200; i++) {
    const info = await infoOf(id);
    if (info.state === state) return info;
    await sleep(50);
  }
  throw new Error(`execution ${id} never reached ${state}`);
}

describe('executions as resources', () => {
  it('names every execution in a header and in the first event, and reports its state', async () => {
    const response = await request('POST', '/execute', { code: 'print(6 * 7)' });
    const id = response.headers.get('x-execution-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const events = await streamOf(response);
    expect(events[0]).toMatchObject({ type: 'number_of_executions', execution_id: id });
    expect(stdoutOf(events)).toBe('42\n');
    const info = await infoOf(id!);
    expect(info).toMatchObject({ id, state: 'finished', outcome: 'ok', event_count: events.length });
    const { body: list } = await json<Info[]>('GET', '/executions');
    expect(list.map((entry) => entry.id)).toContain(id);
  });

  it('answers input() through POST /executions/{id}/input, twice in a row', async () => {
    const answers = ['Ada', 'Lovelace'];
    let id = '';
    const response = await request('POST', '/execute', {
      code: 'first = input("First: ")\nlast = input("Last: ")\nprint(f"hello {first} {last}")',
      stdin: true,
    });
    id = response.headers.get('x-execution-id')!;
    const prompts: string[] = [];
    const events = await streamOf(response, async (event) => {
      if (event.type !== 'input_request') return;
      prompts.push(event.prompt as string);
      expect(event.password).toBe(false);
      expect((await infoOf(id)).state).toBe('awaiting_input');
      const answer = await json('POST', `/executions/${id}/input`, { value: answers.shift() });
      expect(answer.status).toBe(200);
    });
    expect(prompts).toEqual(['First: ', 'Last: ']);
    expect(stdoutOf(events)).toContain('hello Ada Lovelace\n');
    expect((await infoOf(id)).outcome).toBe('ok');
  });

  it('keeps getpass() answers out of every event and every log line', async () => {
    const server = await startServer({ LOG_LEVEL: 'trace' }, { captureOutput: true });
    try {
      const secret = 'correct-horse-battery-staple';
      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'import getpass\ns = getpass.getpass("Secret: ")\nprint(len(s))', stdin: true }),
      });
      const id = response.headers.get('x-execution-id')!;
      const events = await streamOf(response, async (event) => {
        if (event.type !== 'input_request') return;
        expect(event).toMatchObject({ prompt: 'Secret: ', password: true });
        const answer = await fetch(`${server.baseUrl}/executions/${id}/input`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ value: secret }),
        });
        expect(answer.status).toBe(200);
      });
      expect(stdoutOf(events)).toBe(`${secret.length}\n`);
      const replay = await eventsFrom(id, 0, server.baseUrl);
      expect(JSON.stringify([...events, ...replay])).not.toContain(secret);
      expect(server.output()).toContain('request completed');
      expect(server.output()).not.toContain(secret);
    } finally {
      await server.stop();
    }
  });

  it('refuses input nobody asked for, unknown executions and malformed requests', async () => {
    const response = await request('POST', '/execute', { code: '1' });
    const id = response.headers.get('x-execution-id')!;
    await streamOf(response);
    const notPending = await json<{ code: string }>('POST', `/executions/${id}/input`, { value: 'x' });
    expect(notPending).toMatchObject({ status: 409, body: { code: 'ERR_INPUT_NOT_PENDING' } });
    expect((await json<{ code: string }>('GET', '/executions/no-such-execution')).body.code).toBe('ERR_EXECUTION_NOT_FOUND');
    expect((await json('POST', '/executions/no-such-execution/input', { value: 'x' })).status).toBe(404);
    expect((await json('POST', `/executions/${id}/input`, { value: 42 })).status).toBe(400);
    expect((await request('GET', `/executions/${id}/events?from=-1`)).status).toBe(400);
    expect((await request('GET', `/executions/${id}/events?from=abc`)).status).toBe(400);
  });

  it('names each prompt: an answer naming one that is no longer pending is 409 and never lands in the next prompt', async () => {
    const response = await request('POST', '/execute', {
      code: 'first = input("Password: ")\nsecond = input("Again: ")\nprint(repr(first), repr(second))',
      stdin: true,
    });
    const id = response.headers.get('x-execution-id')!;
    const asked: Array<{ input_id: string; prompt: string }> = [];
    const refusals: unknown[] = [];
    const events = await streamOf(response, async (event) => {
      if (event.type !== 'input_request') return;
      asked.push({ input_id: event.input_id as string, prompt: event.prompt as string });
      if (asked.length === 1) {
        expect((await json('POST', `/executions/${id}/input`, { value: 'hunter2', input_id: event.input_id })).status).toBe(200);
        // The same answer again, as a client that lost the reply would retry it: the first
        // prompt is answered, and the second one (maybe already pending) must not take it.
        refusals.push(await json('POST', `/executions/${id}/input`, { value: 'hunter2', input_id: event.input_id }));
        return;
      }
      refusals.push(await json('POST', `/executions/${id}/input`, { value: 'wrong', input_id: asked[0]!.input_id }));
      // Without an id an answer goes to whichever prompt is pending, as before.
      expect((await json('POST', `/executions/${id}/input`, { value: 'second answer' })).status).toBe(200);
    });
    expect(asked.map((entry) => entry.prompt)).toEqual(['Password: ', 'Again: ']);
    expect(asked[0]!.input_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(asked[1]!.input_id).not.toBe(asked[0]!.input_id);
    expect(refusals).toEqual([
      {
        status: 409,
        body: expect.objectContaining({ code: 'ERR_INPUT_NOT_PENDING', message: expect.stringContaining(asked[0]!.input_id) }),
      },
      {
        status: 409,
        body: expect.objectContaining({ code: 'ERR_INPUT_NOT_PENDING', message: expect.stringContaining('answered already') }),
      },
    ]);
    expect(stdoutOf(events)).toBe("'hunter2' 'second answer'\n");
  });

  it('re-attaching at or past the end of a finished execution gives just its closing event, with 200', async () => {
    const response = await request('POST', '/execute', { code: 'print("done")' });
    const id = response.headers.get('x-execution-id')!;
    const all = await streamOf(response);
    const { event_count: count } = await infoOf(id);
    expect(count).toBe(all.length);
    for (const from of [count - 1, count, count + 1, count + 1000]) {
      const events = await eventsFrom(id, from);
      expect({ from, events }).toEqual({ from, events: [{ type: 'end_of_execution' }] });
    }
    // ...and from just before it, the event before it too.
    expect((await eventsFrom(id, count - 2)).map((event) => event.type)).toEqual([all.at(-2)!.type, 'end_of_execution']);
  });

  it('a reader past the end of a running execution waits for its end, then gets the closing event', async () => {
    const started = await background({ code: 'import time\ntime.sleep(1)\nprint("late")' });
    const events = await eventsFrom(started.execution_id, 500);
    expect(events).toEqual([{ type: 'end_of_execution' }]);
    expect((await infoOf(started.execution_id)).state).toBe('finished');
  });

  it('without stdin, input() fails at once as before', async () => {
    const response = await request('POST', '/execute', { code: 'input("x")' });
    const events = await streamOf(response);
    expect(events.find((event) => event.type === 'error')).toMatchObject({ name: 'StdinNotImplementedError' });
  });

  it('keeps running after the client leaves with on_disconnect "continue", and a re-attached reader gets exactly the rest', async () => {
    const context = await createContext();
    try {
      const controller = new AbortController();
      const response = await fetch(`${baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({
          code: 'import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.25)',
          context_id: context.id,
          on_disconnect: 'continue',
        }),
        signal: controller.signal,
      });
      const id = response.headers.get('x-execution-id')!;
      const held: ExecutionEvent[] = [];
      await readEvents(response, (event) => {
        if (event.type === 'keepalive') return;
        held.push(event);
        if (held.length === 3) controller.abort();
      }).catch(() => undefined);
      expect(held).toHaveLength(3);
      const rest = await eventsFrom(id, held.length);
      const all = [...held, ...rest];
      expect(stdoutOf(all)).toBe('0\n1\n2\n3\n4\n5\n6\n7\n');
      expect(all.at(-1)).toEqual({ type: 'end_of_execution' });
      expect((await infoOf(id)).outcome).toBe('ok');
      // Nothing twice, nothing missing: the re-attached reader started where the first stopped.
      expect(await eventsFrom(id, 0)).toEqual(all);
    } finally {
      await deleteContext(context.id);
    }
  });

  it('interrupts the code when the client leaves by default', async () => {
    const context = await createContext();
    try {
      const controller = new AbortController();
      const response = await fetch(`${baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'import time\nprint("go", flush=True)\ntime.sleep(30)', context_id: context.id }),
        signal: controller.signal,
      });
      const id = response.headers.get('x-execution-id')!;
      await readEvents(response, (event) => event.type === 'stdout' && controller.abort()).catch(() => undefined);
      const info = await waitForState(id, 'finished');
      expect(info.outcome).toBe('abandoned');
    } finally {
      await deleteContext(context.id);
    }
  });

  it('runs in the background: 202 at once, then state and events on request', async () => {
    const started = await background({ code: 'import time\ntime.sleep(0.5)\nprint("done")\n"value"' });
    expect(started.events_url).toBe(`/executions/${started.execution_id}/events`);
    const running = await infoOf(started.execution_id);
    expect(['queued', 'running']).toContain(running.state);
    const finished = await waitForState(started.execution_id, 'finished');
    expect(finished.outcome).toBe('ok');
    const events = await eventsFrom(started.execution_id);
    expect(stdoutOf(events)).toBe('done\n');
    expect(events.find((event) => event.type === 'result')).toMatchObject({ text: 'value' });
    expect(events).toHaveLength(finished.event_count);
  });

  it('serves two readers at once: a reader that does not read holds nobody back', async () => {
    const started = await background({ code: 'import sys\nfor i in range(1000):\n    print(str(i).rjust(8, "0") * 1250, flush=True)' });
    // The slow reader opens its stream and reads nothing while the fast one reads it all.
    const slow = await fetch(`${baseUrl}${started.events_url}`);
    const fast = await eventsFrom(started.execution_id);
    expect(fast.at(-1)).toEqual({ type: 'end_of_execution' });
    expect(stdoutOf(fast).split('\n').filter(Boolean)).toHaveLength(1000);
    const late = (await readEvents(slow)).filter((event) => event.type !== 'keepalive');
    expect(late).toEqual(fast);
  });

  it('interrupts a running execution, and cancels a queued one without touching the kernel', async () => {
    const context = await createContext();
    try {
      const running = await background({ code: 'import time\nprint("a", flush=True)\ntime.sleep(30)', context_id: context.id });
      const queued = await background({ code: 'print("never")', context_id: context.id });
      await waitForState(running.execution_id, 'running');
      expect((await infoOf(queued.execution_id)).state).toBe('queued');

      const cancel = await json<Info>('POST', `/executions/${queued.execution_id}/interrupt`);
      expect(cancel.status).toBe(200);
      const cancelledEvents = await eventsFrom(queued.execution_id);
      expect(cancelledEvents.find((event) => event.type === 'error')).toMatchObject({ name: 'ExecutionCancelled' });
      expect(stdoutOf(cancelledEvents)).toBe('');
      expect((await infoOf(queued.execution_id)).outcome).toBe('cancelled');
      expect((await infoOf(running.execution_id)).state).toBe('running');

      await json('POST', `/executions/${running.execution_id}/interrupt`);
      const events = await eventsFrom(running.execution_id);
      expect(events.find((event) => event.type === 'error')).toMatchObject({ name: 'KeyboardInterrupt' });
      expect((await infoOf(running.execution_id)).outcome).toBe('interrupted');
    } finally {
      await deleteContext(context.id);
    }
  });

  it('an interrupt cancels a pending input, and a pending input counts against the timeout', async () => {
    const context = await createContext();
    try {
      const waiting = await background({ code: 'input("? ")', context_id: context.id, stdin: true });
      await waitForState(waiting.execution_id, 'awaiting_input');
      await json('POST', `/executions/${waiting.execution_id}/interrupt`);
      const events = await eventsFrom(waiting.execution_id);
      expect(events.find((event) => event.type === 'error')).toMatchObject({ name: 'KeyboardInterrupt' });
      expect((await json('POST', `/executions/${waiting.execution_id}/input`, { value: 'late' })).status).toBe(409);

      const timed = await background({ code: 'input("? ")', context_id: context.id, stdin: true, timeout: 1 });
      const timedEvents = await eventsFrom(timed.execution_id);
      expect(timedEvents.find((event) => event.type === 'error')).toMatchObject({ name: 'TimeoutError' });
      expect((await infoOf(timed.execution_id)).outcome).toBe('timeout');
      // The context goes on.
      const after = await background({ code: 'print("still here")', context_id: context.id });
      expect(stdoutOf(await eventsFrom(after.execution_id))).toBe('still here\n');
    } finally {
      await deleteContext(context.id);
    }
  });
});

describe('the bounded event log and retention', () => {
  const servers: Array<Awaited<ReturnType<typeof startServer>>> = [];
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  it('tells a late reader how many events left the buffer, and gives it the rest in order', async () => {
    const server = await startServer({ EXECUTION_BUFFER_BYTES: '2MiB' });
    servers.push(server);
    // 600 flushed prints of ~10 kB: about 6 MB of events through a 2 MiB buffer.
    const started = await background({ code: 'for i in range(600):\n    print(str(i).rjust(10000, "."), flush=True)' }, server.baseUrl);
    let info: Info | undefined;
    for (let i = 0; i < 400; i++) {
      info = (await (await fetch(`${server.baseUrl}/executions/${started.execution_id}`)).json()) as Info;
      if (info.state === 'finished') break;
      await sleep(50);
    }
    expect(info?.state).toBe('finished');
    const events = await eventsFrom(started.execution_id, 0, server.baseUrl);
    expect(events[0]!.type).toBe('events_dropped');
    const dropped = events[0]!.count as number;
    expect(dropped).toBeGreaterThan(100);
    // The dropped count and what follows add up to every event there was.
    expect(dropped + events.length - 1).toBe(info!.event_count);
    const numbers = stdoutOf(events.slice(1))
      .split('\n')
      .filter(Boolean)
      .map((line) => Number(line.replace(/^\.+/, '')));
    expect(numbers.at(-1)).toBe(599);
    expect(numbers).toEqual(numbers.map((_, index) => numbers[0]! + index));
  });

  it('forgets finished executions after EXECUTION_RETENTION and beyond MAX_RETAINED_EXECUTIONS', async () => {
    const server = await startServer({ EXECUTION_RETENTION: '2', MAX_RETAINED_EXECUTIONS: '2' });
    servers.push(server);
    const run = async () => {
      const response = await fetch(`${server.baseUrl}/execute`, { method: 'POST', body: JSON.stringify({ code: '1' }) });
      await readEvents(response);
      return response.headers.get('x-execution-id')!;
    };
    const [first, second, third] = [await run(), await run(), await run()];
    const status = async (id: string) => (await fetch(`${server.baseUrl}/executions/${id}`)).status;
    expect(await status(first)).toBe(404);
    expect(await status(second)).toBe(200);
    expect(await status(third)).toBe(200);
    await sleep(2500);
    expect(await status(third)).toBe(404);
  });
});
