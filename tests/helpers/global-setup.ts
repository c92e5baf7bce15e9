import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    baseUrl: string;
    accessToken: string;
    /** Workspace directory on this machine, or '' when the server runs elsewhere (BASE_URL). */
    workspaceDir: string;
  }
}

const root = path.resolve(import.meta.dirname, '../..');

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function waitFor(url: string, deadlineMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`start-up.sh exited with ${child.exitCode} before ${url} answered`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer within ${deadlineMs} ms`);
}

/**
 * Starts a real Jupyter Server and the API through start-up.sh, on free ports with a temporary
 * workspace, unless BASE_URL points at a server that already runs (the Docker image, say).
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const target = process.env.TARGET_BASE_URL;
  if (target) {
    project.provide('baseUrl', target.replace(/\/+$/, ''));
    project.provide('accessToken', process.env.ACCESS_TOKEN ?? '');
    project.provide('workspaceDir', '');
    return undefined;
  }

  const workspaceDir = await mkdtemp(path.join(tmpdir(), 'ci-workspace-'));
  const [apiPort, jupyterPort] = [await freePort(), await freePort()];
  const baseUrl = `http://127.0.0.1:${apiPort}`;
  const child = spawn(path.join(root, 'start-up.sh'), {
    cwd: root,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(apiPort),
      JUPYTER_URL: `http://127.0.0.1:${jupyterPort}`,
      JUPYTER_TOKEN: '',
      WORKSPACE_DIR: workspaceDir,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      ACCESS_TOKEN: '',
      AUTH_MODE: '',
      KEEPALIVE_INTERVAL: '1',
      INTERRUPT_GRACE: '3',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: false,
  });
  await waitFor(`${baseUrl}/health`, 60_000, child);
  await waitFor(`${baseUrl}/ready`, 60_000, child);

  project.provide('baseUrl', baseUrl);
  project.provide('accessToken', '');
  project.provide('workspaceDir', workspaceDir);

  return async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([once(child, 'exit'), new Promise((resolve) => setTimeout(resolve, 20_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await rm(workspaceDir, { recursive: true, force: true });
  };
}
