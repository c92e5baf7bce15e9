import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CodeInterpreterError,
  ConnectionError,
  ExecutionClient,
  ExecutionError,
  NotFoundError,
  TimeoutError,
  type ExecutionResult,
} from '../../clients/typescript/src/index.js';
import { accessToken, baseUrl, json } from '../helpers/api.js';
import { freePort } from '../helpers/processes.js';
import { startServer } from '../helpers/start-server.js';

const { hostname: host, port } = new URL(baseUrl);
const options = { host, port: Number(port), accessToken: accessToken || null };
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

describe('ExecutionClient', () => {
  const client = new ExecutionClient(options);
  let scratch: string;

  beforeAll(async () => {
    await client.connect();
    scratch = await mkdtemp(path.join(tmpdir(), 'client-execution-'));
  });
  afterAll(async () => {
    await client.disconnect();
    await rm(scratch, { recursive: true, force: true });
  });

  it('creates a context of its own on connect and deletes it on disconnect', async () => {
    const other = new ExecutionClient(options);
    await other.connect();
    const id = other.kernelId;
    expect(id).not.toBe(client.kernelId);
    expect((await json<Array<{ id: string }>>('GET', '/contexts')).body.map((context) => context.id)).toContain(id);
    await other.disconnect();
    expect((await json<Array<{ id: string }>>('GET', '/contexts')).body.map((context) => context.id)).not.toContain(id);
    expect(() => other.kernelId).toThrow(/connect\(\)/);
  });

  it('starts its kernel in cwd, in the language asked for, and saves images in its imagesDir', async () => {
    const imagesDir = path.join(scratch, 'client-images');
    await using inDirectory = await new ExecutionClient({ ...options, cwd: 'client-cwd/deeper', imagesDir }).connect();
    expect((await inDirectory.execute('import os\nprint(os.getcwd())')).text).toMatch(/\/client-cwd\/deeper$/);
    const result = await inDirectory.execute(
      'from IPython.display import Image, display\nimport base64\n' +
        'display(Image(data=base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")))',
    );
    expect(result.imagePaths).toHaveLength(1);
    expect(path.dirname(result.imagePaths![0]!)).toBe(imagesDir);
    await using javascript = await new ExecutionClient({ ...options, language: 'javascript' }).connect();
    expect((await javascript.execute('console.log(6 * 7)')).text).toBe('42');
  });

  it('deletes its context when disposed, after an error too', async () => {
    let id = '';
    await expect(
      (async () => {
        await using disposable = await new ExecutionClient(options).connect();
        id = disposable.kernelId;
        await disposable.execute('1/0');
      })(),
    ).rejects.toBeInstanceOf(ExecutionError);
    expect((await json<Array<{ id: string }>>('GET', '/contexts')).body.map((context) => context.id)).not.toContain(id);
  });

  it('returns the output text, and keeps state between executions', async () => {
    await client.execute('x = 41');
    const result = await client.execute('print("hello")\nx + 1');
    expect(result).toEqual({ text: 'hello\n42', images: [], eventsDropped: 0 });
  });

  it('returns the PNG of every figure, and saves them in imagesDir', async () => {
    const imagesDir = path.join(scratch, 'images');
    const result = await client.execute(
      'import matplotlib.pyplot as plt\nfor i in range(2):\n    plt.figure()\n    plt.plot([1, 2, 3], [i, 2, 1])\n    plt.show()',
      { imagesDir },
    );
    expect(result.images).toHaveLength(2);
    for (const image of result.images) expect([...image.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
    expect(result.imagePaths).toHaveLength(2);
    for (const [index, file] of result.imagePaths!.entries()) {
      expect(path.dirname(file)).toBe(imagesDir);
      expect(Buffer.compare(readFileSync(file), result.images[index]!)).toBe(0);
    }
  });

  it('rejects with ExecutionError for an error in the code', async () => {
    const error = await client.execute('def f():\n    return 1 / 0\nf()').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).toMatchObject({ name: 'ZeroDivisionError', value: 'division by zero' });
    expect((error as ExecutionError).trace).toMatch(/ZeroDivisionError/);
    // The kernel colours its traceback; the calls are there under the colours.
    // eslint-disable-next-line no-control-regex
    expect((error as ExecutionError).trace.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/----> 3 f\(\)/);
  });

  it('rejects with TimeoutError after the time limit, and the kernel is usable afterwards', async () => {
    await client.execute('y = 7');
    const started = Date.now();
    const error = await client.execute('import time\ntime.sleep(30)', { timeout: 1 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect((await client.execute('y')).text).toBe('7');
  });

  it('streams chunks as they come, then gives the aggregated result', async () => {
    const execution = client.submit('import time\nfor i in range(3):\n    print(f"step {i}", flush=True)\n    time.sleep(0.5)');
    const arrivals: Array<{ chunk: string; at: number }> = [];
    for await (const chunk of execution.stream()) arrivals.push({ chunk, at: Date.now() });
    expect(arrivals.map((arrival) => arrival.chunk).join('')).toBe('step 0\nstep 1\nstep 2\n');
    expect(arrivals.length).toBeGreaterThanOrEqual(3);
    // The first chunk came while the code still ran: the last one is about a second later.
    expect(arrivals.at(-1)!.at - arrivals[0]!.at).toBeGreaterThan(700);
    expect(await execution.result()).toEqual({ text: 'step 0\nstep 1\nstep 2', images: [], eventsDropped: 0 });
    expect(execution.id).toMatch(/\S/);
  });

  it('stream(code) yields the chunks and then the result; an error ends it', async () => {
    const items: Array<string | ExecutionResult> = [];
    for await (const item of client.stream('print("a", flush=True)\nprint("b")')) items.push(item);
    expect(items.at(-1)).toEqual({ text: 'a\nb', images: [], eventsDropped: 0 });
    expect(items.slice(0, -1).every((item) => typeof item === 'string')).toBe(true);
    expect((items.slice(0, -1) as string[]).join('')).toBe('a\nb\n');
    const chunks: string[] = [];
    await expect(
      (async () => {
        for await (const item of client.stream('print("before")\nraise ValueError("bad")')) if (typeof item === 'string') chunks.push(item);
      })(),
    ).rejects.toMatchObject({ name: 'ValueError', value: 'bad' });
    expect(chunks).toEqual(['before\n']);
  });

  it('answers input() and getpass() through onInput', async () => {
    const prompts: Array<{ prompt: string; password: boolean }> = [];
    const result = await client.execute(
      'import getpass\nname = input("Name: ")\nsecret = getpass.getpass("Secret: ")\nprint(name, len(secret))',
      {
        onInput: ({ prompt, password }) => {
          prompts.push({ prompt, password });
          return password ? 'hunter2' : 'Ada';
        },
      },
    );
    expect(prompts).toEqual([
      { prompt: 'Name: ', password: false },
      { prompt: 'Secret: ', password: true },
    ]);
    expect(result.text).toContain('Ada 7');
    // Without a handler, input() fails in the code.
    await expect(client.execute('input()')).rejects.toMatchObject({ name: 'StdinNotImplementedError' });
  });

  it('interrupts the kernel, and an execution by its id', async () => {
    const running = client.submit('import time\nprint("started", flush=True)\ntime.sleep(30)');
    for await (const _chunk of running.stream()) break;
    await client.interrupt();
    await expect(running.result()).rejects.toMatchObject({ name: 'KeyboardInterrupt' });

    const second = client.submit('import time\nprint("started", flush=True)\ntime.sleep(30)');
    for await (const _chunk of second.stream()) break;
    expect((await second.interrupt()).id).toBe(second.id);
    await expect(second.result()).rejects.toBeInstanceOf(ExecutionError);
  });

  it('re-attaches to an execution by its id, from any event on', async () => {
    const execution = client.submit('import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.3)\n"done"');
    for await (const _chunk of execution.stream()) break;
    const again = client.attach(execution.id!);
    const [first, second] = await Promise.all([execution.result(), again.result()]);
    expect(second).toEqual(first);
    expect(first.text).toBe('0\n1\n2\n3\ndone');
    // From the event after number_of_executions and the first line: the rest only.
    const rest = await client.attach(execution.id!, { from: 2 }).result();
    expect(rest.text).toBe('1\n2\n3\ndone');
    const error = await client
      .attach('no-such-execution')
      .result()
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ code: 'ERR_EXECUTION_NOT_FOUND', status: 404 });
  });

  it('says how many events a late reader missed once the server let them go', async () => {
    const small = await startServer({ EXECUTION_BUFFER_BYTES: '2MiB' });
    try {
      const late = new ExecutionClient({ host: '127.0.0.1', port: Number(new URL(small.baseUrl).port) });
      // About 6 MB of output through a 2 MiB buffer, in the background: nobody reads it as it comes.
      const started = await fetch(`${small.baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'for i in range(600):\n    print(str(i).rjust(10000, "."), flush=True)', background: true }),
      });
      expect(started.status).toBe(202);
      const { execution_id: id } = (await started.json()) as { execution_id: string };
      for (let i = 0; i < 400; i++) {
        const info = (await (await fetch(`${small.baseUrl}/executions/${id}`)).json()) as { state: string };
        if (info.state === 'finished') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const result = await late.attach(id).result();
      expect(result.eventsDropped).toBeGreaterThan(100);
      expect(result.text.endsWith(`${'599'.padStart(10000, '.')}`)).toBe(true);
      expect(result.text.split('\n').length + result.eventsDropped).toBeGreaterThanOrEqual(600);
      // Read in full as it ran: nothing missing.
      await using whole = await new ExecutionClient({ host: '127.0.0.1', port: Number(new URL(small.baseUrl).port) }).connect();
      expect((await whole.execute('print("all of it")')).eventsDropped).toBe(0);
    } finally {
      await small.stop();
    }
  });

  it('re-attaches by itself when the connection drops mid-stream, losing and repeating nothing', async () => {
    // A proxy in front of the server that cuts the first connection whose answer shows "step 1".
    let cut = false;
    const sockets = new Set<Socket>();
    const proxy: Server = createServer((downstream) => {
      const upstream = connect(Number(port), host);
      sockets.add(downstream).add(upstream);
      downstream.pipe(upstream);
      let seen = '';
      upstream.on('data', (data: Buffer) => {
        if (!cut) {
          seen = (seen + data.toString('latin1')).slice(-4096);
          if (seen.includes('step 1')) {
            cut = true;
            downstream.write(data);
            downstream.destroy();
            upstream.destroy();
            return;
          }
        }
        downstream.write(data);
      });
      upstream.on('end', () => downstream.end());
      for (const socket of [downstream, upstream]) socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const proxied = new ExecutionClient({ ...options, host: '127.0.0.1', port: (proxy.address() as { port: number }).port });
      await proxied.connect();
      try {
        const execution = proxied.submit('import time\nfor i in range(5):\n    print(f"step {i}", flush=True)\n    time.sleep(0.4)');
        const chunks: string[] = [];
        for await (const chunk of execution.stream()) chunks.push(chunk);
        expect(cut).toBe(true);
        expect(chunks.join('')).toBe('step 0\nstep 1\nstep 2\nstep 3\nstep 4\n');
        expect((await execution.result()).text).toBe('step 0\nstep 1\nstep 2\nstep 3\nstep 4');
      } finally {
        await proxied.disconnect();
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('sets env vars for one execution only', async () => {
    const code = 'import os\nprint(os.environ.get("CLIENT_TEST_VAR", "unset"))';
    expect((await client.execute(code, { envVars: { CLIENT_TEST_VAR: 'a value' } })).text).toBe('a value');
    expect((await client.execute(code)).text).toBe('unset');
    const error = await client.execute(code, { envVars: { 'BAD=NAME': 'x' } }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CodeInterpreterError);
    expect(error).toMatchObject({ status: 400 });
  });

  it('restarts the kernel: the state is gone, the id stays', async () => {
    await client.execute('kept = 1');
    const id = client.kernelId;
    await client.restart();
    expect(client.kernelId).toBe(id);
    await expect(client.execute('kept')).rejects.toMatchObject({ name: 'NameError' });
  });

  it('checks its arguments', () => {
    expect(() => client.submit('1', { timeout: 0 })).toThrow(/timeout must be a positive number/);
    expect(() => new ExecutionClient({ port: 0 })).toThrow(/port must be/);
    expect(() => client.attach('x', { from: -1 })).toThrow(/from must be/);
  });

  it('gives up connecting after its retries with a ConnectionError', async () => {
    const unreachable = new ExecutionClient({ port: await freePort() });
    const started = Date.now();
    await expect(unreachable.connect({ retries: 2, retryInterval: 0.1 })).rejects.toBeInstanceOf(ConnectionError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(existsSync(scratch)).toBe(true);
  });
});
