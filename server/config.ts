import path from 'node:path';
import { parseKernelIds, type KernelIdentity } from './contexts/cwd-access.js';

/** Validated server configuration. Built once at boot by {@link loadConfig}. */
export interface Config {
  host: string;
  port: number;
  jupyterUrl: string;
  jupyterToken: string;
  workspaceDir: string;
  logLevel: LogLevel;
  /** Language of the context used when a request names neither `context_id` nor `language`. */
  defaultLanguage: string;
  /** Timeout applied to an execution that names none, in seconds; 0 means none. */
  executionTimeoutSeconds: number;
  /** Upper bound on the `timeout` a request may ask for, in seconds; 0 means unbounded. */
  maxExecutionTimeoutSeconds: number;
  /** How long an interrupted kernel may ignore the interrupt before it is restarted, in ms. */
  interruptGraceMs: number;
  /** Interval of `{"type":"keepalive"}` lines during silent stretches, in ms. */
  keepaliveIntervalMs: number;
  /** Per-execution budget of stdout/stderr text, in bytes; further stream text is dropped. */
  maxOutputBytes: number;
  /** Events kept per execution for readers that re-attach, in bytes. */
  executionBufferBytes: number;
  /** Events kept over all executions, in bytes. */
  executionBufferTotalBytes: number;
  /** How long a finished execution stays readable, in ms. */
  executionRetentionMs: number;
  /** Finished executions kept at most. */
  maxRetainedExecutions: number;
  /** Executions that may wait behind a busy context before new ones are refused. */
  maxQueuedExecutions: number;
  /** Bytes of code and env_vars that waiting executions may hold over all contexts. */
  maxQueuedBytes: number;
  /** Contexts that may exist at once (defaults included); one more is refused with 429. */
  maxContexts: number;
  /**
   * Kernels kept started ahead of time, per language as configured (`python`, or a kernelspec
   * name): handed to new contexts and restarts. They count against maxContexts.
   */
  kernelPool: ReadonlyMap<string, number>;
  /**
   * Who the kernels run as, when not as the API's user (KERNEL_IDS, which start-up.sh sets from
   * KERNEL_USER); undefined when they run as the API's user.
   */
  kernelIdentity: KernelIdentity | undefined;
  /**
   * Memory cap of each kernel in bytes, undefined for none. The API only validates it: every
   * kernel reads CONTEXT_MEMORY_LIMIT itself when image/kernels/launch-kernel starts it.
   */
  contextMemoryLimitBytes: number | undefined;
  /** How long SIGTERM waits for running executions before closing kernel sockets, in ms. */
  shutdownGraceMs: number;
  /**
   * How long after the start a Jupyter that does not answer yet is taken to be starting, in ms:
   * meanwhile the default context and requests that need a kernel wait for it, not fail.
   */
  jupyterWaitMs: number;
  /** Largest accepted upload, in bytes. */
  maxUploadBytes: number;
  /** Most bytes an uploaded archive may unpack to (the sum of its files' sizes). */
  maxExtractBytes: number;
  /** Most entries an uploaded archive may hold. */
  maxExtractEntries: number;
  /** Shared secret required on every endpoint but the health checks; undefined when unset. */
  accessToken: string | undefined;
  authMode: AuthMode;
  /** Origins allowed by CORS; empty means CORS is off. `*` allows any origin. */
  corsOrigins: string[];
  /**
   * Host names (the `Host` header) the server answers to, besides `localhost` and IP
   * addresses; `.example.com` also matches its subdomains, `*` any name. Undefined when unset:
   * the default then depends on the auth mode (see plugins/host-origin.ts).
   */
  allowedHosts: string[] | undefined;
  /** A second token that opens GET /metrics only (the scraper's); undefined when unset. */
  metricsToken: string | undefined;
  /** GET /metrics needs no token at all (a private network). */
  metricsPublic: boolean;
  /** An MCP session unused for this long is closed and its contexts deleted, in ms; 0 never. */
  mcpSessionIdleMs: number;
  /** MCP sessions open at once; a new one replaces the one unused the longest. */
  mcpMaxSessions: number;
  /** Characters of stdout, stderr or text result an MCP tool answer carries before truncating. */
  mcpMaxTextChars: number;
  /** Largest file `read_file` returns inline (image or blob); beyond it, a download URL. */
  mcpMaxFileBytes: number;
  /**
   * Time a client has to send a request's headers, and then its body, in ms; 0 means no limit.
   * Uploads (streamed bodies) are exempt; responses, streams included, are not limited by it.
   */
  requestTimeoutMs: number;
  /** Connections open at once; further ones are closed as soon as they are accepted. */
  maxConnections: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type AuthMode = 'none' | 'token' | 'claim';

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function kernelIdentity(env: Env): KernelIdentity | undefined {
  const raw = read(env, 'KERNEL_IDS');
  if (raw === undefined) return undefined;
  const identity = parseKernelIds(raw);
  if (!identity) throw new ConfigError(`KERNEL_IDS must be uid:gid[,gid...], as \`id -u\` and \`id -G\` print them, got "${raw}"`);
  return identity;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function seconds(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(value)) {
    throw new ConfigError(`${name} must be a non-negative number of seconds, got "${raw}"`);
  }
  return value;
}

/**
 * Seconds as whole milliseconds a timer can hold: a positive value is never rounded down to 0
 * (which means "none" or "at once"), and none goes past 2^31-1 ms, beyond which Node fires a
 * timer at once. `maxMs` lowers the cap for a value that a timer gets with something added.
 */
function timerMs(env: Env, name: string, fallback: number, maxMs = 2 ** 31 - 1): number {
  const ms = Math.ceil(seconds(env, name, fallback) * 1000);
  if (ms > maxMs) throw new ConfigError(`${name} must be at most ${Math.floor(maxMs / 1000)} seconds`);
  return ms;
}

/** Parses sizes such as `1048576`, `64MiB`, `512MB`, `2GiB`. */
export function parseBytes(raw: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?$/i.exec(raw.trim());
  if (!match) return undefined;
  const units: Record<string, number> = {
    b: 1, kb: 1e3, kib: 2 ** 10, mb: 1e6, mib: 2 ** 20, gb: 1e9, gib: 2 ** 30, tb: 1e12, tib: 2 ** 40,
  };
  const value = Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]!;
  return Number.isSafeInteger(Math.floor(value)) ? Math.floor(value) : undefined;
}

function bytes(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = parseBytes(raw);
  if (value === undefined || value <= 0) throw new ConfigError(`${name} must be a size such as 1048576, 64MiB or 2GiB, got "${raw}"`);
  return value;
}

/** KERNEL_POOL: `python=2,r=0`; `python=1` when unset. */
function kernelPool(env: Env): Map<string, number> {
  const raw = read(env, 'KERNEL_POOL') ?? 'python=1';
  const sizes = new Map<string, number>();
  for (const part of raw.split(',').map((entry) => entry.trim())) {
    if (part === '') continue;
    const match = /^([A-Za-z][\w.+-]*)\s*=\s*(\d+)$/.exec(part);
    if (!match) throw new ConfigError(`KERNEL_POOL must list language=size pairs such as python=2,r=0, got "${raw}"`);
    const language = match[1]!.toLowerCase();
    const size = Number(match[2]);
    if (size > 64) throw new ConfigError(`KERNEL_POOL: ${language}=${size} is above 64 kernels`);
    if (sizes.has(language)) throw new ConfigError(`KERNEL_POOL names ${language} twice`);
    sizes.set(language, size);
  }
  return sizes;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  if (raw === 'false' || raw === '0' || raw === 'no') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** Tokens travel in headers: at least 16 printable ASCII characters, no spaces. */
function checkToken(name: string, token: string | undefined): void {
  if (token !== undefined && token.length < 16) throw new ConfigError(`${name} must be at least 16 characters long`);
  // Clients send it in a header: a space would not survive `Authorization: Bearer <token>`,
  // and bytes beyond ASCII are not carried faithfully in header values.
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) throw new ConfigError(`${name} must be printable ASCII without spaces`);
}

function url(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  return parsed.href.replace(/\/+$/, '');
}

/**
 * Reads and validates the configuration. Throws a {@link ConfigError} naming the offending
 * variable, so that a bad deployment fails at boot rather than on the first request.
 */
export function loadConfig(env: Env = process.env): Config {
  const logLevel = (read(env, 'LOG_LEVEL') ?? 'info').toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  }

  const workspace = read(env, 'WORKSPACE_DIR') ?? '/home/user';
  if (!path.isAbsolute(workspace)) throw new ConfigError(`WORKSPACE_DIR must be an absolute path, got "${workspace}"`);

  const accessToken = read(env, 'ACCESS_TOKEN');
  const rawMode = (read(env, 'AUTH_MODE') ?? (accessToken ? 'token' : 'none')).toLowerCase();
  if (rawMode !== 'none' && rawMode !== 'token' && rawMode !== 'claim') {
    throw new ConfigError(`AUTH_MODE must be one of none, token, claim, got "${env.AUTH_MODE}"`);
  }
  const authMode: AuthMode = rawMode;
  if (authMode === 'token' && !accessToken) throw new ConfigError('AUTH_MODE=token needs ACCESS_TOKEN to be set');
  if (authMode === 'none' && accessToken) throw new ConfigError('ACCESS_TOKEN is set but AUTH_MODE=none would ignore it');
  if (authMode === 'claim' && accessToken) throw new ConfigError('AUTH_MODE=claim issues its own token: unset ACCESS_TOKEN');
  checkToken('ACCESS_TOKEN', accessToken);

  const metricsToken = read(env, 'METRICS_TOKEN');
  checkToken('METRICS_TOKEN', metricsToken);
  const metricsPublic = boolean(env, 'METRICS_PUBLIC', false);
  if (metricsToken !== undefined && metricsPublic) throw new ConfigError('METRICS_TOKEN is set but METRICS_PUBLIC=true would ignore it');
  if (metricsToken !== undefined && authMode === 'none') {
    throw new ConfigError('METRICS_TOKEN is set but AUTH_MODE=none leaves /metrics open to anyone: set ACCESS_TOKEN or AUTH_MODE=claim');
  }

  const corsOrigins = (read(env, 'CORS_ORIGINS') ?? '')
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '');
  for (const origin of corsOrigins) {
    if (origin === '*') continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin) {
      throw new ConfigError(`CORS_ORIGINS entries must be origins such as https://app.example.com or *, got "${origin}"`);
    }
  }

  // Without a token to check, a cross-site page may only call this server if it is allowed.
  if (corsOrigins.includes('*') && authMode !== 'token') {
    throw new ConfigError(
      `CORS_ORIGINS=* needs ACCESS_TOKEN: with AUTH_MODE=${authMode} any web page could ${authMode === 'claim' ? 'claim the server' : 'run code'}; list the origins instead`,
    );
  }

  const allowedHosts = hostList(env, 'ALLOWED_HOSTS');

  const executionTimeoutSeconds = seconds(env, 'EXECUTION_TIMEOUT', 0);
  const maxExecutionTimeoutSeconds = seconds(env, 'MAX_EXECUTION_TIMEOUT', 0);
  if (maxExecutionTimeoutSeconds > 0 && (executionTimeoutSeconds === 0 || executionTimeoutSeconds > maxExecutionTimeoutSeconds)) {
    throw new ConfigError('EXECUTION_TIMEOUT must be set and at most MAX_EXECUTION_TIMEOUT when MAX_EXECUTION_TIMEOUT is set');
  }

  const executionBufferBytes = bytes(env, 'EXECUTION_BUFFER_BYTES', 16 * 2 ** 20);
  const executionBufferTotalBytes = bytes(env, 'EXECUTION_BUFFER_TOTAL_BYTES', 256 * 2 ** 20);
  if (executionBufferBytes < 2 * 2 ** 20) throw new ConfigError('EXECUTION_BUFFER_BYTES must be at least 2MiB');
  if (executionBufferTotalBytes < executionBufferBytes) {
    throw new ConfigError('EXECUTION_BUFFER_TOTAL_BYTES must be at least EXECUTION_BUFFER_BYTES');
  }

  const contextMemoryLimitBytes = read(env, 'CONTEXT_MEMORY_LIMIT') === undefined ? undefined : bytes(env, 'CONTEXT_MEMORY_LIMIT', 0);
  if (contextMemoryLimitBytes !== undefined && contextMemoryLimitBytes < 256 * 2 ** 20) {
    // Below this not even a bare kernel starts: its address space alone is larger.
    throw new ConfigError('CONTEXT_MEMORY_LIMIT must be at least 256MiB');
  }

  return {
    host: read(env, 'HOST') ?? '0.0.0.0',
    port: integer(env, 'PORT', 49999, 0, 65535),
    jupyterUrl: url(env, 'JUPYTER_URL', 'http://127.0.0.1:8888'),
    jupyterToken: read(env, 'JUPYTER_TOKEN') ?? '',
    workspaceDir: path.resolve(workspace),
    logLevel,
    defaultLanguage: (read(env, 'DEFAULT_LANGUAGE') ?? 'python').toLowerCase(),
    executionTimeoutSeconds,
    maxExecutionTimeoutSeconds,
    interruptGraceMs: timerMs(env, 'INTERRUPT_GRACE', 5),
    keepaliveIntervalMs: timerMs(env, 'KEEPALIVE_INTERVAL', 5),
    maxOutputBytes: bytes(env, 'MAX_OUTPUT_BYTES', 64 * 2 ** 20),
    maxQueuedExecutions: integer(env, 'MAX_QUEUED_EXECUTIONS', 32, 0, 100_000),
    maxQueuedBytes: bytes(env, 'MAX_QUEUED_BYTES', 256 * 2 ** 20),
    maxContexts: integer(env, 'MAX_CONTEXTS', 32, 1, 100_000),
    kernelPool: kernelPool(env),
    kernelIdentity: kernelIdentity(env),
    contextMemoryLimitBytes,
    executionBufferBytes,
    executionBufferTotalBytes,
    executionRetentionMs: Math.round(seconds(env, 'EXECUTION_RETENTION', 600) * 1000),
    maxRetainedExecutions: integer(env, 'MAX_RETAINED_EXECUTIONS', 100, 0, 100_000),
    // server.ts gives the whole shutdown 5 s more than the grace, on one timer.
    shutdownGraceMs: timerMs(env, 'SHUTDOWN_GRACE', 10, 2 ** 31 - 1 - 5000),
    // start-up.sh waits for Jupyter as long (in whole seconds: bash counts them).
    jupyterWaitMs: integer(env, 'JUPYTER_WAIT_SECONDS', 60, 0, 86_400) * 1000,
    maxUploadBytes: bytes(env, 'MAX_UPLOAD_BYTES', 4 * 2 ** 30),
    maxExtractBytes: bytes(env, 'MAX_EXTRACT_BYTES', 8 * 2 ** 30),
    maxExtractEntries: integer(env, 'MAX_EXTRACT_ENTRIES', 100_000, 1, 10_000_000),
    accessToken,
    authMode,
    corsOrigins,
    allowedHosts,
    metricsToken,
    metricsPublic,
    mcpSessionIdleMs: timerMs(env, 'MCP_SESSION_IDLE', 30 * 60),
    mcpMaxSessions: integer(env, 'MCP_MAX_SESSIONS', 100, 1, 100_000),
    mcpMaxTextChars: integer(env, 'MCP_MAX_TEXT', 20_000, 100, 100_000_000),
    mcpMaxFileBytes: bytes(env, 'MCP_MAX_FILE_BYTES', 2 ** 20),
    requestTimeoutMs: timerMs(env, 'REQUEST_TIMEOUT', 60),
    maxConnections: integer(env, 'MAX_CONNECTIONS', 1000, 1, 1_000_000),
  };
}

const HOST_NAME = /^\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** A comma-separated list of host names (`api.example.com`, `.example.com`, `*`), lower-cased. */
function hostList(env: Env, name: string): string[] | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const hosts = raw
    .split(',')
    .map((host) => host.trim().toLowerCase().replace(/\.$/, ''))
    .filter((host) => host !== '');
  for (const host of hosts) {
    if (host !== '*' && !HOST_NAME.test(host)) {
      throw new ConfigError(`${name} entries must be host names without scheme or port, such as api.example.com, .example.com or *, got "${host}"`);
    }
  }
  return hosts;
}
