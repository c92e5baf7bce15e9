import { describe, expect, it } from 'vitest';

/**
 * A kernel killed by the out-of-memory killer. That needs a memory limit on the whole server
 * that the kernel really fills: scripts/docker-ci.sh runs a container with `docker run -m` and
 * points OOM_BASE_URL at it. Elsewhere this file skips: filling a machine's memory is no test.
 */
const target = process.env.OOM_BASE_URL?.replace(/\/+$/, '');

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const response = await fetch(`${target}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, text: await response.text() };
}

const events = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; name?: string; value?: string; text?: string });

describe.skipIf(!target)('a kernel the out-of-memory killer takes (needs OOM_BASE_URL: a container run with -m)', () => {
  it('is reported as OutOfMemory, the context gets a new kernel, and the API and Jupyter live on', async () => {
    const created = await call('POST', '/contexts', { language: 'python' });
    expect(created.status).toBe(200);
    const { id } = JSON.parse(created.text) as { id: string };
    // Touch every page so the memory is really used, far beyond the container's limit.
    const hog = await call('POST', '/execute', {
      context_id: id,
      code: 'chunks = []\nwhile True:\n    chunks.append(bytearray(b"x" * (64 * 2**20)))',
    });
    const errors = events(hog.text).filter((event) => event.type === 'error');
    expect(errors).toMatchObject([{ name: 'OutOfMemory' }]);
    expect(errors[0]!.value).toMatch(/out of memory/);
    // The same context runs again, on a fresh kernel; the API answered all along.
    const after = events((await call('POST', '/execute', { context_id: id, code: 'print("alive")' })).text);
    expect(after.filter((event) => event.type === 'stdout').map((event) => event.text)).toEqual(['alive\n']);
    expect((await call('GET', '/ready')).status).toBe(200);
    await call('DELETE', `/contexts/${id}`);
  });
});
