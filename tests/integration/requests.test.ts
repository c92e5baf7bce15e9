import { describe, expect, it } from 'vitest';
import { authHeaders, baseUrl, json, readEvents, request } from '../helpers/api.js';

describe('request handling', () => {
  it('GET /health answers "OK"', async () => {
    const response = await fetch(`${baseUrl}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toBe('OK');
  });

  it('GET /ready answers while Jupyter is reachable', async () => {
    const { status, body } = await json('GET', '/ready');
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'ready' });
  });

  it('accepts a JSON body sent without a JSON content type, as curl -d does', async () => {
    const response = await fetch(`${baseUrl}/execute`, {
      method: 'POST',
      headers: authHeaders({ 'content-type': 'application/x-www-form-urlencoded' }),
      body: '{"code":"print(1)"}',
    });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    expect(events.find((event) => event.type === 'stdout')?.text).toBe('1\n');
  });

  it.each([
    ['malformed JSON', '{"code": "print(1)"'],
    ['a missing code field', { language: 'python' }],
    ['code of the wrong type', { code: 42 }],
    ['an unknown field', { code: '1', contextId: 'x' }],
    ['a negative timeout', { code: '1', timeout: -1 }],
  ])('answers 400 with a JSON message for %s', async (_label, body) => {
    const response = await request('POST', '/execute', body);
    expect(response.status).toBe(400);
    const error = (await response.json()) as { message: string; statusCode: number; code: string };
    expect(error.statusCode).toBe(400);
    expect(error.message.length).toBeGreaterThan(5);
    expect(typeof error.code).toBe('string');
  });

  it('answers 400 when both context_id and language are given', async () => {
    const { status, body } = await json<{ message: string }>('POST', '/execute', { code: '1', context_id: 'x', language: 'python' });
    expect(status).toBe(400);
    expect(body.message).toMatch(/mutually exclusive/);
  });

  it('keeps serving after bad requests', async () => {
    await request('POST', '/execute', '{{{{');
    const { status } = await json('GET', '/contexts');
    expect(status).toBe(200);
  });

  it('answers unknown routes with a JSON 404', async () => {
    const { status, body } = await json<{ message: string }>('GET', '/nowhere');
    expect(status).toBe(404);
    expect(body.message).toMatch(/nowhere/);
  });
});
