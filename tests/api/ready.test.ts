import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

/**
 * `/ready` answers for this server: 503 with its own code whatever Jupyter does. A Jupyter that
 * answers 500 (as one may for a moment while it starts) is played by a plain HTTP server here:
 * a real one cannot be made to answer so on demand.
 */
let standIn: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (standIn ? standIn.close(resolve) : resolve(undefined)));
  standIn = undefined;
});

async function jupyterAnswering(status: number): Promise<string> {
  standIn = createServer((_request, response) => response.writeHead(status, { 'content-type': 'text/html' }).end(`<html>${status}</html>`));
  await new Promise<void>((resolve) => standIn!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(standIn.address() as { port: number }).port}`;
}

describe('GET /ready', () => {
  it.each([500, 403])('answers 503 ERR_JUPYTER_UNAVAILABLE while Jupyter answers %i', async (status) => {
    const { app } = await startOffline({ JUPYTER_URL: await jupyterAnswering(status) });
    const response = await app.inject({ method: 'GET', url: '/ready' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({
      status: 'unavailable',
      statusCode: 503,
      code: 'ERR_JUPYTER_UNAVAILABLE',
      error: 'Service Unavailable',
      message: `Jupyter Server is unavailable: GET /api/status answered ${status}`,
    });
  });

  it('answers 503 ERR_JUPYTER_UNAVAILABLE while nothing listens yet', async () => {
    const { app } = await startOffline();
    const response = await app.inject({ method: 'GET', url: '/ready' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ status: 'unavailable', statusCode: 503, code: 'ERR_JUPYTER_UNAVAILABLE' });
  });
});
