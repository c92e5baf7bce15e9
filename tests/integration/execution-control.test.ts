import { afterAll, describe, expect, it } from 'vitest';
import {
  authHeaders,
  baseUrl,
  createContext,
  deleteContext,
  errorsOf,
  execute,
  interruptAfterStart,
  json,
  mainResult,
  readEvents,
  request,
  stdoutOf,
} from '../helpers/api.js';

const created: string[] = [];
afterAll(async () => {
  await Promise.all(created.map((id) => deleteContext(id)));
});

async function newContext(): Promise<string> {
  const { id } = await createContext();
  created.push(id);
  return id;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('timeouts', () => {
  it('interrupts code that runs too long, reports TimeoutError and keeps the state', async () => {
    const context = await newContext();
    const started = Date.now();
    const events = await execute({ context_id: context, code: 'import time\nkept = 5\ntime.sleep(60)', timeout: 1 });
    expect(Date.now() - started).toBeLessThan(15_000);
    const errors = errorsOf(events);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ name: 'TimeoutError' });
    expect(errors[0]!.value).toMatch(/1 seconds/);
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    expect(mainResult(await execute({ context_id: context, code: 'kept' }))?.text).toBe('5');
  });

  it('restarts a kernel that ignores the interrupt, and says the state was lost', async () => {
    const context = await newContext();
    const events = await execute({
      context_id: context,
      code: 'import signal, time\nlost = 1\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(120)',
      timeout: 1,
    });
    const [error] = errorsOf(events);
    expect(error).toMatchObject({ name: 'TimeoutError' });
    expect(error!.value).toMatch(/restarted/);
    const after = await execute({ context_id: context, code: 'lost' });
    expect(errorsOf(after)[0]?.name).toBe('NameError');
  });
});

describe('interrupting', () => {
  it('POST /contexts/{id}/interrupt ends the running stream with KeyboardInterrupt', async () => {
    const context = await newContext();
    const response = await request('POST', '/execute', { context_id: context, code: 'import time\ntime.sleep(60)' });
    const events = readEvents(response);
    await sleep(1000);
    expect((await json('POST', `/contexts/${context}/interrupt`)).status).toBe(200);
    const received = (await events).filter((event) => event.type !== 'keepalive');
    expect(errorsOf(received)[0]?.name).toBe('KeyboardInterrupt');
    expect(received.at(-1)).toEqual({ type: 'end_of_execution' });
  });

  it('interrupts code the instant it starts without losing the signal or the state', async () => {
    // A kernel ignores SIGINT until it takes a request; one sent earlier would be lost and the
    // kernel restarted after the grace period, its state gone. Each round interrupts a fresh
    // sleep within a few milliseconds of its start.
    const context = await newContext();
    const rounds: string[] = [];
    for (let round = 0; round < 24; round++) {
      await execute({ context_id: context, code: `state = ${round}` });
      const errors = await interruptAfterStart(context, 'import time\ntime.sleep(30)', round % 6);
      const state = mainResult(await execute({ context_id: context, code: 'state' }))?.text as string | undefined;
      rounds.push(`${round}: ${errors.join(',') || 'no error'} state=${state ?? 'none'}`);
    }
    // Interrupted before it began (cancelled, no error) or in it (KeyboardInterrupt); never restarted.
    expect(rounds.filter((line, round) => !new RegExp(`^${round}: (no error|KeyboardInterrupt) state=${round}$`).test(line))).toEqual([]);
  });

  it('ends an execution whose reply the kernel drops, and keeps serving the context', async () => {
    // ipykernel sends no reply when a KeyboardInterrupt is raised in its own code around the
    // user's (an interrupt that lands just before the code starts or after it ends); here the
    // code makes that happen once, after it ran, where no signal can be timed.
    const context = await newContext();
    const code = [
      'kept = "yes"',
      'k = get_ipython().kernel',
      'original = k.finish_metadata',
      'def once(*args, **kwargs):',
      '    k.finish_metadata = original',
      '    raise KeyboardInterrupt',
      'k.finish_metadata = once',
    ].join('\n');
    const started = Date.now();
    const events = await execute({ context_id: context, code });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(errorsOf(events)).toEqual([
      expect.objectContaining({ name: 'ExecutionAborted', value: expect.stringMatching(/without a reply/) }),
    ]);
    expect(mainResult(await execute({ context_id: context, code: 'kept' }))?.text).toBe('yes');
  });

  it('answers 404 to interrupting an unknown context', async () => {
    expect((await json('POST', '/contexts/nope/interrupt')).status).toBe(404);
  });
});

describe('clients that go away', () => {
  it('interrupts the kernel and frees the context for the next request at once', async () => {
    const context = await newContext();
    const controller = new AbortController();
    const response = await fetch(`${baseUrl}/execute`, {
      method: 'POST',
      headers: authHeaders({ 'content-type': 'application/json' }),
      body: JSON.stringify({ context_id: context, code: 'import time\nbefore = 1\ntime.sleep(60)\nafter = 1' }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    await sleep(500);
    controller.abort();
    const started = Date.now();
    const next = await execute({ context_id: context, code: 'print("next", before, "after" in dir())' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(stdoutOf(next)).toBe('next 1 False\n');
  });

  it('survives many abandoned executions in a row', async () => {
    const context = await newContext();
    for (let i = 0; i < 10; i++) {
      const controller = new AbortController();
      const response = await fetch(`${baseUrl}/execute`, {
        method: 'POST',
        headers: authHeaders({ 'content-type': 'application/json' }),
        body: JSON.stringify({ context_id: context, code: `import time\nprint(${i}, flush=True)\ntime.sleep(30)` }),
        signal: controller.signal,
      });
      await response.body!.getReader().read();
      controller.abort();
    }
    const events = await execute({ context_id: context, code: 'print("alive")' });
    expect(stdoutOf(events)).toBe('alive\n');
  });
});

describe('keepalive', () => {
  it('emits keepalive lines during silent stretches, and only there', async () => {
    // Output every 0.4 s, then 6 s of silence: any other line restarts the interval, so no
    // keepalive may come between two ticks, and at least one must fill the silence.
    const response = await request('POST', '/execute', {
      code: 'import time\nfor i in range(8):\n    print("tick", flush=True)\n    time.sleep(0.4)\ntime.sleep(6)\nprint("done")',
    });
    const events = await readEvents(response);
    const ticks = events.flatMap((event, index) => (event.type === 'stdout' && event.text === 'tick\n' ? [index] : []));
    const keepalives = events.flatMap((event, index) => (event.type === 'keepalive' ? [index] : []));
    expect(keepalives.filter((index) => index > ticks[0]! && index < ticks.at(-1)!)).toEqual([]);
    expect(keepalives.filter((index) => index > ticks.at(-1)!).length).toBeGreaterThanOrEqual(1);
    expect(stdoutOf(events)).toBe('tick\n'.repeat(8) + 'done\n');
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
  });
});

describe('output volume', () => {
  it('holds the kernel back while the client does not read, and loses nothing', async () => {
    const context = await newContext();
    // 48 MiB in 1 MiB writes: under the output budget, so a server that buffered it all
    // would let the kernel finish at once.
    const response = await request('POST', '/execute', {
      context_id: context,
      code: 'import sys\nline = "y" * (1024 * 1024 - 1) + "\\n"\nfor _ in range(48):\n    sys.stdout.write(line)\n    sys.stdout.flush()\nprint("tail")',
    });
    const id = response.headers.get('x-execution-id')!;
    await sleep(4000);
    const { body: info } = await json<{ state: string }>('GET', `/executions/${id}`);
    expect(info.state).toBe('running');
    const events = await readEvents(response);
    expect(Buffer.byteLength(stdoutOf(events))).toBe(48 * 1024 * 1024 + 'tail\n'.length);
    expect(events.find((event) => event.type === 'output_truncated')).toBeUndefined();
  });

  it('drops stdout beyond the budget, says how much, and stays responsive to a slow reader', async () => {
    const context = await newContext();
    const response = await request('POST', '/execute', {
      context_id: context,
      // 200 MiB in 1 MiB lines.
      code: 'import sys\nline = "x" * (1024 * 1024 - 1) + "\\n"\nfor _ in range(200):\n    sys.stdout.write(line)\nsys.stdout.flush()\nprint("tail")',
    });
    const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const decoder = new TextDecoder();
    let text = '';
    let stdoutBytes = 0;
    let truncated: Record<string, number> | undefined;
    let last = '';
    for (let reads = 0; ; reads++) {
      // Read slowly for a while: the server must hold back rather than buffer everything.
      if (reads < 10) await sleep(200);
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = text.indexOf('\n')) !== -1) {
        const line = text.slice(0, newline);
        text = text.slice(newline + 1);
        const event = JSON.parse(line) as { type: string; text?: string };
        if (event.type === 'stdout') stdoutBytes += Buffer.byteLength(event.text!);
        if (event.type === 'output_truncated') truncated = event as unknown as Record<string, number>;
        last = event.type;
      }
    }
    expect(last).toBe('end_of_execution');
    expect(truncated).toBeDefined();
    const limit = truncated!.limit_bytes!;
    expect(truncated!.stream_bytes_dropped).toBeGreaterThan(0);
    // Everything the kernel printed is accounted for: read (after the slow start) or dropped.
    expect(stdoutBytes).toBeLessThanOrEqual(limit);
    expect(stdoutBytes + truncated!.stream_bytes_dropped! + 0).toBeGreaterThanOrEqual(200 * 1024 * 1024 - 2 * 1024 * 1024);
    // The context is fine afterwards.
    expect(stdoutOf(await execute({ context_id: context, code: 'print("ok")' }))).toBe('ok\n');
  });
});

describe('queueing', () => {
  it('refuses executions beyond the queue cap with 429 instead of holding them forever', async () => {
    const context = await newContext();
    const running = request('POST', '/execute', { context_id: context, code: 'import time\ntime.sleep(4)' });
    await sleep(300);
    const attempts = await Promise.all(Array.from({ length: 40 }, () => request('POST', '/execute', { context_id: context, code: '1' })));
    const refused = attempts.filter((response) => response.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    // When to try again, as RFC 9110 has it for 429.
    expect(refused[0]!.headers.get('retry-after')).toBe('1');
    const body = (await refused[0]!.json()) as { message: string };
    expect(body.message).toMatch(/waiting/);
    await Promise.all(attempts.filter((response) => response.status === 200).map((response) => response.text()));
    await (await running).text();
  });
});
