import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorsOf, execute, stdoutOf } from '../helpers/api.js';
import { readEvents, type ExecutionEvent } from '../helpers/api.js';
import { PYTHON_KERNEL_ID_CODE } from '../helpers/kernels.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/** Failures that used to wedge a context or hang an execution until its timeout. */
describe('executions that used to hang', () => {
  it('runs 10 MiB of code: every request the API accepts reaches the kernel', async () => {
    const size = 10 * 2 ** 20;
    const events = await execute({ code: `x = "${'a'.repeat(size)}"\nprint(len(x))`, timeout: 60 });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe(`${size}\n`);
  });

  it('sets a 6 MiB environment variable', async () => {
    const size = 6 * 2 ** 20;
    const events = await execute({ code: 'import os\nprint(len(os.environ["BIG"]))', env_vars: { BIG: 'b'.repeat(size) }, timeout: 60 });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe(`${size}\n`);
  });

  it('finishes after code closes sys.stdout', async () => {
    const started = Date.now();
    const events = await execute({ code: 'import sys\nsys.stdout.close()\nprint("still printing")', timeout: 20 });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe('still printing\n');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('rounds a timeout below a millisecond up to one instead of to "no limit"', async () => {
    const events = await execute({ code: 'import time\ntime.sleep(5)', timeout: 0.0001 });
    expect(errorsOf(events)[0]).toMatchObject({ name: 'TimeoutError' });
  });
});

/** These start their own server: they need Jupyter's address or a small output budget. */
describe('kernels and outputs beyond the limits', () => {
  let server: StartedServer;
  beforeAll(async () => {
    server = await startServer({ MAX_OUTPUT_BYTES: '1MiB' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function run(body: Record<string, unknown>): Promise<ExecutionEvent[]> {
    const response = await fetch(`${server.baseUrl}/execute`, { method: 'POST', body: JSON.stringify({ timeout: 60, ...body }) });
    expect(response.status).toBe(200);
    return (await readEvents(response)).filter((event) => event.type !== 'keepalive');
  }

  it('a kernel shut down through Jupyter directly: the next execution ends with KernelDied, the context mends', async () => {
    const context = (await (await fetch(`${server.baseUrl}/contexts`, { method: 'POST' })).json()) as { id: string };
    await run({ context_id: context.id, code: 'x = 1' });
    const jupyter = (path: string, method = 'GET') =>
      fetch(`${server.jupyterUrl}${path}`, { method, headers: { authorization: `token ${server.jupyterToken}` } });
    // The context's kernel, as the kernel itself tells (the pool keeps other kernels busy too).
    const target = await currentKernel();
    expect((await jupyter(`/api/kernels/${target}`, 'DELETE')).status).toBe(204);

    const events = await run({ context_id: context.id, code: 'print(x)' });
    expect(errorsOf(events)[0]).toMatchObject({ name: 'KernelDied' });
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    const after = await run({ context_id: context.id, code: 'print("mended")' });
    expect(stdoutOf(after)).toBe('mended\n');
    expect(await currentKernel()).not.toBe(target);

    expect((await jupyter(`/api/kernels/${await currentKernel()}`, 'DELETE')).status).toBe(204);
    const restart = await fetch(`${server.baseUrl}/contexts/${context.id}/restart`, { method: 'POST' });
    expect(restart.status).toBe(200);
    expect(stdoutOf(await run({ context_id: context.id, code: 'print("restarted")' }))).toBe('restarted\n');

    async function currentKernel(): Promise<string> {
      return stdoutOf(await run({ context_id: context.id, code: PYTHON_KERNEL_ID_CODE })).trim();
    }
  });

  it('counts results against MAX_OUTPUT_BYTES like text', async () => {
    const events = await run({
      code: 'from IPython.display import display, HTML\nfor i in range(3):\n    display(HTML(str(i) * 600_000))',
    });
    expect(events.filter((event) => event.type === 'result')).toHaveLength(1);
    expect(events.find((event) => event.type === 'output_truncated')).toMatchObject({ results_dropped: 2, limit_bytes: 2 ** 20 });
  });

  it('ends an execution whose single output is larger than any execution may output, and keeps the context', async () => {
    const context = (await (await fetch(`${server.baseUrl}/contexts`, { method: 'POST' })).json()) as { id: string };
    await run({ context_id: context.id, code: 'kept = "state"' });
    const events = await run({
      context_id: context.id,
      code: 'from IPython.display import display, HTML\ndisplay(HTML("x" * 20_000_000))',
    });
    expect(errorsOf(events)[0]).toMatchObject({ name: 'OutputTooLarge' });
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    expect(stdoutOf(await run({ context_id: context.id, code: 'print(kept)' }))).toBe('state\n');
  });
});
