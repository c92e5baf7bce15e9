import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { findChild, freePort, jupyterPython, randomToken, root, stopProcess, tail, waitForHttp } from '../../tests/helpers/processes.js';

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
    /** e2b's envd protocol (Connect), on a free port so that a bench never takes 49983. */
    readonly envdUrl: string,
  ) {}

  apiPid = 0;
  jupyterPid = 0;
  /** The process host, which runs the API's commands (its children are theirs). */
  processHostPid = 0;

  /**
   * Spawns start-up.sh on free ports and returns at once; {@link waitUntilReady} waits for it.
   * The API runs as `node dist/server/main.js` through API_COMMAND so that its pid is known.
   */
  static async spawn(options: ServerOptions): Promise<ServerUnderTest> {
    const workspaceDir = path.join(options.dir, 'workspace');
    const ipythonDir = path.join(options.dir, 'ipython');
    await mkdir(workspaceDir, { recursive: true });
    await mkdir(ipythonDir, { recursive: true });
    const [apiPort, jupyterPort, envdPort] = [await freePort(), await freePort(), await freePort()];
    const jupyterToken = randomToken();
    const logFile = path.join(options.dir, `server-${apiPort}.log`);
    const log = openSync(logFile, 'a');
    const apiCommand = [process.execPath, ...(options.nodeArgs ?? []), path.join(root, 'dist/server/main.js')];
    if (apiCommand.some((arg) => /\s/.test(arg)))
      throw new Error(`API_COMMAND is split on whitespace; a path holds some: ${apiCommand.join(' ')}`);
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
        ENVD_PORT: String(envdPort),
        ...options.env,
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    return new ServerUnderTest(
      child,
      `http://127.0.0.1:${apiPort}`,
      `http://127.0.0.1:${jupyterPort}`,
      jupyterToken,
      workspaceDir,
      logFile,
      `http://127.0.0.1:${envdPort}`,
    );
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
    this.processHostPid = findChild(startUp, (argv) => argv.some((arg) => arg.endsWith('dist/server/process-host/main.js'))) ?? 0;
    if (!this.apiPid) throw new Error('could not find the API process among the children of start-up.sh');
    if (!this.jupyterPid) throw new Error('could not find the Jupyter process among the children of start-up.sh');
  }

  /** Fails with the server's log when start-up.sh is no longer running. */
  assertRunning(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(
        `start-up.sh exited (${this.child.exitCode ?? this.child.signalCode})\n--- server log (last lines) ---\n${tail(this.logFile)}`,
      );
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
    for (const file of ['ipython_kernel_config.py', 'code_interpreter_charts.py']) {
      await copyFile(path.join(root, 'image', file), path.join(ipythonDir, 'profile_default', file));
    }
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
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, script), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`${script} exited (${String(code ?? signal)}) before listening`);
  });
  const [line] = (await Promise.race([once(child.stdout, 'data'), exited])) as [Buffer];
  exited.catch(() => undefined);
  return { child, url: `http://127.0.0.1:${line.toString().trim()}` };
}
