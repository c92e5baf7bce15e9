import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readEvents } from '../helpers/api.js';
import { findChild, freePort, root, stopProcess } from '../helpers/processes.js';
import { startServer } from '../helpers/start-server.js';

/**
 * The process as an operator sees it: these tests start their own start-up.sh (Jupyter and
 * the API) on this machine, whatever server the rest of the suite targets.
 */
describe('start-up.sh and the API process', () => {
  it('SIGTERM lets the running execution finish, then exits 0', async () => {
    const server = await startServer({ SHUTDOWN_GRACE: '20' });
    try {
      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'import time\nprint("started", flush=True)\ntime.sleep(2)\nprint("finished")' }),
      });
      const events = readEvents(response);
      await new Promise((resolve) => setTimeout(resolve, 700));
      const started = Date.now();
      server.process.kill('SIGTERM');
      const received = await events;
      expect(received.filter((event) => event.type === 'stdout').map((event) => event.text)).toEqual(['started\n', 'finished\n']);
      expect(received.at(-1)).toEqual({ type: 'end_of_execution' });
      const code = await server.stop();
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(15_000);
      // Nothing listens any more.
      await expect(fetch(`${server.baseUrl}/health`)).rejects.toThrow();
    } finally {
      await server.stop();
    }
  });

  it('ends executions that outlast the grace period with an error, and still exits 0', async () => {
    const server = await startServer({ SHUTDOWN_GRACE: '1' });
    try {
      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        body: JSON.stringify({ code: 'import time\ntime.sleep(60)' }),
      });
      const events = readEvents(response);
      await new Promise((resolve) => setTimeout(resolve, 700));
      server.process.kill('SIGTERM');
      const received = (await events).filter((event) => event.type !== 'keepalive');
      expect(received.find((event) => event.type === 'error')?.name).toBe('ServerShuttingDown');
      expect(received.at(-1)).toEqual({ type: 'end_of_execution' });
      expect(await server.stop()).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('exits non-zero, stopping Jupyter, when the API process dies', async () => {
    const server = await startServer();
    try {
      const pid = await apiPid(server.process.pid!);
      process.kill(pid, 'SIGKILL');
      const code = await exitOf(server.process, 30_000);
      expect(code).not.toBe(0);
      await expect(fetch(`${server.jupyterUrl}/api/status`)).rejects.toThrow();
    } finally {
      await server.stop();
    }
  });

  it('exits non-zero, stopping Jupyter, when the API dies while Jupyter is still starting', async () => {
    // An API that dies at once, by a signal, before start-up.sh is done waiting for Jupyter.
    const dir = await mkdtemp(path.join(tmpdir(), 'ci-early-death-'));
    const api = path.join(dir, 'api');
    await writeFile(api, '#!/bin/sh\nkill -KILL $$\n');
    await chmod(api, 0o755);
    const jupyterPort = await freePort();
    const child = spawn(path.join(root, 'start-up.sh'), {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(await freePort()),
        JUPYTER_URL: `http://127.0.0.1:${jupyterPort}`,
        JUPYTER_TOKEN: `test-${jupyterPort}`,
        WORKSPACE_DIR: path.join(dir, 'workspace'),
        API_COMMAND: api,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      expect(await exitOf(child, 30_000)).toBe(137);
      await expect(fetch(`http://127.0.0.1:${jupyterPort}/api/status`)).rejects.toThrow();
    } finally {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on a bad configuration', async () => {
    await expect(startServer({ MAX_OUTPUT_BYTES: 'plenty' })).rejects.toThrow(/exited/);
  });
});

/** The node process start-up.sh runs as the API. */
async function apiPid(parent: number): Promise<number> {
  const pid = findChild(parent, (argv) => argv.some((arg) => arg.endsWith('dist/server/main.js')));
  if (pid === undefined) throw new Error('API process not found');
  return pid;
}

/** The exit code of `child`; fails after `ms` rather than waiting with the test's own timeout, so that the test's clean-up still runs. */
function exitOf(child: ChildProcess, ms: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
