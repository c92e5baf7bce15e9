import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * MAX_QUEUED_BYTES bounds the code that executions waiting to start hold over all contexts
 * together (MAX_QUEUED_EXECUTIONS bounds each context alone): a server of its own with 1 MiB.
 */
let server: StartedServer;
beforeAll(async () => {
  server = await startServer({ MAX_QUEUED_BYTES: '1MiB', KERNEL_POOL: 'python=0' });
});
afterAll(async () => {
  await server?.stop();
});

/** The fields these tests read from the API's answers: a context, an execution or an error. */
type Answer = { id: string; execution_id: string; state: string; code: string; message: string };

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; headers: Headers; body: Answer }> {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as Answer };
}

/** 300 KiB of code that runs at once: a long comment, then a value. */
const bulky = (value: number) => `# ${'x'.repeat(300 * 1024)}\n${value}`;

async function waitForState(id: string, state: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await call('GET', `/executions/${id}`)).body.state === state) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`execution ${id} never reached ${state}`);
}

describe('MAX_QUEUED_BYTES', () => {
  it('refuses code beyond the bytes waiting over all contexts with 429 ERR_QUEUE_FULL, and takes it again once the queues drain', async () => {
    const contexts = [(await call('POST', '/contexts', {})).body.id, (await call('POST', '/contexts', {})).body.id];
    // Each context busy with code that waits, so that what follows queues behind it.
    const busy: string[] = [];
    for (const context_id of contexts) {
      const started = await call('POST', '/execute', { code: 'import time\ntime.sleep(60)', context_id, background: true });
      expect(started.status).toBe(202);
      busy.push(started.body.execution_id);
      await waitForState(started.body.execution_id, 'running');
    }

    // 3 x 300 KiB wait, spread over both contexts: under 1 MiB.
    const queued = [];
    for (const [index, context_id] of [contexts[0], contexts[0], contexts[1]].entries()) {
      const answer = await call('POST', '/execute', { code: bulky(index), context_id, background: true });
      expect(answer.status).toBe(202);
      queued.push(answer.body.execution_id);
    }
    // A fourth would make 1200 KiB: refused, whichever context it names, and nothing is queued.
    for (const context_id of contexts) {
      const refused = await call('POST', '/execute', { code: bulky(9), context_id, background: true });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(refused.body.code).toBe('ERR_QUEUE_FULL');
      expect(refused.body.message).toMatch(/MAX_QUEUED_BYTES/);
    }
    // Small code still fits beside them.
    expect((await call('POST', '/execute', { code: '0', context_id: contexts[1], background: true })).status).toBe(202);

    // The first context's queue drains once its busy execution ends: room again.
    expect((await call('POST', `/executions/${busy[0]}/interrupt`)).status).toBe(200);
    for (const id of queued.slice(0, 2)) await waitForState(id, 'finished');
    const again = await call('POST', '/execute', { code: bulky(7), context_id: contexts[1], background: true });
    expect(again.status).toBe(202);

    expect((await call('POST', `/executions/${busy[1]}/interrupt`)).status).toBe(200);
    await waitForState(again.body.execution_id, 'finished');
    const events = await fetch(`${server.baseUrl}/executions/${again.body.execution_id}/events`).then((response) => response.text());
    expect(events).toContain('"text":"7"');
  });
});
