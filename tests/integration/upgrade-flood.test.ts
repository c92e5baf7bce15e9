import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEvents } from '../helpers/api.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';
import { closeWaitSockets, upgradeFlood } from '../helpers/upgrade-flood.js';

const TOKEN = 'upgrade-flood-token-0123456789';

/**
 * WebSocket upgrade requests that are not accepted (no token, a foreign page's Origin, a route
 * that does not upgrade) end with their socket closed once answered: otherwise each stays open
 * for good (CLOSE-WAIT once the client goes), and MAX_CONNECTIONS of them shut everyone out.
 * A server of its own with a token, as in the image.
 */
let server: StartedServer;
beforeAll(async () => {
  server = await startServer({ ACCESS_TOKEN: TOKEN });
});
afterAll(async () => {
  await server?.stop();
});

describe('refused WebSocket upgrades', () => {
  it('close their socket: 1,100 of them leave nothing in CLOSE-WAIT and the server serves on', async () => {
    const url = new URL(server.baseUrl);
    const port = Number(url.port);
    const started = performance.now();
    const flood = await upgradeFlood({
      host: url.hostname,
      port,
      paths: ['/health', '/execute', '/ws', '/no-such-route'],
      count: 1100,
      concurrency: 50,
      headers: { origin: 'http://evil.example' },
    });
    const elapsed = performance.now() - started;
    try {
      await sleep(2000);
      const closeWait = await closeWaitSockets(port);
      console.log(
        `upgrade flood: 1100 requests in ${Math.round(elapsed)} ms, answers ${JSON.stringify(flood.statuses)}, unanswered ${flood.unanswered}; CLOSE-WAIT after 2 s: ${closeWait}`,
      );
      // A foreign Origin is refused before anything else, on every route.
      expect(flood.statuses).toEqual({ 403: 1100 });
      expect(closeWait).toBe(0);

      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ code: 'print(6 * 7)' }),
        signal: AbortSignal.timeout(30_000),
      });
      expect(response.status).toBe(200);
      const events = await readEvents(response);
      expect(events.filter((event) => event.type === 'stdout').map((event) => event.text)).toEqual(['42\n']);
    } finally {
      for (const socket of flood.sockets) socket.destroy();
    }
  });

  it('close their socket without an Origin too: 401 without a token, 200 from /health, 400 for a malformed URL', async () => {
    const url = new URL(server.baseUrl);
    const port = Number(url.port);
    const paths = ['/health', '/execute', '/ws', '/no-such-route', '/files/%E0%A4%A'];
    const flood = await upgradeFlood({ host: url.hostname, port, paths, count: 500, concurrency: 20 });
    try {
      await sleep(2000);
      // An unknown path needs the token too before it is a 404; a malformed one is refused by
      // the router, before any hook.
      expect(flood.statuses).toEqual({ 200: 100, 401: 300, 400: 100 });
      expect(await closeWaitSockets(port)).toBe(0);
    } finally {
      for (const socket of flood.sockets) socket.destroy();
    }
  });
});
