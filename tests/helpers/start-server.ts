import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, root, stopProcess, waitForHttp } from './processes.js';

export interface StartedServer {
  baseUrl: string;
  jupyterUrl: string;
  jupyterToken: string;
  workspaceDir: string;
  process: ChildProcess;
  /** What the server printed so far (with `captureOutput` only). */
  output(): string;
  /** SIGTERM, then SIGKILL after a while; removes the workspace. Resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  /** The API's port; a free one by default. */
  port?: number;
  /** The API's listening address (HOST); 127.0.0.1 by default. */
  host?: string;
  /** Keep what the server prints, for `output()`, instead of passing it through. */
  captureOutput?: boolean;
}

/**
 * Starts Jupyter and the API through start-up.sh on free ports (or the given API port) with a
 * temporary workspace, and waits until both answer. `dist/` must be built.
 */
export async function startServer(env: Record<string, string> = {}, options: StartOptions = {}): Promise<StartedServer> {
  const workspaceDir = await mkdtemp(path.join(tmpdir(), 'ci-workspace-'));
  const [apiPort, jupyterPort] = [options.port ?? (await freePort()), await freePort()];
  const host = options.host ?? '127.0.0.1';
  const baseUrl = `http://${host}:${apiPort}`;
  const jupyterUrl = `http://127.0.0.1:${jupyterPort}`;
  const jupyterToken = `test-${jupyterPort}-${Math.random().toString(36).slice(2)}`;
  const child = spawn(path.join(root, 'start-up.sh'), {
    cwd: root,
    env: {
      ...process.env,
      HOST: host,
      PORT: String(apiPort),
      JUPYTER_URL: jupyterUrl,
      JUPYTER_TOKEN: jupyterToken,
      WORKSPACE_DIR: workspaceDir,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      ACCESS_TOKEN: '',
      AUTH_MODE: '',
      // e2b's fixed daemon port: off unless a test asks for it, so that servers run side by side.
      ENVD_PORT: '0',
      ...env,
    },
    stdio: options.captureOutput ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  await waitForHttp(`${baseUrl}/health`, child, 60_000, 100);
  await waitForHttp(`${baseUrl}/ready`, child, 60_000, 100);
  return {
    baseUrl,
    jupyterUrl,
    jupyterToken,
    workspaceDir,
    process: child,
    output: () => output,
    async stop() {
      await stopProcess(child);
      await rm(workspaceDir, { recursive: true, force: true });
      return child.exitCode;
    },
  };
}
