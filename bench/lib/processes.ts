import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { sleep } from './stats.js';

export const root = path.resolve(import.meta.dirname, '../..');

/** The Python that runs Jupyter: Debian's, which is not necessarily the first python3 on PATH. */
export const jupyterPython = process.env.JUPYTER_PYTHON ?? '/usr/bin/python3';

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export function randomToken(): string {
  return randomBytes(24).toString('hex');
}

interface ProcInfo {
  pid: number;
  ppid: number;
  argv: string[];
}

function processes(): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields we want follow the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== '');
      found.push({ pid: Number(entry), ppid, argv });
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** The direct child of `parent` whose command line matches `test`, if any. */
export function findChild(parent: number, test: (argv: string[]) => boolean): number | undefined {
  return processes().find((proc) => proc.ppid === parent && test(proc.argv))?.pid;
}

/** Waits until `url` answers 2xx; fails early when `child` exits. */
export async function waitForHttp(url: string, child: ChildProcess, deadlineMs: number, intervalMs = 20, headers: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the process exited (${child.exitCode ?? child.signalCode}) before ${url} answered`);
    }
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(intervalMs);
  }
  throw new Error(`${url} did not answer within ${deadlineMs} ms`);
}

/** Sends SIGTERM, waits, then SIGKILL: only ever to a process this benchmark started. */
export async function stopProcess(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface ServerOptions {
  /** Directory for the workspace, the IPython profile and the log; the caller removes it. */
  dir: string;
  logLevel: string;
  /** Extra arguments for node before the script, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

/** The API and Jupyter, started through start-up.sh exactly as in production. */
export class ServerUnderTest {
  private constructor(
    readonly child: ChildProcess,
    readonly baseUrl: string,
    readonly jupyterUrl: string,
    readonly jupyterToken: string,
    readonly workspaceDir: string,
    readonly logFile: string,
  ) {}

  apiPid = 0;
  jupyterPid = 0;

  /**
   * Spawns start-up.sh on free ports and returns at once; {@link waitUntilReady} waits for it.
   * The API runs as `node dist/server/main.js` through API_COMMAND so that its pid is known.
   */
  static async spawn(options: ServerOptions): Promise<ServerUnderTest> {
    const workspaceDir = path.join(options.dir, 'workspace');
    const ipythonDir = path.join(options.dir, 'ipython');
    await mkdir(workspaceDir, { recursive: true });
    await mkdir(ipythonDir, { recursive: true });
    const [apiPort, jupyterPort] = [await freePort(), await freePort()];
    const jupyterToken = randomToken();
    const logFile = path.join(options.dir, `server-${apiPort}.log`);
    const log = openSync(logFile, 'a');
    const apiCommand = [process.execPath, ...(options.nodeArgs ?? []), path.join(root, 'dist/server/main.js')];
    if (apiCommand.some((arg) => /\s/.test(arg))) throw new Error(`API_COMMAND is split on whitespace; a path holds some: ${apiCommand.join(' ')}`);
    const child = spawn(path.join(root, 'start-up.sh'), {
      cwd: root,
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        PORT: String(apiPort),
        JUPYTER_URL: `http://127.0.0.1:${jupyterPort}`,
        JUPYTER_TOKEN: jupyterToken,
        JUPYTER_PYTHON: jupyterPython,
        WORKSPACE_DIR: workspaceDir,
        IPYTHONDIR: ipythonDir,
        LOG_LEVEL: options.logLevel,
        ACCESS_TOKEN: '',
        AUTH_MODE: '',
        API_COMMAND: apiCommand.join(' '),
        ...options.env,
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    return new ServerUnderTest(child, `http://127.0.0.1:${apiPort}`, `http://127.0.0.1:${jupyterPort}`, jupyterToken, workspaceDir, logFile);
  }

  /** Waits for /health (the API listens), finds both pids, then waits for /ready. */
  async waitUntilReady(deadlineMs = 90_000, intervalMs = 50): Promise<void> {
    try {
      await waitForHttp(`${this.baseUrl}/health`, this.child, deadlineMs, intervalMs);
      this.findPids();
      await waitForHttp(`${this.baseUrl}/ready`, this.child, deadlineMs, intervalMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- server log (last lines) ---\n${tail(this.logFile)}`, { cause: error });
    }
  }

  findPids(): void {
    const startUp = this.child.pid!;
    this.apiPid = findChild(startUp, (argv) => argv.some((arg) => arg.endsWith('dist/server/main.js'))) ?? 0;
    this.jupyterPid = findChild(startUp, (argv) => argv.includes('jupyter_server')) ?? 0;
    if (!this.apiPid) throw new Error('could not find the API process among the children of start-up.sh');
    if (!this.jupyterPid) throw new Error('could not find the Jupyter process among the children of start-up.sh');
  }

  /** Fails with the server's log when start-up.sh is no longer running. */
  assertRunning(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(`start-up.sh exited (${this.child.exitCode ?? this.child.signalCode})\n--- server log (last lines) ---\n${tail(this.logFile)}`);
    }
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
  }
}

export interface JupyterOptions {
  dir: string;
}

/** Jupyter Server alone, started with the same configuration and flags as start-up.sh uses. */
export class JupyterUnderTest {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly token: string,
  ) {}

  static async spawn(options: JupyterOptions): Promise<JupyterUnderTest> {
    const workspaceDir = path.join(options.dir, 'workspace');
    const ipythonDir = path.join(options.dir, 'ipython');
    await mkdir(workspaceDir, { recursive: true });
    // The kernels get the same IPython profile as start-up.sh gives them.
    await mkdir(path.join(ipythonDir, 'profile_default'), { recursive: true });
    await copyFile(path.join(root, 'ipython_kernel_config.py'), path.join(ipythonDir, 'profile_default/ipython_kernel_config.py'));
    const port = await freePort();
    const token = randomToken();
    const log = openSync(path.join(options.dir, `jupyter-${port}.log`), 'a');
    const child = spawn(
      jupyterPython,
      [
        '-m',
        'jupyter_server',
        `--config=${path.join(root, 'jupyter_server_config.py')}`,
        '--ServerApp.ip=127.0.0.1',
        `--ServerApp.port=${port}`,
        '--ServerApp.port_retries=0',
        '--ServerApp.log_level=WARN',
        '--no-browser',
      ],
      {
        cwd: workspaceDir,
        env: {
          ...process.env,
          // Jupyter reads its token from the environment, as start-up.sh passes it.
          JUPYTER_TOKEN: token,
          IPYTHONDIR: ipythonDir,
          MPLBACKEND: 'module://matplotlib_inline.backend_inline',
          PYTHONUNBUFFERED: '1',
          PYDEVD_DISABLE_FILE_VALIDATION: '1',
        },
        stdio: ['ignore', log, log],
      },
    );
    closeSync(log);
    return new JupyterUnderTest(child, `http://127.0.0.1:${port}`, token);
  }

  async stop(): Promise<void> {
    await stopProcess(this.child);
  }
}

/**
 * Starts one of bench/lib's helper servers (a TypeScript file that prints its port once it
 * listens) in a process of its own, through tsx; resolves with its URL.
 */
export async function spawnHelper(script: string, args: string[]): Promise<{ child: ChildProcess; url: string }> {
  // From the repository root, where `tsx` resolves whatever directory the bench was started from.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, script), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`${script} exited (${String(code ?? signal)}) before listening`);
  });
  const [line] = (await Promise.race([once(child.stdout!, 'data'), exited])) as [Buffer];
  exited.catch(() => undefined);
  return { child, url: `http://127.0.0.1:${line.toString().trim()}` };
}
