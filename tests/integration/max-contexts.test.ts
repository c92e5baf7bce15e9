import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * MAX_CONTEXTS needs a server started with a small limit: this file starts its own (start-up.sh
 * on this machine), or targets MAX_CONTEXTS_BASE_URL, a server started with MAX_CONTEXTS=3
 * (scripts/docker-ci.sh runs a second container for it).
 */
const LIMIT = 3;
let server: StartedServer | undefined;
let baseUrl: string;

beforeAll(async () => {
  if (process.env.MAX_CONTEXTS_BASE_URL) {
    baseUrl = process.env.MAX_CONTEXTS_BASE_URL.replace(/\/+$/, '');
  } else {
    server = await startServer({ MAX_CONTEXTS: String(LIMIT) });
    baseUrl = server.baseUrl;
  }
});
afterAll(async () => {
  await server?.stop();
});

const headers = (): Record<string, string> => {
  const token = process.env.MAX_CONTEXTS_BASE_URL ? process.env.ACCESS_TOKEN : undefined;
  return { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
};

/** The fields these tests read from the API's answers: a context or an error. */
type Answer = { id: string; code: string; message: string };

async function call<T = Answer>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: headers(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function kernelsInJupyter(): Promise<number | undefined> {
  if (!server) return undefined;
  const response = await fetch(`${server.jupyterUrl}/api/kernels`, { headers: { authorization: `token ${server.jupyterToken}` } });
  return ((await response.json()) as unknown[]).length;
}

describe('MAX_CONTEXTS', () => {
  it('refuses the context beyond the limit with 429, saying how many exist and how to free one', async () => {
    // The default Python context is created at start-up; wait for it, then fill up.
    for (let i = 0; i < 100 && (await call<unknown[]>('GET', '/contexts')).body.length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    const before = (await call<Array<{ id: string }>>('GET', '/contexts')).body;
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(LIMIT);
    const free = LIMIT - before.length;

    // More creations than free slots at the same time: exactly the free ones succeed.
    const answers = await Promise.all(Array.from({ length: free + 2 }, () => call('POST', '/contexts', { language: 'python' })));
    const created = answers.filter((answer) => answer.status === 200);
    const refused = answers.filter((answer) => answer.status !== 200);
    expect(created).toHaveLength(free);
    expect(refused).toHaveLength(2);
    for (const answer of refused) {
      expect(answer).toMatchObject({ status: 429, body: { code: 'ERR_TOO_MANY_CONTEXTS' } });
      expect(answer.body.message).toMatch(new RegExp(`^${LIMIT} contexts exist`));
      expect(answer.body.message).toContain('DELETE /contexts/{id}');
    }

    // Nothing half-created: the API and Jupyter hold exactly the limit.
    expect((await call('GET', '/contexts')).body).toHaveLength(LIMIT);
    const kernels = await kernelsInJupyter();
    if (kernels !== undefined) expect(kernels).toBe(LIMIT);

    // A new default context counts too.
    const execute = await call('POST', '/execute', { language: 'r', code: '1' });
    expect(execute).toMatchObject({ status: 429, body: { code: 'ERR_TOO_MANY_CONTEXTS' } });

    // Deleting one frees a slot.
    expect((await call('DELETE', `/contexts/${created[0]!.body.id}`)).status).toBe(200);
    const again = await call('POST', '/contexts', { language: 'python' });
    expect(again.status).toBe(200);
    await call('DELETE', `/contexts/${again.body.id}`);
    for (const answer of created.slice(1)) await call('DELETE', `/contexts/${answer.body.id}`);
  });

  it('refuses a bad request with its own 400 rather than 429 when full', async () => {
    const contexts = (await call<unknown[]>('GET', '/contexts')).body;
    const filler = await Promise.all(Array.from({ length: LIMIT - contexts.length }, () => call('POST', '/contexts', {})));
    try {
      expect((await call('POST', '/contexts', { language: 'cobol' })).status).toBe(400);
      expect((await call('POST', '/contexts', {})).status).toBe(429);
    } finally {
      for (const answer of filler) await call('DELETE', `/contexts/${answer.body.id}`);
    }
  });
});
