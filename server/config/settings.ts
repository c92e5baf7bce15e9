import {
  absolutePath,
  boolean,
  bytes,
  hostNames,
  httpUrl,
  integer,
  kernelIds,
  kernelPool,
  LOG_LEVELS,
  lowerCase,
  milliseconds,
  oneOf,
  origins,
  seconds,
  text,
  timerMs,
  token,
  wholeSecondsMs,
  type AuthMode,
  type Parser,
} from './parse.js';

export type Env = Record<string, string | undefined>;

/** A variable's text, trimmed; unset when absent or blank. */
export function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** One environment variable the API reads: how it is parsed, its default, what it means. */
export interface Setting<T> {
  readonly env: string;
  readonly parse: Parser<T>;
  /**
   * The default as it would be written in the environment, so that the value and the
   * documentation come from the same text; a function when it depends on other variables.
   * Without one, an unset variable leaves the setting undefined.
   */
  readonly default?: string | ((env: Env) => string);
  /** The default as the documentation states it, where the text alone would not say it. */
  readonly defaultText?: string;
  /** One line of markdown for docs/configuration.md (links are relative to docs/). */
  readonly doc: string;
}

/**
 * Every setting of the API, by group: `loadConfig` validates them, `Config` takes its shape
 * from them, and docs/configuration.md is generated from them (`npm run docs`).
 */
export const SETTINGS = {
  server: {
    host: { env: 'HOST', parse: text, default: '0.0.0.0', doc: 'address the API listens on' },
    port: { env: 'PORT', parse: integer(0, 65535), default: '49999', doc: 'port the API listens on' },
    envdPort: {
      env: 'ENVD_PORT',
      parse: integer(0, 65535),
      default: '49983',
      doc: "port of e2b's in-sandbox daemon protocol (envd: commands and terminals for the e2b SDKs, see [e2b.md](e2b.md)); `0` turns it off",
    },
    playground: {
      env: 'PLAYGROUND',
      parse: boolean,
      default: 'true',
      doc: 'serve the playground page at `GET /` (a notebook, a context bar and a files panel in the browser); `false` answers 404 there',
    },
    logLevel: {
      env: 'LOG_LEVEL',
      parse: oneOf(LOG_LEVELS),
      default: 'info',
      doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`',
    },
    requestTimeoutMs: {
      env: 'REQUEST_TIMEOUT',
      parse: timerMs(),
      default: '60',
      doc: "seconds a client has to send a request's headers, and then as long again for its body; later: 408 `ERR_REQUEST_TIMEOUT` and the connection closes. Uploads (`PUT /files`) are exempt (they time out after 120 s without data), and answers are never limited: execution streams last as long as the code runs. `0` turns it off",
    },
    maxConnections: {
      env: 'MAX_CONNECTIONS',
      parse: integer(1, 1_000_000),
      default: '1000',
      doc: 'connections open at once; further ones are closed as soon as they are accepted (and a warning logged). A request with `Upgrade: websocket` that does not become a WebSocket (any route but `/ws`, or a refusal) counts too until its answer is sent, and then its connection closes',
    },
    // server.ts gives the whole shutdown 5 s more than the grace, on one timer.
    shutdownGraceMs: {
      env: 'SHUTDOWN_GRACE',
      parse: timerMs(2 ** 31 - 1 - 5000),
      default: '10',
      doc: 'seconds SIGTERM waits for running executions',
    },
  },
  jupyter: {
    url: {
      env: 'JUPYTER_URL',
      parse: httpUrl,
      default: 'http://127.0.0.1:8888',
      doc: 'where Jupyter Server listens (`start-up.sh` binds it there)',
    },
    token: {
      env: 'JUPYTER_TOKEN',
      parse: text,
      default: '',
      defaultText: 'random, made by `start-up.sh`',
      doc: "Jupyter's token, shared by `start-up.sh` with the API",
    },
    // start-up.sh waits for Jupyter as long (in whole seconds: bash counts them).
    waitMs: {
      env: 'JUPYTER_WAIT_SECONDS',
      parse: wholeSecondsMs(86_400),
      default: '60',
      doc: 'how long `start-up.sh` waits for Jupyter; the API too waits as long for a Jupyter that does not answer yet, see [`/ready`](api.md#get-health-get-ready)',
    },
  },
  workspace: {
    dir: {
      env: 'WORKSPACE_DIR',
      parse: absolutePath,
      default: '/home/user',
      doc: 'root of the file API and default cwd of the kernels; created if missing (by the API too, when it is started without `start-up.sh`); a path that is a file or cannot be written stops the server at start (exit 2)',
    },
    maxUploadBytes: {
      env: 'MAX_UPLOAD_BYTES',
      parse: bytes(),
      default: '4GiB',
      doc: 'largest accepted upload; a larger declared `Content-Length` gets 413 before any byte is read, a chunked upload as soon as it crosses the limit, and nothing is written',
    },
    maxExtractBytes: {
      env: 'MAX_EXTRACT_BYTES',
      parse: bytes(),
      default: '8GiB',
      doc: 'most bytes of file content an archive uploaded with `?extract=` may unpack to; more is 413 `ERR_EXTRACT_TOO_LARGE` with nothing written (a gzip bomb stops there)',
    },
    maxExtractEntries: {
      env: 'MAX_EXTRACT_ENTRIES',
      parse: integer(1, 10_000_000),
      default: '100000',
      doc: 'most entries (files, directories, links) such an archive may hold; more is 413 with nothing written',
    },
    maxWatches: {
      env: 'MAX_WATCHES',
      parse: integer(1, 10_000),
      default: '64',
      doc: "directory watches open at once on the API's own doors ([`GET /watch`](api.md#watching-a-directory) and `/ws` `watch_start`); one more is 429 `ERR_TOO_MANY_WATCHES`",
    },
    watchMaxDirectories: {
      env: 'WATCH_MAX_DIRECTORIES',
      parse: integer(1, 1_000_000),
      default: '10000',
      doc: 'directories one recursive watch may cover (each holds an inotify watch); more, at the start or as the tree grows, ends the watch with `ERR_WATCH_LIMIT`',
    },
  },
  contexts: {
    defaultLanguage: {
      env: 'DEFAULT_LANGUAGE',
      parse: lowerCase,
      default: 'python',
      doc: 'language (or kernelspec name) of the context used when a request names none; one with no kernel stops the server (exit 2, the message lists the languages there are) as soon as Jupyter answers, since only Jupyter knows its kernels',
    },
    maxContexts: {
      env: 'MAX_CONTEXTS',
      parse: integer(1, 100_000),
      default: '32',
      doc: 'contexts that may exist at once, the default ones included; one more is refused with 429',
    },
    kernelPool: {
      env: 'KERNEL_POOL',
      parse: kernelPool,
      default: 'python=1',
      doc: 'kernels kept started ahead of time per language (`language=size`, comma-separated, at most 64 each; a kernelspec name such as `ir` works too): new contexts and restarts take one instead of waiting for a kernel start; they count against `MAX_CONTEXTS` but give their slot up to a context; `python=0` turns the pool off. A language with no kernel is logged and left out',
    },
    // Validated only: every kernel reads it itself when image/kernels/launch-kernel starts it.
    memoryLimitBytes: {
      env: 'CONTEXT_MEMORY_LIMIT',
      // Below this not even a bare kernel starts: its address space alone is larger.
      parse: bytes('256MiB'),
      defaultText: 'unset (none)',
      doc: 'memory cap of each kernel, at least `256MiB`, e.g. `2GiB` (see [Memory](api.md#contexts)); read by each kernel at its start',
    },
    kernelIdentity: {
      env: 'KERNEL_IDS',
      parse: kernelIds,
      defaultText: 'set by `start-up.sh` from `KERNEL_USER`',
      doc: "`uid:gid,gid...` of the user the kernels run as, by which the API judges whether the kernels can enter a context's `cwd`; set it yourself when you start the API as another user than the kernels without `start-up.sh`",
    },
  },
  execution: {
    timeoutSeconds: {
      env: 'EXECUTION_TIMEOUT',
      parse: seconds,
      default: '0',
      defaultText: '`0` (none)',
      doc: 'time limit, in seconds, of executions that set no `timeout`',
    },
    maxTimeoutSeconds: {
      env: 'MAX_EXECUTION_TIMEOUT',
      parse: seconds,
      default: '0',
      defaultText: '`0` (none)',
      doc: 'largest `timeout` a request may ask for; needs `EXECUTION_TIMEOUT`',
    },
    interruptGraceMs: {
      env: 'INTERRUPT_GRACE',
      parse: timerMs(),
      default: '5',
      doc: 'seconds a kernel may ignore an interrupt before it is restarted',
    },
    keepaliveIntervalMs: {
      env: 'KEEPALIVE_INTERVAL',
      parse: timerMs(),
      default: '5',
      doc: 'seconds of silence before a `keepalive` line, and between WebSocket pings; `0` turns both off',
    },
    maxOutputBytes: {
      env: 'MAX_OUTPUT_BYTES',
      parse: bytes(),
      default: '64MiB',
      doc: 'stdout/stderr kept per execution (sizes take `KiB`, `MiB`, `GiB`, `KB`, ...)',
    },
    maxQueued: {
      env: 'MAX_QUEUED_EXECUTIONS',
      parse: integer(0, 100_000),
      default: '32',
      doc: 'executions that may wait behind a busy context before 429',
    },
    maxQueuedBytes: {
      env: 'MAX_QUEUED_BYTES',
      parse: bytes(),
      default: '256MiB',
      doc: "bytes of code and `env_vars` that executions waiting to start may hold over all contexts together; one more is 429 `ERR_QUEUE_FULL` (a single execution's code is at most 16 MiB)",
    },
    bufferBytes: {
      env: 'EXECUTION_BUFFER_BYTES',
      parse: bytes('2MiB'),
      default: '16MiB',
      doc: 'events kept per execution for readers that re-attach (at least `2MiB`)',
    },
    bufferTotalBytes: {
      env: 'EXECUTION_BUFFER_TOTAL_BYTES',
      parse: bytes(),
      default: '256MiB',
      doc: 'events kept over all executions and commands together; beyond it the oldest go first, from finished ones before running ones',
    },
    retentionMs: {
      env: 'EXECUTION_RETENTION',
      parse: milliseconds,
      default: '600',
      doc: 'seconds a finished execution stays readable',
    },
    maxRetained: {
      env: 'MAX_RETAINED_EXECUTIONS',
      parse: integer(0, 100_000),
      default: '100',
      doc: 'finished executions kept at most',
    },
  },
  processes: {
    hostSocket: {
      env: 'PROCESS_HOST_SOCKET',
      parse: absolutePath,
      defaultText: 'set by `start-up.sh`',
      doc: "Unix socket of the process host, which runs [commands and terminals](api.md#processes) as the kernels' user; unset, `/processes` answers 503 `ERR_PROCESS_HOST_UNAVAILABLE`",
    },
    maxProcesses: {
      env: 'MAX_PROCESSES',
      parse: integer(1, 100_000),
      default: '128',
      doc: 'commands and terminals running at once; one more is refused with 429 `ERR_TOO_MANY_PROCESSES`. Finished ones are kept as executions are (`EXECUTION_RETENTION`, `MAX_RETAINED_EXECUTIONS`, `EXECUTION_BUFFER_BYTES`)',
    },
  },
  files: {
    maxOperations: {
      env: 'MAX_FILE_OPERATIONS',
      parse: integer(1, 100_000),
      default: '64',
      doc: "file operations at once on ENVD_PORT (e2b's `sandbox.files`: a transfer for as long as its bytes move, a listing, a stat); one more is refused at once (429, or Connect's `resource_exhausted`). Directory watches have their own bound (see [e2b.md](e2b.md#files))",
    },
  },
  access: {
    token: {
      env: 'ACCESS_TOKEN',
      parse: token,
      defaultText: 'unset',
      doc: 'shared secret required on every endpoint but the health checks (at least 16 printable ASCII characters); see [Access control](security.md#access-control)',
    },
    mode: {
      env: 'AUTH_MODE',
      parse: oneOf<AuthMode>(['none', 'token', 'claim']),
      default: (env) => (read(env, 'ACCESS_TOKEN') ? 'token' : 'none'),
      defaultText: '`token` with `ACCESS_TOKEN`, else `none`',
      doc: '`none`, `token` or `claim`; see [Access control](security.md#access-control)',
    },
    corsOrigins: {
      env: 'CORS_ORIGINS',
      parse: origins,
      default: '',
      defaultText: 'unset (CORS off)',
      doc: 'origins allowed by CORS, comma-separated; `*` allows any; see [CORS](security.md#cors)',
    },
    // Unset leaves the default to the auth mode (see plugins/host-origin.ts).
    allowedHosts: {
      env: 'ALLOWED_HOSTS',
      parse: hostNames,
      defaultText: 'unset',
      doc: 'host names (the `Host` header) the server answers to besides `localhost` and IP addresses; `.example.com` also matches its subdomains, `*` any name; see [Browsers and host names](security.md#browsers-and-host-names)',
    },
  },
  metrics: {
    token: {
      env: 'METRICS_TOKEN',
      parse: token,
      defaultText: 'unset',
      doc: "a second token that opens `GET /metrics` only (the scraper's); see [Metrics](metrics.md)",
    },
    public: {
      env: 'METRICS_PUBLIC',
      parse: boolean,
      default: 'false',
      doc: '`GET /metrics` needs no token at all (a private network); see [Metrics](metrics.md)',
    },
  },
  mcp: {
    sessionIdleMs: {
      env: 'MCP_SESSION_IDLE',
      parse: timerMs(),
      default: '1800',
      doc: 'seconds an [MCP](mcp.md) session may go without a call before it is closed and its contexts deleted; `0` never',
    },
    maxSessions: {
      env: 'MCP_MAX_SESSIONS',
      parse: integer(1, 100_000),
      default: '100',
      doc: 'MCP sessions open at once: a new one closes the session unused the longest (and deletes its contexts); while every session has a call running, `initialize` is refused with 429 and `Retry-After`',
    },
    maxTextChars: {
      env: 'MCP_MAX_TEXT',
      parse: integer(100, 100_000_000),
      default: '20000',
      doc: 'characters of stdout, of stderr, of each text result and of a traceback an MCP answer carries; the middle of longer ones is cut',
    },
    maxFileBytes: {
      env: 'MCP_MAX_FILE_BYTES',
      parse: bytes(),
      default: '1MiB',
      doc: 'largest image or binary file `read_file` returns inline; larger ones are answered with their download URL',
    },
  },
} as const satisfies Record<string, Record<string, Setting<unknown>>>;

export type Group = keyof typeof SETTINGS;

/** The settings of one group, in the table's order. */
export function settingsOf(group: Group): Setting<unknown>[] {
  return Object.values(SETTINGS[group]) as Setting<unknown>[];
}

/** Every setting of the table, group by group. */
export function everySetting(): Setting<unknown>[] {
  return (Object.keys(SETTINGS) as Group[]).flatMap(settingsOf);
}

/** Titles of the groups in docs/configuration.md, in the table's order. */
export const GROUP_TITLES: Record<Group, string> = {
  server: 'Server',
  jupyter: 'Jupyter',
  workspace: 'Workspace and files',
  contexts: 'Contexts and kernels',
  execution: 'Executions',
  processes: 'Commands and terminals',
  files: "e2b's sandbox files (ENVD_PORT)",
  access: 'Access control',
  metrics: 'Metrics',
  mcp: 'MCP',
};

/** A variable that `start-up.sh` reads and the API does not: documented beside the API's own. */
export interface LauncherSetting {
  readonly env: string;
  readonly defaultText: string;
  readonly doc: string;
}

export const LAUNCHER_SETTINGS: readonly LauncherSetting[] = [
  { env: 'JUPYTER_PYTHON', defaultText: '`/usr/bin/python3`', doc: 'the Python with Jupyter' },
  { env: 'API_COMMAND', defaultText: '`node dist/server/main.js`', doc: 'what to run as the API' },
  {
    env: 'KERNEL_USER',
    defaultText: 'unset; the image: `user`',
    doc: 'run as root with `KERNEL_USER`, `API_USER`, `EGRESS_USER` and `WORKSPACE_GROUP` set, `start-up.sh` runs Jupyter and the kernels, the API and the egress proxy under those users, sharing the workspace through that group; without them everything runs as the user who started it',
  },
  {
    env: 'ROLE',
    defaultText: 'unset (everything in one container)',
    doc: "`jupyter`: Jupyter, the kernels and the process host only, as the container's own user; `api`: the API only. The two containers of the Kubernetes pod, which runs no root; see [Kubernetes](deployment.md#kubernetes)",
  },
  { env: 'API_USER', defaultText: 'unset; the image: `code-interpreter`', doc: 'the user the API runs as (see `KERNEL_USER`)' },
  { env: 'EGRESS_USER', defaultText: 'unset; the image: `egress`', doc: 'the user the egress proxy runs as (see `KERNEL_USER`)' },
  {
    env: 'WORKSPACE_GROUP',
    defaultText: 'unset; the image: `workspace`',
    doc: 'the group through which kernels and API share the workspace (see `KERNEL_USER`)',
  },
  {
    env: 'EGRESS_ALLOW',
    defaultText: 'unset (unrestricted)',
    doc: 'what kernel code may connect to: domains, `*.domains`, IPs, CIDRs, or `none`; needs `--cap-add NET_ADMIN`; see [Egress allow-list](security.md#egress-allow-list)',
  },
  { env: 'EGRESS_PROXY_PORT', defaultText: '`3128`', doc: 'port of the egress proxy' },
  { env: 'EGRESS_STATE_DIR', defaultText: '`/run/code-interpreter`', doc: 'where the egress proxy keeps its list' },
  {
    env: 'NODE_COMPILE_CACHE',
    defaultText: "a directory of the API's own user in the temporary directory",
    doc: 'where Node 22.1+ keeps the compiled code of the API, so that the next start skips compiling it (about 70 ms of the start on Node 24); a directory that another user owns or may write to is not used (code in it would run as the API). `NODE_DISABLE_COMPILE_CACHE=1` turns the cache off. Either way the API starts as usual',
  },
];
