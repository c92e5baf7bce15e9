import { describe, expect, it } from 'vitest';
import { invalidEnvVarName } from '../../server/runs/env-vars.js';
import { startOffline } from '../helpers/offline-app.js';

/** Refusals decided before any kernel is involved: no Jupyter runs behind this app. */
async function execute(payload: string) {
  const { app } = await startOffline({});
  const response = await app.inject({ method: 'POST', url: '/execute', headers: { 'content-type': 'application/json' }, payload });
  return { status: response.statusCode, body: response.json<{ code: string; message: string }>() };
}

describe('env_vars refusals say what was wrong', () => {
  it('names __proto__ as the refused variable name, not the body as invalid JSON', async () => {
    const { status, body } = await execute('{"code":"1","env_vars":{"A":"1","__proto__":"x"}}');
    expect(status).toBe(400);
    expect(body.code).toBe('ERR_INVALID_ENV_VAR');
    expect(body.message).toMatch(/^Invalid environment variable name "__proto__": the name __proto__ is not accepted/);
  });

  it('refuses __proto__ anywhere else in a body as such', async () => {
    const { status, body } = await execute('{"code":"1","__proto__":{"polluted":true}}');
    expect(status).toBe(400);
    expect(body).toMatchObject({ code: 'ERR_INVALID_JSON', message: expect.stringContaining('"__proto__"') });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses __proto__ in every transport alike (the name check, for bodies parsed elsewhere)', () => {
    expect(invalidEnvVarName('__proto__')).toMatch(/__proto__ is not accepted/);
    expect(invalidEnvVarName('PROTO')).toBeUndefined();
    expect(invalidEnvVarName('constructor')).toBeUndefined();
  });

  it('reports a bad value as a bad value, naming the variable', async () => {
    const { status, body } = await execute('{"code":"1","env_vars":{"GOOD_NAME":"a\\u0000b"}}');
    expect(status).toBe(400);
    expect(body.code).toBe('ERR_INVALID_ENV_VAR');
    expect(body.message).toBe('Invalid environment variable value of "GOOD_NAME": the value contains a NUL byte');
  });

  it('reports a bad name as a bad name', async () => {
    const { body } = await execute('{"code":"1","env_vars":{"A=B":"x"}}');
    expect(body.message).toBe('Invalid environment variable name "A=B": the name contains "="');
  });
});
