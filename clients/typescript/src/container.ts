import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { HttpConnection } from './http.js';

/** The image's API port inside the container: it serves the executor and the resource API alike. */
export const CONTAINER_API_PORT = 49999;
/** The workspace in the image: bind targets are relative to it. */
export const CONTAINER_WORKSPACE = '/home/user';
export const DEFAULT_TAG = 'code-interpreter';

/**
 * Variables the image's server and start-up script read as their own settings (start-up.sh's
 * SERVER_ONLY_VARS; tests/unit/client-container.test.ts keeps the two lists equal). `env` is for
 * the code inside, so these names are refused there: the server would take them as its settings.
 */
export const SERVER_SETTINGS = [
  'ACCESS_TOKEN', 'AUTH_MODE', 'CORS_ORIGINS', 'ALLOWED_HOSTS', 'JUPYTER_TOKEN', 'JUPYTER_URL', 'HOST', 'PORT', 'ENVD_PORT',
  'WORKSPACE_DIR', 'LOG_LEVEL', 'DEFAULT_LANGUAGE', 'EXECUTION_TIMEOUT', 'MAX_EXECUTION_TIMEOUT',
  'INTERRUPT_GRACE', 'KEEPALIVE_INTERVAL', 'MAX_OUTPUT_BYTES', 'MAX_QUEUED_EXECUTIONS', 'MAX_QUEUED_BYTES', 'SHUTDOWN_GRACE',
  'MAX_UPLOAD_BYTES', 'MAX_EXTRACT_BYTES', 'MAX_EXTRACT_ENTRIES', 'NODE_ENV', 'NODE_OPTIONS', 'NODE_COMPILE_CACHE', 'API_COMMAND', 'JUPYTER_PYTHON', 'JUPYTER_WAIT_SECONDS',
  'EXECUTION_BUFFER_BYTES', 'EXECUTION_BUFFER_TOTAL_BYTES', 'EXECUTION_RETENTION', 'MAX_RETAINED_EXECUTIONS',
  'MCP_MAX_FILE_BYTES', 'MCP_MAX_TEXT', 'MCP_SESSION_IDLE', 'MCP_MAX_SESSIONS', 'METRICS_PUBLIC', 'METRICS_TOKEN',
  'REQUEST_TIMEOUT', 'MAX_CONNECTIONS', 'MAX_CONTEXTS', 'CONTEXT_MEMORY_LIMIT', 'KERNEL_POOL',
  'EGRESS_ALLOW', 'EGRESS_PROXY_PORT', 'EGRESS_STATE_DIR', 'KERNEL_USER', 'KERNEL_IDS', 'API_USER', 'EGRESS_USER', 'WORKSPACE_GROUP',
  'MAX_PROCESSES', 'PROCESS_HOST_SOCKET', 'MAX_FILE_OPERATIONS', 'MAX_WATCHES', 'WATCH_MAX_DIRECTORIES', 'ROLE', 'PLAYGROUND',
] as const; // prettier-ignore

export interface ExecutionContainerOptions {
  /** The image, `name[:tag]`. Default `code-interpreter` (built with `docker build -t code-interpreter .`). */
  tag?: string;
  /**
   * Bind mounts: host path (relative to the working directory, or absolute) → path relative to the
   * workspace (`/home/user`) in the container. Docker creates a host directory that is missing.
   */
  binds?: Record<string, string>;
  /** Environment variables for the code that runs inside (kernels and commands). */
  env?: Record<string, string>;
  /** The API's host port; random unless given. Same as `resourcePort`: one port serves both. */
  executorPort?: number;
  /** The API's host port; random unless given. Same as `executorPort`: one port serves both. */
  resourcePort?: number;
  /** Seconds to wait for Docker to report the random host port. Default 10. */
  portAllocationTimeout?: number;
  /** Shows the pull's progress on stderr when the image must be pulled. Default true. */
  showPullProgress?: boolean;
  /** The server's access token; generated unless given; `null` runs the server without one. */
  accessToken?: string | null;
  /**
   * Starts the container with an egress allow-list (domains, `*.domains`, IPs, CIDRs; empty: only
   * the essentials) and the NET_ADMIN capability it needs. Only such a container can take
   * `initFirewall()`: the image cannot start enforcing a list once it runs without one.
   */
  allowedDomains?: string[];
  /** Seconds `run()` waits for the server to execute code. Default 120. */
  startTimeout?: number;
  /** The Docker client; default `new Docker()`, which follows DOCKER_HOST. */
  docker?: Docker;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` with a signal that aborts after `ms`, on a timer that keeps the process alive.
 * AbortSignal.timeout's timer does not, and while the container starts, a request that Docker's
 * port proxy has accepted may be all that is pending: a program awaiting run() at its top level
 * then ended (status 13, "unsettled top-level await") before the server was up.
 */
async function withDeadline<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

function checkPort(name: string, port: number | undefined): void {
  if (port !== undefined && (!Number.isInteger(port) || port <= 0 || port > 65535)) {
    throw new TypeError(`${name} must be an integer between 1 and 65535, got ${String(port)}`);
  }
}

/** `host:target` pairs for Docker, the targets made absolute under the workspace. */
export function bindsFor(binds: Record<string, string>, cwd = process.cwd()): string[] {
  return Object.entries(binds).map(([hostPath, containerPath]) => {
    if (hostPath === '') throw new TypeError('binds: a host path is empty');
    if (path.posix.isAbsolute(containerPath) || path.win32.isAbsolute(containerPath)) {
      throw new TypeError(
        `binds: the container path "${containerPath}" must be relative to the workspace (${CONTAINER_WORKSPACE}), not absolute`,
      );
    }
    const segments = containerPath.split(/[/\\]/).filter((segment) => segment !== '' && segment !== '.');
    if (segments.includes('..'))
      throw new TypeError(`binds: the container path "${containerPath}" must stay inside the workspace (no "..")`);
    if (segments.length === 0) throw new TypeError(`binds: the container path for "${hostPath}" names no directory under the workspace`);
    const source = path.resolve(cwd, hostPath);
    // Docker's bind syntax is source:target[:options]; a colon elsewhere would be read as a separator.
    for (const part of [source, ...segments]) {
      if (part.includes(':') && !/^[A-Za-z]:\\/.test(part))
        throw new TypeError(`binds: "${part}" contains ":", which Docker's bind syntax cannot carry`);
    }
    return `${source}:${CONTAINER_WORKSPACE}/${segments.join('/')}`;
  });
}

/** The container's environment: the code's variables, refusing the server's own settings. */
export function environmentFor(env: Record<string, string>): string[] {
  const settings = new Set<string>(SERVER_SETTINGS);
  return Object.entries(env).map(([name, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`env: "${name}" is not a valid variable name`);
    if (settings.has(name)) {
      throw new TypeError(
        `env: ${name} is a setting of the server in the image, not a variable for the code; pass it per execution (execute's envVars) instead`,
      );
    }
    if (typeof value !== 'string') throw new TypeError(`env: the value of ${name} must be a string`);
    return `${name}=${value}`;
  });
}

/** An allow-list as the image's EGRESS_ALLOW and egress-allow take it. */
function allowListText(allowedDomains: string[]): string {
  for (const entry of allowedDomains) {
    if (typeof entry !== 'string' || entry.trim() === '' || /[,\s]/.test(entry.trim())) {
      throw new TypeError(`allowedDomains: "${String(entry)}" is not one domain, address or CIDR range`);
    }
  }
  return allowedDomains.length === 0 ? 'none' : allowedDomains.map((entry) => entry.trim()).join(',');
}

/** Where the daemon publishes ports, as seen from here: its host for a remote DOCKER_HOST. */
function daemonHost(): { host: string; local: boolean } {
  const dockerHost = process.env.DOCKER_HOST ?? '';
  const match = /^(?:tcp|http|https|ssh):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)/.exec(dockerHost);
  if (!match) return { host: '127.0.0.1', local: true };
  const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
  const local = host === 'localhost' || host === '127.0.0.1' || host === '::1';
  return { host: local ? '127.0.0.1' : host, local };
}

function errorStatus(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'statusCode' in error ? Number(error.statusCode) : undefined;
}

/**
 * A code execution container of the image: `run()` creates and starts it and waits until it runs
 * code, `kill()` removes it, and `await using` does both.
 */
export class ExecutionContainer {
  readonly tag: string;
  readonly binds: Record<string, string>;
  readonly env: Record<string, string>;
  readonly showPullProgress: boolean;
  /** The server's token: give it to ExecutionClient and ResourceClient. `null`: no auth. */
  readonly accessToken: string | null;
  /** Where the published port is reached from here: 127.0.0.1, or the host of a remote DOCKER_HOST. */
  readonly host: string;

  private readonly requestedPort: number | undefined;
  private readonly portAllocationTimeout: number;
  private readonly startTimeout: number;
  private readonly allowedDomains: string[] | undefined;
  private readonly localDaemon: boolean;
  private dockerClient: Docker | undefined;
  private container: Docker.Container | undefined;
  private hostPort: number | undefined;

  constructor(options: ExecutionContainerOptions = {}) {
    this.tag = options.tag ?? DEFAULT_TAG;
    this.binds = { ...options.binds };
    this.env = { ...options.env };
    this.showPullProgress = options.showPullProgress ?? true;
    this.accessToken = options.accessToken === undefined ? randomBytes(32).toString('hex') : options.accessToken;
    if (this.accessToken !== null && (typeof this.accessToken !== 'string' || this.accessToken === '')) {
      throw new TypeError('accessToken must be a non-empty string, or null to run the server without one');
    }
    checkPort('executorPort', options.executorPort);
    checkPort('resourcePort', options.resourcePort);
    if (options.executorPort !== undefined && options.resourcePort !== undefined && options.executorPort !== options.resourcePort) {
      throw new TypeError(
        `executorPort (${options.executorPort}) and resourcePort (${options.resourcePort}) differ, but one port of the image serves both: give one of them, or the same port`,
      );
    }
    this.requestedPort = options.executorPort ?? options.resourcePort;
    this.portAllocationTimeout = options.portAllocationTimeout ?? 10;
    this.startTimeout = options.startTimeout ?? 120;
    this.allowedDomains = options.allowedDomains ? [...options.allowedDomains] : undefined;
    if (this.allowedDomains) allowListText(this.allowedDomains);
    // Checked now, so that a wrong bind or variable fails before anything is created.
    bindsFor(this.binds);
    environmentFor(this.env);
    this.dockerClient = options.docker;
    const daemon = daemonHost();
    this.host = daemon.host;
    this.localDaemon = daemon.local;
  }

  /** The API's host port (one port serves the executor and the resource API). */
  get executorPort(): number {
    const port = this.hostPort ?? this.requestedPort;
    if (port === undefined) throw new Error('executorPort is not known before run(): the container is not running and no port was given');
    return port;
  }

  /** The API's host port: the same as `executorPort`. */
  get resourcePort(): number {
    const port = this.hostPort ?? this.requestedPort;
    if (port === undefined) throw new Error('resourcePort is not known before run(): the container is not running and no port was given');
    return port;
  }

  /** The container's id, once `run()` created it. */
  get id(): string | undefined {
    return this.container?.id;
  }

  private async docker(): Promise<Docker> {
    if (!this.dockerClient) {
      // Loaded on first use: programs that only use the HTTP clients never load it.
      const { default: DockerClass } = await import('dockerode');
      this.dockerClient = new DockerClass();
    }
    return this.dockerClient;
  }

  /** Creates and starts the container, and waits until its server executes code. */
  async run(): Promise<this> {
    if (this.container) throw new Error('this container already runs: kill() it first');
    const docker = await this.docker();
    await this.ensureImage(docker);
    const env = environmentFor(this.env);
    env.push(`ACCESS_TOKEN=${this.accessToken ?? ''}`);
    if (this.allowedDomains) env.push(`EGRESS_ALLOW=${allowListText(this.allowedDomains)}`);
    const portKey = `${CONTAINER_API_PORT}/tcp`;
    this.container = await docker.createContainer({
      Image: this.tag,
      Env: env,
      ExposedPorts: { [portKey]: {} },
      Labels: { 'code-interpreter-client': 'ExecutionContainer' },
      HostConfig: {
        Binds: bindsFor(this.binds),
        // An empty HostPort lets Docker pick a free one; it is read back below.
        PortBindings: {
          [portKey]: [
            { HostIp: this.localDaemon ? '127.0.0.1' : '', HostPort: this.requestedPort === undefined ? '' : String(this.requestedPort) },
          ],
        },
        ...(this.allowedDomains ? { CapAdd: ['NET_ADMIN'] } : {}),
      },
    });
    try {
      await this.container.start();
      this.hostPort = await this.readPort(this.container, portKey);
      await this.waitUntilReady(this.container);
    } catch (error) {
      await this.kill();
      throw error;
    }
    return this;
  }

  private async ensureImage(docker: Docker): Promise<void> {
    try {
      await docker.getImage(this.tag).inspect();
      return;
    } catch (error) {
      if (errorStatus(error) !== 404) throw error;
    }
    try {
      await this.pull(docker);
    } catch (error) {
      throw new Error(
        `the image ${this.tag} is not there and could not be pulled (${(error as Error).message}). ` +
          `Build it from the code-interpreter repository: docker build -t ${this.tag} . (see its README)`,
        { cause: error },
      );
    }
  }

  private async pull(docker: Docker): Promise<void> {
    const stream = await docker.pull(this.tag);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (error) => (error ? reject(error) : resolve()),
        (event: { status?: string; id?: string; progress?: string; error?: string }) => {
          if (!this.showPullProgress || !event.status) return;
          process.stderr.write(`${event.id ? `${event.id}: ` : ''}${event.status}${event.progress ? ` ${event.progress}` : ''}\n`);
        },
      );
    });
  }

  private async readPort(container: Docker.Container, portKey: string): Promise<number> {
    const deadline = Date.now() + this.portAllocationTimeout * 1000;
    for (;;) {
      const info = await container.inspect();
      const hostPort = info.NetworkSettings?.Ports?.[portKey]?.find((binding) => binding.HostPort)?.HostPort;
      if (hostPort) return Number(hostPort);
      if (!info.State.Running) throw new Error(`the container exited before its port was published: ${await this.logs(container)}`);
      if (Date.now() > deadline)
        throw new Error(`Docker did not publish port ${CONTAINER_API_PORT} within ${this.portAllocationTimeout} s (portAllocationTimeout)`);
      await sleep(100);
    }
  }

  /** Until `print(1)` runs: /ready alone says Jupyter answers, not that a kernel is up. */
  private async waitUntilReady(container: Docker.Container): Promise<void> {
    const http = new HttpConnection({ port: this.hostPort!, host: this.host, accessToken: this.accessToken });
    const deadline = Date.now() + this.startTimeout * 1000;
    let last = 'no answer yet';
    for (;;) {
      try {
        // A connection Docker's proxy accepts before the server listens may never be answered.
        await withDeadline(5000, (signal) => http.request('/ready', { signal }));
        const body = await withDeadline(30_000, async (signal) => {
          const response = await http.request('/execute', { method: 'POST', json: { code: 'print(1)' }, signal });
          return response.text();
        });
        const events = body
          .split('\n')
          .filter((line) => line.trim() !== '')
          .map((line) => JSON.parse(line) as { type: string; text?: string });
        if (events.some((event) => event.type === 'stdout' && event.text === '1\n')) return;
        last = `print(1) answered ${JSON.stringify(events.filter((event) => event.type !== 'keepalive')).slice(0, 300)}`;
      } catch (error) {
        last = (error as Error).message;
      }
      const info = await container.inspect();
      if (!info.State.Running)
        throw new Error(`the container exited (status ${info.State.ExitCode}) before it ran code: ${await this.logs(container)}`);
      if (Date.now() > deadline) throw new Error(`the container did not run code within ${this.startTimeout} s (last: ${last})`);
      await sleep(300);
    }
  }

  private async logs(container: Docker.Container): Promise<string> {
    try {
      const buffer = await container.logs({ stdout: true, stderr: true, tail: 20, follow: false });
      // Docker frames each chunk with an 8-byte header when there is no TTY.
      return demux(buffer).trim();
    } catch {
      return '(no logs)';
    }
  }

  /**
   * Replaces the egress allow-list of kernels and commands: only these domains (`*.` for every
   * name under one), addresses and CIDR ranges are reachable afterwards; an empty list leaves
   * only the essentials (DNS, loopback). It runs the image's `egress-allow` as root, so it needs
   * a container started with `allowedDomains` (which gives it its first list and NET_ADMIN).
   */
  async initFirewall(allowedDomains: string[] = []): Promise<void> {
    if (!this.container) throw new Error('initFirewall: the container is not running; run() it first');
    if (!this.allowedDomains) {
      throw new Error(
        'initFirewall: this container cannot enforce an egress allow-list: the image applies one only to a container started with it. Give allowedDomains (an empty list allows only the essentials) to the ExecutionContainer',
      );
    }
    const list = allowListText(allowedDomains);
    const exec = await this.container.exec({ Cmd: ['egress-allow', list], User: 'root', AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const output = await collect(this.container.modem as Docker['modem'], stream);
    const { ExitCode } = await exec.inspect();
    if (ExitCode !== 0) throw new Error(`initFirewall: egress-allow failed (exit status ${String(ExitCode)}): ${output.trim()}`);
  }

  /** Removes the container (forcibly); does nothing when there is none. */
  async kill(): Promise<void> {
    const container = this.container;
    this.container = undefined;
    this.hostPort = undefined;
    if (!container) return;
    try {
      await container.remove({ force: true, v: true });
    } catch (error) {
      // Already gone (removed elsewhere, or a second kill racing this one).
      if (errorStatus(error) !== 404 && errorStatus(error) !== 409) throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

function demux(buffer: Buffer): string {
  let text = '';
  let offset = 0;
  while (offset + 8 <= buffer.length && (buffer[offset] === 1 || buffer[offset] === 2) && buffer[offset + 1] === 0) {
    const length = buffer.readUInt32BE(offset + 4);
    text += buffer.subarray(offset + 8, offset + 8 + length).toString('utf8');
    offset += 8 + length;
  }
  return offset === 0 ? buffer.toString('utf8') : text;
}

async function collect(modem: Docker['modem'], stream: NodeJS.ReadableStream): Promise<string> {
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (chunk: Buffer) => chunks.push(chunk));
  modem.demuxStream(stream, output, output);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  return Buffer.concat(chunks).toString('utf8');
}
