import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

/**
 * What POST /execute refuses before any kernel is involved: these answers come from the
 * execution manager's checks, so no Jupyter is needed.
 */
describe('POST /execute refuses what it cannot honour', () => {
  async function post(body: Record<string, unknown>, env: Record<string, string> = {}) {
    const { app } = await startOffline(env);
    const response = await app.inject({ method: 'POST', url: '/execute', payload: body });
    return { status: response.statusCode, body: response.json<{ code: string; message: string }>() };
  }

  it('refuses timeouts a timer cannot hold instead of firing them at once', async () => {
    for (const timeout of [2_147_484, 1e308]) {
      const answer = await post({ code: '1', timeout });
      expect(answer.status).toBe(400);
      expect(answer.body.message).toMatch(/timeout must be at most 2147483 seconds/);
    }
  });

  it('keeps MAX_EXECUTION_TIMEOUT unbypassable', async () => {
    const env = { EXECUTION_TIMEOUT: '10', MAX_EXECUTION_TIMEOUT: '60' };
    expect((await post({ code: '1', timeout: 61 }, env)).status).toBe(400);
    expect((await post({ code: '1', timeout: 0 }, env)).status).toBe(400);
  });

  it('tells a bad env var value from a bad name', async () => {
    const badValue = await post({ code: '1', env_vars: { GOOD_NAME: 'a\u0000b' } });
    expect(badValue).toMatchObject({ status: 400, body: { code: 'ERR_INVALID_ENV_VAR' } });
    expect(badValue.body.message).toMatch(/value of "GOOD_NAME"/);
    const badName = await post({ code: '1', env_vars: { 'A=B': 'x' } });
    expect(badName.body.message).toMatch(/name "A=B"/);
  });

  it('caps the total size of env_vars, which travel hex-encoded at twice their size', async () => {
    const answer = await post({ code: '1', env_vars: { A: 'x'.repeat(5 * 2 ** 20), B: 'y'.repeat(4 * 2 ** 20) } });
    expect(answer.status).toBe(400);
    expect(answer.body.message).toMatch(/env_vars must total at most 8388608 bytes/);
  });
});
