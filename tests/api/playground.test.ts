import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

describe('PLAYGROUND', () => {
  it('false: GET / and the assets answer 404 ERR_ROUTE_NOT_FOUND, and /openapi.json does not list the page', async () => {
    const { app } = await startOffline({ PLAYGROUND: 'false' });
    for (const url of ['/', '/assets/index.js']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(404);
      expect(response.json<{ code: string }>().code).toBe('ERR_ROUTE_NOT_FOUND');
    }
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    expect(document.paths['/']).toBeUndefined();
  });

  it('on by default: the page needs no token, while the API still does', async () => {
    const { app } = await startOffline({ ACCESS_TOKEN: 'playground-test-token-0123456789abcdef' });
    const page = await app.inject({ method: 'GET', url: '/' });
    // 200 once `npm run build` made the page, 404 before: never a 401.
    expect([200, 404]).toContain(page.statusCode);
    if (page.statusCode === 200) expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect((await app.inject({ method: 'GET', url: '/contexts' })).statusCode).toBe(401);
    const document = (
      await app.inject({ method: 'GET', url: '/openapi.json', headers: { authorization: 'Bearer playground-test-token-0123456789abcdef' } })
    ).json<{
      paths: Record<string, { get?: { security?: unknown[] } }>;
    }>();
    expect(document.paths['/']?.get?.security).toEqual([]);
  });
});
