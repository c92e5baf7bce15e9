import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { descendantsOf, findChild, isAlive, residentBytes } from '../helpers/processes.js';
import { readEvents } from '../helpers/api.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * Jupyter killed outright (a crash, the out-of-memory killer): start-up.sh starts it again and
 * the API recovers, and the kernels of the dead Jupyter must not live on beside the new ones.
 * A server of its own on this machine, so that its processes can be watched and killed.
 */
describe('kernels when Jupyter dies', () => {
  async function runIn(server: StartedServer, contextId: string, code: string): Promise<string> {
    const response = await fetch(`${server.baseUrl}/execute`, { method: 'POST', body: JSON.stringify({ code, context_id: contextId }) });
    const events = await readEvents(response);
    return events
      .filter((event) => event.type === 'stdout')
      .map((event) => event.text)
      .join('');
  }

  async function newContext(server: StartedServer): Promise<string> {
    const response = await fetch(`${server.baseUrl}/contexts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { id: string }).id;
  }

  const jupyterOf = (server: StartedServer) => findChild(server.process.pid!, (argv) => argv.includes('jupyter_server'));

  async function gone(pids: number[], deadlineMs: number): Promise<{ alive: number[]; ms: number }> {
    const started = Date.now();
    let alive = pids.filter(isAlive);
    while (alive.length > 0 && Date.now() - started < deadlineMs) {
      await sleep(50);
      alive = alive.filter(isAlive);
    }
    return { alive, ms: Date.now() - started };
  }

  it('end with the Jupyter that started them, and none outlives the server stopped afterwards', async () => {
    const server = await startServer();
    const watched = new Set<number>();
    try {
      const contexts = [await newContext(server), await newContext(server)];
      const kernels = [];
      for (const id of contexts) kernels.push(Number(await runIn(server, id, 'import os\nprint(os.getpid())')));
      const jupyter = jupyterOf(server);
      expect(jupyter).toBeDefined();
      const old = descendantsOf(jupyter!).map((proc) => proc.pid);
      expect(old).toEqual(expect.arrayContaining(kernels));
      for (const pid of old) watched.add(pid);
      const rss = old.reduce((sum, pid) => sum + residentBytes(pid), 0);

      process.kill(jupyter!, 'SIGKILL');
      const after = await gone(old, 10_000);
      console.log(
        `after kill -9 of Jupyter: ${old.length} processes under it (${(rss / 2 ** 20).toFixed(0)} MiB resident), ` +
          `${after.alive.length} still alive after ${after.ms} ms`,
      );
      expect(after.alive).toEqual([]);

      // The server recovers: a new Jupyter, and the contexts run code again.
      let output = '';
      for (let attempt = 0; attempt < 100 && output === ''; attempt++) {
        output = await runIn(server, contexts[0]!, 'print("back")').catch(() => '');
        if (output === '') await sleep(200);
      }
      expect(output).toBe('back\n');
      const second = jupyterOf(server);
      expect(second).toBeDefined();
      expect(second).not.toBe(jupyter);
      const current = descendantsOf(second!).map((proc) => proc.pid);
      expect(current.length).toBeGreaterThan(0);
      for (const pid of current) watched.add(pid);

      expect(await server.stop()).toBe(0);
      const leftover = await gone([...watched], 5_000);
      expect(leftover.alive).toEqual([]);
    } finally {
      await server.stop();
      // Whatever the outcome, nothing this test started stays behind.
      for (const pid of watched) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
