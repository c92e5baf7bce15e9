import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, jupyterPython, randomToken, root, stopProcess, waitForHttp } from '../helpers/processes.js';

/**
 * The API process as an operator starts it: `node dist/server/main.js` on its own (no
 * start-up.sh), or start-up.sh with a bad DEFAULT_LANGUAGE. These tests start their own
 * processes on this machine, whatever server the rest of the suite targets.
 */
const started: ChildProcess[] = [];
const temporary: string[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((child) => stopProcess(child, 5000)));
  await Promise.all(temporary.splice(0).map((directory) => rm(directory, { recursive: true, force: true })));
});

async function scratch(): Promise<string> {
  const directory = await mkdtemp(path.join(tmpdir(), 'main-process-'));
  temporary.push(directory);
  return directory;
}

interface Started {
  child: ChildProcess;
  baseUrl: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `command` with the API's environment on a free port; Jupyter is a closed port unless given. */
async function launch(command: string[], env: Record<string, string>): Promise<Started> {
  const port = await freePort();
  const child = spawn(command[0]!, command.slice(1), {
    cwd: root,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      JUPYTER_URL: `http://127.0.0.1:${await freePort()}`,
      JUPYTER_TOKEN: 'main-process-test',
      LOG_LEVEL: 'info',
      ACCESS_TOKEN: '',
      AUTH_MODE: '',
      ENVD_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = once(child, 'exit').then(() => child.exitCode);
  return { child, baseUrl: `http://127.0.0.1:${port}`, stderr: () => stderr, exited };
}

const api = [process.execPath, path.join(root, 'dist/server/main.js')];

/** The exit code, or 'running' if the process is still up after `ms`. */
function exitWithin(started: Started, ms: number): Promise<number | null | 'running'> {
  return Promise.race([started.exited, new Promise<'running'>((resolve) => setTimeout(resolve, ms, 'running'))]);
}

describe('WORKSPACE_DIR without start-up.sh', () => {
  it('is created when missing, and the file API works in it', async () => {
    const workspace = path.join(await scratch(), 'not', 'there', 'yet');
    const server = await launch(api, { WORKSPACE_DIR: workspace });
    await waitForHttp(`${server.baseUrl}/health`, server.child, 30_000, 50);
    expect((await stat(workspace)).isDirectory()).toBe(true);
    const upload = await fetch(`${server.baseUrl}/files/hello.txt`, { method: 'PUT', body: 'hi' });
    expect(upload.status).toBe(201);
  });

  it('stops the server at once, naming the variable, when it is a file', async () => {
    const file = path.join(await scratch(), 'a-file');
    await writeFile(file, 'x');
    const server = await launch(api, { WORKSPACE_DIR: file });
    expect(await exitWithin(server, 15_000)).toBe(2);
    expect(server.stderr()).toContain(`Invalid configuration: WORKSPACE_DIR=${file} is not a directory`);
  });
});

/** The `module compile cache` line main.ts logs at debug level. */
async function compileCacheLine(server: Started): Promise<{ enabled: boolean; directory?: string; reason?: string }> {
  let stdout = '';
  server.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  await waitForHttp(`${server.baseUrl}/health`, server.child, 30_000, 50);
  const line = stdout.split('\n').find((text) => text.includes('"module compile cache"'));
  if (!line) throw new Error(`no compile cache line in the log:\n${stdout}`);
  return (JSON.parse(line) as { compileCache: { enabled: boolean; directory?: string; reason?: string } }).compileCache;
}

// Node 22.1 brought module.enableCompileCache(); the image runs 24, this machine may run 20.
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const nodeHasCompileCache = major > 22 || (major === 22 && minor >= 1);

describe('the module compile cache', () => {
  it('is kept in a private directory of the temporary directory, never in the workspace', async () => {
    const temporary = await scratch();
    const workspace = await scratch();
    const server = await launch(api, {
      WORKSPACE_DIR: workspace,
      TMPDIR: temporary,
      LOG_LEVEL: 'debug',
      NODE_COMPILE_CACHE: '',
      JUPYTER_WAIT_SECONDS: '0',
    });
    const outcome = await compileCacheLine(server);
    if (!nodeHasCompileCache) {
      expect(outcome).toEqual({ enabled: false, reason: expect.stringContaining('has no compile cache') });
      return;
    }
    expect(outcome.enabled).toBe(true);
    expect(path.dirname(outcome.directory!)).toBe(temporary);
    expect(((await stat(outcome.directory!)).mode & 0o777).toString(8)).toBe('700');
    // Written soon after the start (its Jupyter never answers here), not only at exit: a server
    // that is killed leaves it for the next start too.
    const cachedFiles = async () => {
      const entries = await readdir(outcome.directory!, { recursive: true, withFileTypes: true });
      return entries.filter((entry) => entry.isFile()).length;
    };
    const deadline = Date.now() + 20_000;
    while ((await cachedFiles()) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await cachedFiles()).toBeGreaterThan(0);
    server.child.kill('SIGKILL');
    expect(await readdir(workspace)).toEqual([]);
  });

  it('being impossible does not keep the server from starting and answering', async () => {
    const file = path.join(await scratch(), 'a-file');
    await writeFile(file, 'x');
    // A temporary "directory" that is a file: no cache directory can be made in it.
    const server = await launch(api, { WORKSPACE_DIR: await scratch(), TMPDIR: file, LOG_LEVEL: 'debug', NODE_COMPILE_CACHE: '' });
    const outcome = await compileCacheLine(server);
    expect(outcome.enabled).toBe(false);
    if (nodeHasCompileCache) expect(outcome.reason).toMatch(/^cannot be created: .*ENOTDIR/);
    const openapi = await fetch(`${server.baseUrl}/openapi.json`);
    expect(openapi.status).toBe(200);
    expect(Object.keys(((await openapi.json()) as { paths: object }).paths)).toContain('/execute');
  });
});

describe('a request while Jupyter is still starting', () => {
  it('waits for Jupyter and runs, rather than failing with 503', async () => {
    const workspace = await scratch();
    const jupyterPort = await freePort();
    const token = randomToken();
    const server = await launch(api, { WORKSPACE_DIR: workspace, JUPYTER_URL: `http://127.0.0.1:${jupyterPort}`, JUPYTER_TOKEN: token });
    await waitForHttp(`${server.baseUrl}/health`, server.child, 30_000, 20);
    // The API answers before Jupyter does, as it often does under start-up.sh.
    expect((await fetch(`${server.baseUrl}/ready`)).status).toBe(503);
    const answer = fetch(`${server.baseUrl}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: '1+1' }),
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const jupyter = spawn(
      jupyterPython,
      [
        '-m',
        'jupyter_server',
        `--config=${path.join(root, 'jupyter_server_config.py')}`,
        '--ServerApp.ip=127.0.0.1',
        `--ServerApp.port=${jupyterPort}`,
        '--ServerApp.port_retries=0',
        '--ServerApp.log_level=WARN',
        '--no-browser',
      ],
      { cwd: workspace, env: { ...process.env, JUPYTER_TOKEN: token }, stdio: 'ignore' },
    );
    started.push(jupyter);
    const response = await answer;
    const body = await response.text();
    expect(response.status, body).toBe(200);
    expect(body).toContain('"text":"2"');
  }, 90_000);
});

describe('SIGTERM', () => {
  it('exits 0 when stdout is a pipe nobody reads any more', async () => {
    const server = await launch(api, { WORKSPACE_DIR: await scratch() });
    await waitForHttp(`${server.baseUrl}/health`, server.child, 30_000, 50);
    // The log reader went away (`| head`, a collector that died); requests still get logged.
    server.child.stdout!.destroy();
    for (let request = 0; request < 3; request += 1) await (await fetch(`${server.baseUrl}/health`)).text();
    server.child.kill('SIGTERM');
    expect(await exitWithin(server, 15_000)).toBe(0);
  });
});

describe('DEFAULT_LANGUAGE', () => {
  it('stops the server, naming the variable and the languages there are, when no kernel has it', async () => {
    const workspace = await scratch();
    const server = await launch([path.join(root, 'start-up.sh')], { WORKSPACE_DIR: workspace, DEFAULT_LANGUAGE: 'cobol' });
    // Jupyter starts alongside; once it lists its kernels the API stops, and start-up.sh with it.
    const code = await exitWithin(server, 60_000);
    expect(code).not.toBe('running');
    expect(code).not.toBe(0);
    expect(server.stderr()).toMatch(
      /Invalid configuration: DEFAULT_LANGUAGE=cobol: No kernel is installed for language "cobol"; available: .*python/,
    );
  }, 90_000);
});
