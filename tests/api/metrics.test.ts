import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { startOffline } from '../helpers/offline-app.js';

const TOKEN = 'a-test-token-0123456789-abcdef';
const SCRAPER = 'scraper-token-0123456789-abcdef';

async function scrape(app: FastifyInstance, headers: Record<string, string> = {}): Promise<string> {
  const response = await app.inject({ method: 'GET', url: '/metrics', headers });
  expect(response.statusCode, response.body).toBe(200);
  return response.body;
}

/** The label sets of one metric's samples in a scrape, e.g. `{method="GET",route="/health",status="200"}`. */
function series(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`))
    .map((line) => line.slice(name.length, line.lastIndexOf('}') + 1));
}

function value(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('GET /metrics', () => {
  it('serves the Prometheus text format, every name prefixed, Node process metrics included', async () => {
    const { app } = await startOffline();
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const names = response.body
      .split('\n')
      .filter((line) => line.startsWith('# TYPE '))
      .map((line) => line.split(' ')[2]!);
    expect(names.filter((name) => !name.startsWith('code_interpreter_'))).toEqual([]);
    expect(names).toEqual(
      expect.arrayContaining([
        'code_interpreter_process_cpu_user_seconds_total',
        'code_interpreter_process_resident_memory_bytes',
        'code_interpreter_nodejs_eventloop_lag_seconds',
        'code_interpreter_executions_started_total',
        'code_interpreter_executions_finished_total',
        'code_interpreter_execution_duration_seconds',
        'code_interpreter_execution_queue_wait_seconds',
        'code_interpreter_executions_running',
        'code_interpreter_executions_queued',
        'code_interpreter_contexts',
        'code_interpreter_kernel_starts_total',
        'code_interpreter_kernel_restarts_total',
        'code_interpreter_kernel_deaths_total',
        'code_interpreter_kernel_pool_size',
        'code_interpreter_kernel_pool_hits_total',
        'code_interpreter_kernel_pool_misses_total',
        'code_interpreter_output_bytes_total',
        'code_interpreter_output_truncations_total',
        'code_interpreter_file_bytes_total',
        'code_interpreter_http_requests_total',
        'code_interpreter_http_request_duration_seconds',
        'code_interpreter_open_sessions',
      ]),
    );
  });

  it('counts requests by route template and status', async () => {
    const { app } = await startOffline();
    await app.inject({ method: 'GET', url: '/health' });
    await app.inject({ method: 'GET', url: '/health' });
    await app.inject({ method: 'DELETE', url: '/contexts/some-id' });
    await app.inject({ method: 'GET', url: '/nowhere' });
    const text = await scrape(app);
    expect(value(text, 'code_interpreter_http_requests_total', '{method="GET",route="/health",status="200"}')).toBe(2);
    expect(value(text, 'code_interpreter_http_requests_total', '{method="DELETE",route="/contexts/:context_id",status="404"}')).toBe(1);
    expect(value(text, 'code_interpreter_http_requests_total', '{method="GET",route="unmatched",status="404"}')).toBe(1);
    expect(text).not.toContain('some-id');
    expect(text).not.toContain('nowhere');
  });

  it.each([{}, { ACCESS_TOKEN: TOKEN }] as Record<string, string>[])(
    'adds no label values for 1,000 distinct unknown paths (%j)',
    async (env) => {
      const { app } = await startOffline(env);
      const headers: Record<string, string> = 'ACCESS_TOKEN' in env ? { authorization: `Bearer ${TOKEN}` } : {};
      // A first round of each kind of request, so that every series they can make exists.
      const requests = (i: number) => [
        { method: 'GET', url: `/unknown-${i}/x?y=${i}` },
        { method: 'POST', url: `/contexts/${i}/nothing-here` },
        { method: 'GET', url: `/files/no-such-${i}.txt` },
        { method: 'DELETE', url: `/contexts/ctx-${i}` },
        { method: 'GET', url: `/${'%2e'.repeat(i % 7)}${i}` },
      ];
      const send = async (i: number) => {
        for (const request of requests(i)) {
          await app.inject({ ...(request as { method: 'GET'; url: string }), headers });
          await app.inject({ ...(request as { method: 'GET'; url: string }) });
        }
      };
      await send(0);
      await scrape(app, headers);
      const before = await scrape(app, headers);
      for (let i = 1; i <= 1000; i++) await send(i);
      const after = await scrape(app, headers);
      expect(series(after, 'code_interpreter_http_requests_total')).toEqual(series(before, 'code_interpreter_http_requests_total'));
      expect(series(after, 'code_interpreter_http_request_duration_seconds_count')).toEqual(
        series(before, 'code_interpreter_http_request_duration_seconds_count'),
      );
      // The requests were counted all the same.
      const total = (text: string) =>
        series(text, 'code_interpreter_http_requests_total').reduce(
          (sum, labels) => sum + value(text, 'code_interpreter_http_requests_total', labels),
          0,
        );
      expect(total(after) - total(before)).toBe(1000 * 10 + 1);
    },
    60_000,
  );
});

describe('open sessions', () => {
  it('count what transports open and close, once each, and what they count themselves', async () => {
    const { app } = await startOffline();
    const websocket = 'code_interpreter_open_sessions{transport="websocket"}';
    expect(value(await scrape(app), websocket, '')).toBe(0);
    const closeFirst = app.metrics.openSession('websocket');
    const closeSecond = app.metrics.openSession('websocket');
    expect(value(await scrape(app), websocket, '')).toBe(2);
    closeFirst();
    closeFirst();
    expect(value(await scrape(app), websocket, '')).toBe(1);
    closeSecond();
    expect(value(await scrape(app), websocket, '')).toBe(0);
    let held = 3;
    app.metrics.countSessions('websocket', () => held);
    expect(value(await scrape(app), websocket, '')).toBe(3);
    held = 0;
    expect(value(await scrape(app), websocket, '')).toBe(0);
  });
});

describe('the kernel pool observer', () => {
  it('sets the size and counts hits and misses by language', async () => {
    const { app } = await startOffline();
    app.metrics.pool.size('python', 2);
    app.metrics.pool.hit('python');
    app.metrics.pool.hit('python');
    app.metrics.pool.miss('r');
    const text = await scrape(app);
    expect(value(text, 'code_interpreter_kernel_pool_size', '{language="python"}')).toBe(2);
    expect(value(text, 'code_interpreter_kernel_pool_hits_total', '{language="python"}')).toBe(2);
    expect(value(text, 'code_interpreter_kernel_pool_misses_total', '{language="r"}')).toBe(1);
  });
});

describe('access to GET /metrics', () => {
  it('needs the access token like every route', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
  });

  it('takes METRICS_TOKEN, which opens nothing else', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN, METRICS_TOKEN: SCRAPER });
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${SCRAPER}` } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-access-token': SCRAPER } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${SCRAPER}x` } })).statusCode).toBe(401);
    for (const [method, url] of [
      ['GET', '/contexts'],
      ['GET', '/openapi.json'],
      ['GET', '/files'],
      ['POST', '/execute'],
    ] as const) {
      const response = await app.inject({ method, url, headers: { authorization: `Bearer ${SCRAPER}` } });
      expect(response.statusCode, `${method} ${url}`).toBe(401);
    }
  });

  it('takes METRICS_TOKEN before the server is claimed, and nothing else does', async () => {
    const { app } = await startOffline({ AUTH_MODE: 'claim', METRICS_TOKEN: SCRAPER });
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${SCRAPER}` } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/contexts', headers: { authorization: `Bearer ${SCRAPER}` } })).statusCode).toBe(403);
  });

  it('is open to anyone with METRICS_PUBLIC=true, and only it', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: TOKEN, METRICS_PUBLIC: 'true' });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/contexts' })).statusCode).toBe(401);
    const document = (await app.inject({ method: 'GET', url: '/openapi.json', headers: { authorization: `Bearer ${TOKEN}` } })).json<{
      paths: Record<string, { get?: { security?: unknown } }>;
    }>();
    expect(document.paths['/metrics']!.get!.security).toEqual([]);
  });

  it('refuses contradictory or weak settings at boot', () => {
    const base = { WORKSPACE_DIR: '/tmp' };
    expect(() => loadConfig({ ...base, METRICS_TOKEN: SCRAPER })).toThrow(/METRICS_TOKEN.*AUTH_MODE=none/);
    expect(() => loadConfig({ ...base, ACCESS_TOKEN: TOKEN, METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN must be at least 16/);
    expect(() => loadConfig({ ...base, ACCESS_TOKEN: TOKEN, METRICS_TOKEN: 'has a space in it, 16+' })).toThrow(/printable ASCII/);
    expect(() => loadConfig({ ...base, ACCESS_TOKEN: TOKEN, METRICS_TOKEN: SCRAPER, METRICS_PUBLIC: 'true' })).toThrow(/METRICS_PUBLIC/);
    expect(() => loadConfig({ ...base, METRICS_PUBLIC: 'maybe' })).toThrow(/METRICS_PUBLIC must be true or false/);
    expect(loadConfig({ ...base, ACCESS_TOKEN: TOKEN, METRICS_TOKEN: SCRAPER })).toMatchObject({
      metrics: { token: SCRAPER, public: false },
    });
    expect(loadConfig({ ...base, METRICS_PUBLIC: 'true' })).toMatchObject({ metrics: { token: undefined, public: true } });
  });
});
