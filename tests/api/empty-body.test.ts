import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

/**
 * An empty body labelled `application/json` is no body: e2b's SDKs send exactly that on
 * restart and delete. Unknown ids prove the request got past body parsing to the route.
 */
describe('an empty body with a JSON content type', () => {
  it.each([
    ['POST', '/contexts/nope/restart'],
    ['POST', '/contexts/nope/interrupt'],
    ['DELETE', '/contexts/nope'],
  ] as const)('is no body on %s %s, where none is needed', async (method, url) => {
    const { app } = await startOffline();
    for (const contentType of ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded']) {
      const response = await app.inject({ method, url, headers: { 'content-type': contentType }, payload: '' });
      expect(response.json(), contentType).toMatchObject({ statusCode: 404, code: 'ERR_CONTEXT_NOT_FOUND' });
    }
  });

  it('is "all defaults" on POST /contexts', async () => {
    const { app } = await startOffline();
    const response = await app.inject({ method: 'POST', url: '/contexts', headers: { 'content-type': 'application/json' }, payload: '' });
    // Past parsing and validation: the kernel cannot start with no Jupyter behind the app.
    expect(response.json()).toMatchObject({ statusCode: 503, code: 'ERR_JUPYTER_UNAVAILABLE' });
  });

  it('is refused where a body is required, saying that it is missing', async () => {
    const { app } = await startOffline();
    const response = await app.inject({ method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload: '' });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ message: string }>().message).toMatch(/body/);
  });

  it('still refuses a body that is not JSON', async () => {
    const { app } = await startOffline();
    const response = await app.inject({
      method: 'DELETE',
      url: '/contexts/nope',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    expect(response.statusCode).toBe(400);
  });
});
