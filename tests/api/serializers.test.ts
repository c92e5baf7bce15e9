import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { Context } from '../../server/schemas/contexts.js';
import { startOffline } from '../helpers/offline-app.js';

/**
 * Response serializers are compiled when a route first answers (server/schemas/serializers.ts),
 * not at start-up: every answer must still be written through its route's schema, the first as
 * much as the later ones, whichever route answers first.
 */
const context = { id: 'c1', language: 'python', cwd: '/home/user', leaked: 'not in the schema' };

function routes(app: FastifyInstance): void {
  // The shared schema itself, with its $id, as a response...
  app.get('/test/context', { schema: { response: { 200: Context } } }, async () => context);
  // ...and referenced from another route's response.
  app.get(
    '/test/contexts',
    { schema: { response: { 200: { type: 'object', properties: { contexts: { type: 'array', items: { $ref: 'Context#' } } } } } } },
    async () => ({ contexts: [context], extra: 1 }),
  );
  app.get(
    '/test/count',
    { schema: { response: { 200: { type: 'object', properties: { count: { type: 'integer' } }, additionalProperties: false } } } },
    async () => ({ count: 3, secret: 'dropped' }),
  );
}

const expected: Record<string, unknown> = {
  '/test/context': { id: 'c1', language: 'python', cwd: '/home/user' },
  '/test/contexts': { contexts: [{ id: 'c1', language: 'python', cwd: '/home/user' }] },
  '/test/count': { count: 3 },
};

describe('response serializers compiled on first use', () => {
  for (const order of [Object.keys(expected), Object.keys(expected).reverse()]) {
    it(`write every answer through its schema, first and later ones alike (${order.join(', ')})`, async () => {
      const { app } = await startOffline({}, {}, routes);
      for (const round of [1, 2]) {
        for (const url of order) {
          const response = await app.inject({ method: 'GET', url });
          expect(response.statusCode, `${url}, round ${round}`).toBe(200);
          expect(response.json(), `${url}, round ${round}`).toEqual(expected[url]);
        }
      }
    });
  }

  it('serialize error answers through ErrorResponse', async () => {
    const { app } = await startOffline();
    const response = await app.inject({ method: 'DELETE', url: '/contexts/does-not-exist' });
    expect(response.statusCode).toBe(404);
    expect(Object.keys(response.json()).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  });
});
