import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  authHeaders,
  baseUrl,
  createContext,
  deleteContext,
  errorsOf,
  execute,
  json,
  readEvents,
  request,
  type ExecutionEvent,
} from '../helpers/api.js';
import { changes, key, parseSamples, type Samples } from '../helpers/prometheus.js';
import { startServer } from '../helpers/start-server.js';
import { WsClient } from './ws-client.js';

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function scrape(base = baseUrl): Promise<Samples> {
  const response = await fetch(`${base}/metrics`, { headers: base === baseUrl ? authHeaders() : {} });
  expect(response.status).toBe(200);
  return parseSamples(await response.text());
}

/** The moves of the counters and gauges a workload is meant to move (not timings, not Node's own). */
function moved(before: Samples, after: Samples): Record<string, number> {
  const watched = [
    'code_interpreter_executions_started_total',
    'code_interpreter_executions_finished_total',
    'code_interpreter_executions_running',
    'code_interpreter_executions_queued',
    'code_interpreter_contexts',
    'code_interpreter_kernel_',
    'code_interpreter_output_',
    'code_interpreter_file_bytes_total',
  ];
  const all = changes(before, after, 'code_interpreter_');
  return Object.fromEntries(Object.entries(all).filter(([name]) => watched.some((prefix) => name.startsWith(prefix))));
}

/** The sum of a histogram's `_count` over its series whose labels contain `labels`. */
function histogramCount(samples: Samples, name: string, labels: string): number {
  let total = 0;
  for (const [series, value] of samples) if (series.startsWith(`${name}_count{`) && series.includes(labels)) total += value;
  return total;
}

const python = { language: 'python' };
const poolSize = key('code_interpreter_kernel_pool_size', python);

/**
 * Waits until the kernel pool (if the server keeps one for Python: KERNEL_POOL) holds a ready
 * kernel, so that a workload's hand-outs are hits and its refills are over when it is measured.
 */
async function poolSettled(): Promise<boolean> {
  for (let i = 0; i < 600; i++) {
    const size = (await scrape()).get(poolSize);
    if (size === undefined) return false;
    if (size >= 1) return true;
    await sleep(100);
  }
  throw new Error('the kernel pool never filled');
}
const finished = (outcome: string) => key('code_interpreter_executions_finished_total', { ...python, outcome });

async function background(body: Record<string, unknown>): Promise<string> {
  const response = await request('POST', '/execute', { ...body, background: true });
  expect(response.status).toBe(202);
  return ((await response.json()) as { execution_id: string }).execution_id;
}

async function waitForState(id: string, state: string): Promise<{ state: string; outcome?: string }> {
  for (let i = 0; i < 400; i++) {
    const { body } = await json<{ state: string; outcome?: string }>('GET', `/executions/${id}`);
    if (body.state === state) return body;
    await sleep(50);
  }
  throw new Error(`execution ${id} never reached ${state}`);
}

describe('metrics after a known workload', () => {
  // The default context exists (it is made in the background at start-up), so that its
  // creation is not mistaken for part of the workload.
  beforeAll(async () => {
    await execute({ code: '1' });
  });

  it('move by exactly what happened: ok, error, timeout, interrupt, cancel, abandon, a killed kernel, a restart, files', async () => {
    const pooled = await poolSettled();
    const before = await scrape();
    const context = await createContext();
    const on = { context_id: context.id };
    try {
      // ok, with stdout and stderr (é is two bytes in UTF-8)
      await execute({ ...on, code: 'import sys\nprint("hello")\nsys.stderr.write("é\\n")' });
      // error
      expect(errorsOf(await execute({ ...on, code: '1/0' }))[0]?.name).toBe('ZeroDivisionError');
      // timeout
      expect(errorsOf(await execute({ ...on, code: 'import time\ntime.sleep(10)', timeout: 0.5 }))[0]?.name).toBe('TimeoutError');

      // interrupted while running; cancelled while queued behind it
      const running = await background({ ...on, code: 'import time\ntime.sleep(30)' });
      await waitForState(running, 'running');
      const queued = await background({ ...on, code: 'print("never")' });
      const during = await scrape();
      expect(moved(before, during)).toMatchObject({
        [key('code_interpreter_executions_running', python)]: 1,
        [key('code_interpreter_executions_queued', python)]: 1,
        [key('code_interpreter_contexts', python)]: 1,
      });
      expect((await json('POST', `/executions/${queued}/interrupt`)).status).toBe(200);
      expect((await waitForState(queued, 'finished')).outcome).toBe('cancelled');
      expect((await json('POST', `/executions/${running}/interrupt`)).status).toBe(200);
      expect((await waitForState(running, 'finished')).outcome).toBe('interrupted');

      // abandoned: the client goes away mid-run
      const client = new AbortController();
      const response = await fetch(`${baseUrl}/execute`, {
        method: 'POST',
        headers: authHeaders({ 'content-type': 'application/json' }),
        body: JSON.stringify({ ...on, code: 'import time\ntime.sleep(30)' }),
        signal: client.signal,
      });
      const abandoned = response.headers.get('x-execution-id')!;
      await waitForState(abandoned, 'running');
      client.abort();
      expect((await waitForState(abandoned, 'finished')).outcome).toBe('abandoned');

      // a killed kernel, then a requested restart once it is back
      expect(errorsOf(await execute({ ...on, code: 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)' }))[0]?.name).toBe(
        'KernelDied',
      );
      await execute({ ...on, code: '1' });
      await poolSettled();
      expect((await json('POST', `/contexts/${context.id}/restart`)).status).toBe(200);

      // an upload and its download
      const body = Buffer.alloc(123_457, 7);
      expect((await fetch(`${baseUrl}/files/metrics/upload.bin`, { method: 'PUT', headers: authHeaders(), body })).status).toBe(201);
      expect((await (await request('GET', '/files/metrics/upload.bin')).arrayBuffer()).byteLength).toBe(body.length);
      expect((await request('GET', '/files/metrics/missing.bin')).status).toBe(404);
      // and the directory as an archive: the file's bytes again, headers aside
      const archive = await request('GET', '/files/metrics?format=tar');
      expect(archive.status).toBe(200);
      expect((await archive.arrayBuffer()).byteLength).toBeGreaterThan(body.length);
      await request('DELETE', '/files/metrics');
    } finally {
      await deleteContext(context.id);
    }

    await poolSettled();
    const after = await scrape();
    expect(moved(before, after)).toEqual({
      // ok, error, timeout, interrupted, abandoned, killed, the `1` after it; the cancelled one never started
      [key('code_interpreter_executions_started_total', python)]: 7,
      [finished('ok')]: 2,
      [finished('error')]: 1,
      [finished('timeout')]: 1,
      [finished('interrupted')]: 1,
      [finished('cancelled')]: 1,
      [finished('abandoned')]: 1,
      [finished('kernel_died')]: 1,
      [key('code_interpreter_kernel_starts_total', python)]: 1,
      // The creation and the restart, each served by a ready pooled kernel.
      ...(pooled ? { [key('code_interpreter_kernel_pool_hits_total', python)]: 2 } : {}),
      [key('code_interpreter_kernel_deaths_total', python)]: 1,
      [key('code_interpreter_kernel_restarts_total', { ...python, reason: 'died' })]: 1,
      [key('code_interpreter_kernel_restarts_total', { ...python, reason: 'requested' })]: 1,
      [key('code_interpreter_output_bytes_total', { stream: 'stdout' })]: 6,
      [key('code_interpreter_output_bytes_total', { stream: 'stderr' })]: 3,
      [key('code_interpreter_file_bytes_total', { direction: 'in' })]: 123_457,
      [key('code_interpreter_file_bytes_total', { direction: 'out' })]: 2 * 123_457,
    });
    // Durations for the 7 that ran; the cancelled one has none. Queue waits for the 7 that started.
    const durations = (samples: Samples) => histogramCount(samples, 'code_interpreter_execution_duration_seconds', 'language="python"');
    expect(durations(after) - durations(before)).toBe(7);
    const waits = (samples: Samples) => histogramCount(samples, 'code_interpreter_execution_queue_wait_seconds', 'language="python"');
    expect(waits(after) - waits(before)).toBe(7);
    const http = changes(before, after, 'code_interpreter_http_requests_total');
    expect(http).toMatchObject({
      [key('code_interpreter_http_requests_total', { method: 'POST', route: '/execute', status: '200' })]: 6,
      [key('code_interpreter_http_requests_total', { method: 'POST', route: '/execute', status: '202' })]: 2,
      [key('code_interpreter_http_requests_total', { method: 'PUT', route: '/files/*', status: '201' })]: 1,
      [key('code_interpreter_http_requests_total', { method: 'GET', route: '/files/*', status: '404' })]: 1,
      [key('code_interpreter_http_requests_total', { method: 'POST', route: '/executions/:execution_id/interrupt', status: '200' })]: 2,
    });
  });
});

describe('execution_stats', () => {
  async function statsOf(code: string, contextId?: string): Promise<{ events: ExecutionEvent[]; stats: ExecutionEvent }> {
    const events = await execute({ code, stats: true, ...(contextId ? { context_id: contextId } : {}) });
    const stats = events.find((event) => event.type === 'execution_stats')!;
    expect(events.at(-2)).toBe(stats);
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    expect(events.filter((event) => event.type === 'execution_stats')).toHaveLength(1);
    return { events, stats };
  }

  it('is absent unless asked for', async () => {
    const events = await execute({ code: 'print(1)' });
    expect(events.map((event) => event.type)).toEqual(['number_of_executions', 'stdout', 'end_of_execution']);
  });

  it('counts about a second of CPU for a one-second busy loop', async () => {
    const { stats } = await statsOf('import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass');
    expect(stats.cpu_ms).toBeGreaterThanOrEqual(950);
    expect(stats.cpu_ms).toBeLessThan(1600);
    expect(stats.wall_ms).toBeGreaterThanOrEqual(stats.cpu_ms as number);
    expect(stats.queue_ms).toBeGreaterThanOrEqual(0);
  });

  it('sees a 200 MB allocation in the peak, and not in the next execution', async () => {
    // A fresh kernel: one whose allocator already holds freed memory from earlier tests keeps
    // a high resident size after `del`, which is no peak of the next execution's making.
    const context = await createContext();
    try {
      const { stats } = await statsOf('x = b"x" * (200 * 1024 * 1024)\ndel x', context.id);
      expect(stats.peak_memory_bytes).toBeGreaterThanOrEqual(200 * MB);
      const next = (await statsOf('y = 1', context.id)).stats;
      expect(next.peak_memory_bytes).toBeGreaterThan(0);
      expect(next.peak_memory_bytes).toBeLessThan(200 * MB);
      expect(next.cpu_ms).toBeLessThan(500);
    } finally {
      await deleteContext(context.id);
    }
  });

  it('leaves the user namespace and the execution counter alone', async () => {
    const context = await createContext();
    try {
      const first = await execute({ context_id: context.id, code: 'names = set(dir())' });
      const measured = await execute({ context_id: context.id, code: 'x = 1', stats: true });
      // IPython's own history names (_i2, _, __, ...) aside, the code sees only its own.
      const third = await execute({
        context_id: context.id,
        code: 'import re\nprint(sorted(n for n in set(dir()) - names - {"names", "re", "x"} if not re.fullmatch(r"_(i{1,3}\\d*|\\d*|_{1,2})", n)))',
      });
      expect(third.find((event) => event.type === 'stdout')?.text).toBe('[]\n');
      expect([first, measured, third].map((events) => events[0]?.execution_count)).toEqual([1, 2, 3]);
    } finally {
      await deleteContext(context.id);
    }
  });

  it('is still there, with what could not be measured as null, when the kernel dies', async () => {
    const context = await createContext();
    try {
      const events = await execute({
        context_id: context.id,
        code: 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)',
        stats: true,
      });
      expect(events.at(-2)).toMatchObject({ type: 'execution_stats', cpu_ms: null, peak_memory_bytes: null });
      expect(typeof events.at(-2)?.wall_ms).toBe('number');
    } finally {
      await deleteContext(context.id);
    }
  });
});

describe('output beyond MAX_OUTPUT_BYTES', () => {
  it('counts the bytes sent and one truncation with the bytes dropped', async () => {
    // A server of its own, with a small output budget.
    const server = await startServer({ MAX_OUTPUT_BYTES: '1000' });
    try {
      const before = await scrape(server.baseUrl);
      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'for i in range(30):\n    print("x" * 99, flush=True)' }),
      });
      const events = await readEvents(response);
      const truncated = events.find((event) => event.type === 'output_truncated');
      expect(truncated).toMatchObject({ stream_bytes_dropped: 2000, limit_bytes: 1000 });
      const after = await scrape(server.baseUrl);
      expect(moved(before, after)).toMatchObject({
        [key('code_interpreter_output_bytes_total', { stream: 'stdout' })]: 1000,
        code_interpreter_output_truncations_total: 1,
        code_interpreter_output_dropped_bytes_total: 2000,
      });
    } finally {
      await server.stop();
    }
  });
});

describe('open sessions', () => {
  it('counts WebSocket connections while they are open', async () => {
    const websocket = key('code_interpreter_open_sessions', { transport: 'websocket' });
    const before = (await scrape()).get(websocket)!;
    const first = await WsClient.open();
    const second = await WsClient.open();
    expect((await scrape()).get(websocket)).toBe(before + 2);
    first.close();
    second.close();
    await first.waitForClose();
    await second.waitForClose();
    for (let i = 0; i < 100 && (await scrape()).get(websocket) !== before; i++) await sleep(50);
    expect((await scrape()).get(websocket)).toBe(before);
  });

  it('counts MCP sessions while they are open', async () => {
    const mcp = key('code_interpreter_open_sessions', { transport: 'mcp' });
    const before = (await scrape()).get(mcp)!;
    const transport = new StreamableHTTPClientTransport(new URL(`${baseUrl}/mcp`), { requestInit: { headers: authHeaders() } });
    const client = new Client({ name: 'metrics-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      expect((await scrape()).get(mcp)).toBe(before + 1);
    } finally {
      await transport.terminateSession();
      await client.close();
    }
    expect((await scrape()).get(mcp)).toBe(before);
  });
});
