import { beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, baseUrl, createContext, deleteContext, errorsOf, execute, json, request } from '../helpers/api.js';
import { changes, key, parseSamples, type Samples } from '../helpers/prometheus.js';

async function scrape(): Promise<Samples> {
  const response = await request('GET', '/metrics');
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

const python = { language: 'python' };

describe('metrics after a known workload', () => {
  // The default context exists (it is made in the background at start-up), so that its
  // creation is not mistaken for part of a workload.
  beforeAll(async () => {
    await execute({ code: '1' });
  });

  it('contexts and kernels: a context made, its kernel killed, restarted, deleted', async () => {
    const before = await scrape();
    const context = await createContext();
    const during = await scrape();
    expect(moved(before, during)).toEqual({
      [key('code_interpreter_contexts', python)]: 1,
      [key('code_interpreter_kernel_starts_total', python)]: 1,
    });

    const killed = await execute({ context_id: context.id, code: 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)' });
    expect(errorsOf(killed)[0]?.name).toBe('KernelDied');
    // Back on its feet before the restart (a restart while Jupyter is still restarting the
    // dead kernel fails inside Jupyter: a race of its own, not what this test is about).
    await execute({ context_id: context.id, code: '1' });
    const { status } = await json('POST', `/contexts/${context.id}/restart`);
    expect(status).toBe(200);
    await deleteContext(context.id);

    const after = await scrape();
    const workload = moved(during, after);
    // Executions are counted elsewhere; here, only what happened to the context and its kernel.
    for (const name of Object.keys(workload)) if (name.startsWith('code_interpreter_executions_') || name.startsWith('code_interpreter_output_')) delete workload[name];
    expect(workload).toEqual({
      [key('code_interpreter_contexts', python)]: -1,
      [key('code_interpreter_kernel_deaths_total', python)]: 1,
      [key('code_interpreter_kernel_restarts_total', { ...python, reason: 'died' })]: 1,
      [key('code_interpreter_kernel_restarts_total', { ...python, reason: 'requested' })]: 1,
    });
  });

  it('files: an upload, a download and a range count their bytes exactly', async () => {
    const body = Buffer.alloc(123_457, 7);
    const before = await scrape();
    const upload = await fetch(`${baseUrl}/files/metrics/upload.bin`, { method: 'PUT', headers: authHeaders(), body });
    expect(upload.status).toBe(201);
    const download = await request('GET', '/files/metrics/upload.bin');
    expect((await download.arrayBuffer()).byteLength).toBe(body.length);
    const range = await request('GET', '/files/metrics/upload.bin', undefined, { range: 'bytes=100-199' });
    expect(range.status).toBe(206);
    expect((await range.arrayBuffer()).byteLength).toBe(100);
    // Refused before a byte is read: nothing moves.
    expect((await request('GET', '/files/metrics/missing.bin')).status).toBe(404);
    const after = await scrape();
    expect(moved(before, after)).toEqual({
      [key('code_interpreter_file_bytes_total', { direction: 'in' })]: body.length,
      [key('code_interpreter_file_bytes_total', { direction: 'out' })]: body.length + 100,
    });
    const http = changes(before, after, 'code_interpreter_http_requests_total');
    expect(http).toMatchObject({
      [key('code_interpreter_http_requests_total', { method: 'PUT', route: '/files/*', status: '201' })]: 1,
      [key('code_interpreter_http_requests_total', { method: 'GET', route: '/files/*', status: '200' })]: 1,
      [key('code_interpreter_http_requests_total', { method: 'GET', route: '/files/*', status: '206' })]: 1,
      [key('code_interpreter_http_requests_total', { method: 'GET', route: '/files/*', status: '404' })]: 1,
    });
    await request('DELETE', '/files/metrics');
  });
});
