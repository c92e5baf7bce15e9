import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { clientTypes, clientTypesFile } from '../../scripts/client-types.js';

/**
 * The TypeScript client's request and response types are committed (its build runs no
 * generator): this generates them again from the API description the server builds and
 * compares, so the client cannot drift from the routes' schemas. `npm run client:types` mends it.
 */
describe('generated client types', () => {
  it('are what `npm run client:types` generates from /openapi.json', async () => {
    const fresh = await clientTypes();
    expect(fresh).toContain('export interface paths');
    expect(await readFile(clientTypesFile, 'utf8'), 'stale: run `npm run client:types`').toBe(fresh);
  }, 60_000);
});
