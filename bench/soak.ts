/**
 * The soak: a mixed load at a fixed rate for N minutes against a server of its own, with a row
 * per minute (latency, errors, the processes' memory and descriptors) and verdicts at the end:
 * zero unexpected errors, RSS and descriptors flat after the warm-up, p99 stable. Exit 1 on an
 * unexpected error or a dead server. See bench/README.md ("Soak").
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { descendantsOf, tail } from '../tests/helpers/processes.js';
import { ApiClient } from './lib/api-client.js';
import { ensureBuild } from './lib/build.js';
import { machineInfo } from './lib/machine.js';
import { readMemory } from './lib/proc-memory.js';
import { ServerUnderTest } from './lib/processes.js';
import {
  descriptorsGrew,
  ErrorLog,
  flatness,
  LATE_MS,
  OpenLoopSchedule,
  p99Stability,
  parseMinutes,
  perMinute,
  stabilityWindow,
  warmUpSeconds,
  type OpRecord,
  type ResourceSample,
} from './lib/soak-stats.js';
import { formatNumber, MiB, now, percentile, sleep } from './lib/stats.js';
import { table } from './lib/suite.js';

// @jupyterlab/services reports connection changes on the console; stdout carries the report.
console.log = console.info = console.debug = () => undefined;

const usage = `Usage: npm run soak -- [options]
  --minutes N          how long to run the load, 1 to 720 (default 30)
  --log-level LEVEL    the server's LOG_LEVEL (default: warn)
  --out FILE           also write the Markdown report to FILE
  --json FILE          also write the raw numbers to FILE
  --no-build           do not rebuild dist/ when it is missing or older than server/
The soak starts its own server (start-up.sh, listening on 127.0.0.1 only) and drives it.
`;

const { values: options } = parseArgs({
  options: {
    minutes: { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
    out: { type: 'string' },
    json: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (options.help) {
  process.stdout.write(usage);
  process.exit(0);
}
let minutes: number;
try {
  minutes = parseMinutes(options.minutes);
} catch (error) {
  process.stderr.write(`soak: ${(error as Error).message}\n${usage}`);
  process.exit(2);
}

const startedWall = Date.now();
function progress(message: string): void {
  process.stderr.write(`[soak ${((Date.now() - startedWall) / 1000).toFixed(0).padStart(5)}s] ${message}\n`);
}

/** Every operation must answer within this, or it is an error. */
const OP_TIMEOUT_MS = 60_000;

interface Ctx {
  server: ServerUnderTest;
  api: ApiClient;
  /** Contexts of their own for the kinds that would otherwise queue behind each other. */
  contexts: Record<'mib' | 'sleep' | 'restart' | 'abandon' | 'interrupt' | 'ws', string>;
}

interface Kind {
  name: string;
  /** Operations per minute. */
  perMinute: number;
  /** At most this many at once: one more waits (and counts as late if it waits too long). */
  concurrency: number;
  run(ctx: Ctx, n: number, signal: AbortSignal): Promise<void>;
}

const agent = new Agent({ keepAliveTimeout: 10_000, bodyTimeout: OP_TIMEOUT_MS, headersTimeout: OP_TIMEOUT_MS });

function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** POST /execute read as NDJSON events, for the kinds that need more than ApiClient.execute checks. */
async function* executeEvents(
  ctx: Ctx,
  body: Record<string, unknown>,
  signal: AbortSignal,
): AsyncGenerator<Record<string, unknown> & { __executionId?: string }> {
  const response = await request(`${ctx.server.baseUrl}/execute`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
  if (response.statusCode !== 200)
    throw new Error(`POST /execute answered ${response.statusCode}: ${(await response.body.text()).slice(0, 200)}`);
  const executionId = String(response.headers['x-execution-id'] ?? '');
  let partial = '';
  for await (const chunk of response.body) {
    partial += (chunk as Buffer).toString('utf8');
    let newline: number;
    while ((newline = partial.indexOf('\n')) !== -1) {
      const line = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      if (line.trim() !== '') yield { ...(JSON.parse(line) as Record<string, unknown>), __executionId: executionId };
    }
  }
}

async function call(method: string, url: string, body?: Buffer | string, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const response = await request(url, { method: method as 'GET', dispatcher: agent, headers, body, signal });
  const bytes = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, bytes };
}

async function json(
  ctx: Ctx,
  method: string,
  route: string,
  body: unknown,
  expected: number,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  const { status, bytes } = await call(
    method,
    `${ctx.server.baseUrl}${route}`,
    body === undefined ? undefined : JSON.stringify(body),
    body === undefined ? {} : { 'content-type': 'application/json' },
    signal,
  );
  expect(status === expected, `${method} ${route} answered ${status} (expected ${expected}): ${bytes.toString('utf8').slice(0, 200)}`);
  return bytes.length > 0 ? (JSON.parse(bytes.toString('utf8')) as Record<string, unknown>) : {};
}

async function executeChecked(ctx: Ctx, body: { code: string; context_id?: string }): Promise<Awaited<ReturnType<ApiClient['execute']>>> {
  return ctx.api.execute(body);
}

/** One `/ws` session: open, run an execution and a command, close. */
async function wsSession(ctx: Ctx, n: number): Promise<void> {
  const socket = new WebSocket(`${ctx.server.baseUrl.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
  try {
    await once(socket, 'open');
    const frames: Record<string, unknown>[] = [];
    let done = 0;
    const finished = new Promise<void>((resolve, reject) => {
      socket.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        frames.push(frame);
        if (frame.type === 'request_error' || frame.type === 'error') reject(new Error(`/ws sent ${JSON.stringify(frame).slice(0, 200)}`));
        if (frame.type === 'end_of_execution' && ++done === 2) resolve();
      });
      socket.on('close', () => reject(new Error('the API closed the WebSocket early')));
      socket.on('error', reject);
    });
    socket.send(JSON.stringify({ type: 'execute', request_id: 'e', context_id: ctx.contexts.ws, code: `6*7+${n % 10}` }));
    socket.send(JSON.stringify({ type: 'process_start', request_id: 'p', command: `printf 'ws-%s' ${n}`, stdin: false }));
    await finished;
    const result = frames.find((f) => f.type === 'result' && f.is_main_result === true);
    expect(result?.text === String(42 + (n % 10)), `/ws execute returned ${JSON.stringify(result?.text)}`);
    const stdout = frames
      .filter((f) => f.type === 'stdout' && f.process_id !== undefined)
      .map((f) => f.text)
      .join('');
    expect(stdout === `ws-${n}`, `/ws process_start printed ${JSON.stringify(stdout.slice(0, 100))}`);
  } finally {
    socket.close();
    if (socket.readyState !== WebSocket.CLOSED) await once(socket, 'close').catch(() => undefined);
  }
}

/** One MCP session through the SDK's client: execute_code and run_command, then the session ends. */
async function mcpSession(ctx: Ctx, n: number): Promise<void> {
  const client = new Client({ name: 'soak', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${ctx.server.baseUrl}/mcp`));
  await client.connect(transport);
  try {
    const text = (result: CallToolResult) => result.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
    const executed = (await client.callTool({ name: 'execute_code', arguments: { code: `print(${n} * 2)` } })) as CallToolResult;
    expect(!executed.isError && text(executed).includes(String(n * 2)), `execute_code answered ${text(executed).slice(0, 200)}`);
    const ran = (await client.callTool({ name: 'run_command', arguments: { command: `echo mcp-${n}` } })) as CallToolResult;
    expect(!ran.isError && text(ran).includes(`mcp-${n}`), `run_command answered ${text(ran).slice(0, 200)}`);
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close().catch(() => undefined);
  }
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const TREE_FILES = 24;

/**
 * The mix, in operations per minute. About 4 executions a second in all, a kernel started every
 * 10 s or so (contexts, restarts, MCP sessions): a steady load a 2-core machine carries with room
 * to spare, so that growth shows a leak rather than a backlog.
 */
const kinds: Kind[] = [
  {
    name: 'exec 1+1',
    perMinute: 120,
    concurrency: 2,
    async run(ctx) {
      const outcome = await executeChecked(ctx, { code: '1+1' });
      expect(outcome.result === '2', `1+1 returned ${String(outcome.result)}`);
    },
  },
  {
    name: 'exec 4 KiB',
    perMinute: 30,
    concurrency: 2,
    async run(ctx) {
      const outcome = await executeChecked(ctx, { code: "print('k' * 4095)" });
      expect(outcome.streamChars === 4096, `4 KiB of output came as ${outcome.streamChars} characters`);
    },
  },
  {
    name: 'exec 2 MiB stream',
    perMinute: 6,
    concurrency: 1,
    async run(ctx) {
      const code = "import sys\nfor _ in range(2):\n    sys.stdout.write('y' * 1048575 + '\\n'); sys.stdout.flush()";
      const outcome = await executeChecked(ctx, { code, context_id: ctx.contexts.mib });
      expect(outcome.streamChars === 2 * MiB, `2 MiB of output came as ${outcome.streamChars} characters`);
    },
  },
  {
    name: 'exec sleep 0.5 s',
    perMinute: 12,
    concurrency: 1,
    async run(ctx, n) {
      const outcome = await executeChecked(ctx, {
        code: `import time\ntime.sleep(0.5)\nprint('slept', ${n})`,
        context_id: ctx.contexts.sleep,
      });
      expect(outcome.streamChars === `slept ${n}\n`.length, `the sleep printed ${outcome.streamChars} characters`);
    },
  },
  {
    name: 'context create+delete',
    perMinute: 4,
    concurrency: 2,
    async run(ctx, n, signal) {
      const created = await json(ctx, 'POST', '/contexts', n % 2 === 0 ? {} : { cwd: `soak/ctx-${n % 3}` }, 200, signal);
      const id = String(created.id);
      try {
        const outcome = await executeChecked(ctx, { code: 'import os\nlen(os.getcwd()) > 0', context_id: id });
        expect(outcome.result === 'True', `a new context returned ${String(outcome.result)}`);
      } finally {
        await json(ctx, 'DELETE', `/contexts/${id}`, undefined, 200, signal);
      }
    },
  },
  {
    name: 'context restart',
    perMinute: 3,
    concurrency: 1,
    async run(ctx, n, signal) {
      const id = ctx.contexts.restart;
      await executeChecked(ctx, { code: `soak_value = ${n}`, context_id: id });
      await json(ctx, 'POST', `/contexts/${id}/restart`, undefined, 200, signal);
      const outcome = await executeChecked(ctx, { code: "'soak_value' in globals()", context_id: id });
      expect(outcome.result === 'False', `after a restart the state survived (${String(outcome.result)})`);
    },
  },
  {
    name: 'file up+down',
    perMinute: 12,
    concurrency: 2,
    async run(ctx, n, signal) {
      const body = randomBytes(1024 * (1 + ((n * 37) % 512)));
      const route = `${ctx.server.baseUrl}/files/soak/files/f-${n % 6}.bin`;
      const put = await call('PUT', route, body, { 'content-type': 'application/octet-stream' }, signal);
      expect(put.status === 200 || put.status === 201, `PUT /files answered ${put.status}: ${put.bytes.toString().slice(0, 200)}`);
      const got = await call('GET', route, undefined, {}, signal);
      expect(
        got.status === 200 && sha(got.bytes) === sha(body),
        `GET /files answered ${got.status} with ${got.bytes.length} bytes, not the ${body.length} sent`,
      );
      if (n % 3 === 0) {
        const deleted = await call('DELETE', route, undefined, {}, signal);
        expect(deleted.status === 204, `DELETE /files answered ${deleted.status}`);
      }
    },
  },
  {
    name: 'archive down+up',
    perMinute: 4,
    concurrency: 1,
    async run(ctx, n, signal) {
      const base = ctx.server.baseUrl;
      const down = await call('GET', `${base}/files/soak/tree?format=${n % 2 === 0 ? 'tar' : 'tar.gz'}`, undefined, {}, signal);
      expect(down.status === 200 && down.bytes.length > 0, `GET ?format=tar answered ${down.status} (${down.bytes.length} bytes)`);
      const target = `soak/unpacked-${n % 2}`;
      const up = await call('PUT', `${base}/files/${target}?extract=${n % 2 === 0 ? 'tar' : 'tar.gz'}`, down.bytes, {}, signal);
      expect(up.status === 200, `PUT ?extract=tar answered ${up.status}: ${up.bytes.toString().slice(0, 200)}`);
      const index = n % TREE_FILES;
      const [original, copy] = await Promise.all([
        call('GET', `${base}/files/soak/tree/d${index % 4}/file-${index}.txt`, undefined, {}, signal),
        call('GET', `${base}/files/${target}/d${index % 4}/file-${index}.txt`, undefined, {}, signal),
      ]);
      expect(copy.status === 200 && sha(copy.bytes) === sha(original.bytes), `the unpacked file-${index}.txt differs (${copy.status})`);
      const deleted = await call('DELETE', `${base}/files/${target}`, undefined, {}, signal);
      expect(deleted.status === 204, `DELETE of the unpacked tree answered ${deleted.status}`);
    },
  },
  { name: 'ws session', perMinute: 6, concurrency: 2, run: (ctx, n) => wsSession(ctx, n) },
  { name: 'mcp session', perMinute: 4, concurrency: 2, run: (ctx, n) => mcpSession(ctx, n) },
  {
    name: 'abandoned',
    perMinute: 6,
    concurrency: 1,
    async run(ctx, n, signal) {
      const controller = new AbortController();
      const abort = () => controller.abort();
      signal.addEventListener('abort', abort);
      try {
        const events = executeEvents(
          ctx,
          { code: `import time\nprint(${n}, flush=True)\ntime.sleep(30)`, context_id: ctx.contexts.abandon },
          controller.signal,
        );
        for await (const event of events) {
          if (event.type === 'stdout') break;
          expect(event.type !== 'error', `the execution to abandon reported ${JSON.stringify(event).slice(0, 200)}`);
        }
        controller.abort();
      } finally {
        signal.removeEventListener('abort', abort);
      }
      const next = await executeChecked(ctx, { code: '2+2', context_id: ctx.contexts.abandon });
      expect(next.result === '4', `after a disconnect the context returned ${String(next.result)}`);
    },
  },
  {
    name: 'interrupt',
    perMinute: 6,
    concurrency: 1,
    async run(ctx, n, signal) {
      const id = ctx.contexts.interrupt;
      let interrupted = false;
      let errorName: unknown;
      let ended = false;
      for await (const event of executeEvents(
        ctx,
        { code: `import time\nprint('ready', flush=True)\ntime.sleep(30)`, context_id: id },
        signal,
      )) {
        if (event.type === 'stdout' && !interrupted) {
          interrupted = true;
          // Both doors: the context's and the execution's.
          if (n % 2 === 0) await json(ctx, 'POST', `/contexts/${id}/interrupt`, undefined, 200, signal);
          else await json(ctx, 'POST', `/executions/${event.__executionId}/interrupt`, undefined, 200, signal);
        } else if (event.type === 'error') errorName = event.name;
        else if (event.type === 'end_of_execution') ended = true;
      }
      expect(
        ended && errorName === 'KeyboardInterrupt',
        `an interrupted execution ended ${ended ? 'with ' + String(errorName) : 'without end_of_execution'}`,
      );
    },
  },
  {
    name: 'command',
    perMinute: 20,
    concurrency: 2,
    async run(ctx, n, signal) {
      if (n % 5 === 4) {
        const started = await ctx.api.startProcess({ command: 'sleep 600' });
        await json(ctx, 'DELETE', `/processes/${started.process_id}`, undefined, 200, signal);
        return;
      }
      const outcome = await ctx.api.runProcess({ command: `printf 'soak-%s\\n' ${n}; printf 'e' >&2` });
      expect(
        outcome.exitCode === 0 && outcome.outputBytes === `soak-${n}\n`.length + 1,
        `the command exited ${outcome.exitCode} with ${outcome.outputBytes} bytes`,
      );
    },
  },
];

// ---- resources

interface Resources {
  t: number;
  apiRss: number;
  apiFds: number;
  jupyterRss: number;
  kernelsPss: number;
  kernelProcesses: number;
  hostRss: number;
  hostFds: number;
  /** The machine's 1-minute load average: on a shared machine, what the neighbours were doing. */
  load: number;
}

function descriptors(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

function rss(pid: number): number {
  try {
    return readMemory(pid).rss;
  } catch {
    return Number.NaN;
  }
}

function pss(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function readResources(server: ServerUnderTest, t: number): Resources {
  const kernels = descendantsOf(server.jupyterPid);
  return {
    t,
    apiRss: rss(server.apiPid),
    apiFds: descriptors(server.apiPid),
    jupyterRss: rss(server.jupyterPid),
    kernelsPss: kernels.reduce((sum, proc) => sum + pss(proc.pid), 0),
    kernelProcesses: kernels.length,
    hostRss: server.processHostPid ? rss(server.processHostPid) : Number.NaN,
    hostFds: server.processHostPid ? descriptors(server.processHostPid) : Number.NaN,
    load: os.loadavg()[0]!,
  };
}

// ---- the run

const mib = (bytes: number) => formatNumber(bytes / MiB, 0);
const ms = (value: number) => formatNumber(value, value < 10 ? 1 : 0);
const pct = (value: number) => `${value >= 0 ? '+' : ''}${formatNumber(value * 100, 1)}%`;

async function setUp(server: ServerUnderTest, api: ApiClient): Promise<Ctx> {
  const names = ['mib', 'sleep', 'restart', 'abandon', 'interrupt', 'ws'] as const;
  const contexts = {} as Ctx['contexts'];
  for (const name of names) contexts[name] = await api.createContext();
  const ctx: Ctx = { server, api, contexts };
  // The tree the archive operations take down and put back.
  for (let i = 0; i < TREE_FILES; i++) {
    const body = randomBytes(512 + i * 300).toString('base64');
    const { status } = await call('PUT', `${server.baseUrl}/files/soak/tree/d${i % 4}/file-${i}.txt`, body);
    expect(status === 201 || status === 200, `could not write the archive tree (${status})`);
  }
  await api.execute({ code: '1+1' });
  return ctx;
}

async function main(): Promise<number> {
  ensureBuild(options['no-build'], progress);
  const machine = machineInfo();
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'code-interpreter-soak-'));
  const errors = new ErrorLog();
  const records: OpRecord[] = [];
  const samples: Resources[] = [];
  let fatal: string | undefined;
  let server: ServerUnderTest | undefined;
  let api: ApiClient | undefined;

  const stop = async () => {
    await api?.close().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    await agent.close().catch(() => undefined);
    await rm(tmpDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping`);
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    progress('starting Jupyter and the API through start-up.sh (127.0.0.1)');
    // The production defaults, the kernel pool included: its refills are part of a steady load.
    server = await ServerUnderTest.spawn({ dir: path.join(tmpDir, 'server'), logLevel: options['log-level'] });
    await server.waitUntilReady();
    const liveServer = server;
    api = new ApiClient(server.baseUrl);
    progress(`server up: API pid ${server.apiPid}, Jupyter pid ${server.jupyterPid}, process host pid ${server.processHostPid}`);
    const ctx = await setUp(server, api);

    const runMs = minutes * 60_000;
    const t0 = now();
    const schedules = kinds.map(
      (kind, i) => new OpenLoopSchedule(60_000 / kind.perMinute, 0, ((i / kinds.length) * 60_000) / kind.perMinute),
    );
    const queues = kinds.map(() => [] as number[]);
    const inFlight = kinds.map(() => 0);
    const counters = kinds.map(() => 0);
    const running = new Set<Promise<void>>();

    const start = (index: number, due: number) => {
      const kind = kinds[index]!;
      const n = counters[index]!;
      counters[index] = n + 1;
      const startedAt = now() - t0;
      inFlight[index]! += 1;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new Error(`no answer within ${OP_TIMEOUT_MS / 1000} s`)), OP_TIMEOUT_MS);
      const work = Promise.race([
        kind.run(ctx, n, controller.signal),
        new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error))),
      ]).then(
        () => true,
        (error: unknown) => {
          errors.add(kind.name, error instanceof Error ? error.message : String(error), (now() - t0) / 1000);
          return false;
        },
      );
      const done = work.then((ok) => {
        clearTimeout(timer);
        inFlight[index]! -= 1;
        records.push({ kind: kind.name, due, startDelay: startedAt - due, latency: now() - t0 - due, ok });
      });
      running.add(done);
      void done.finally(() => running.delete(done));
    };

    let lastSample = -Infinity;
    let minute = 0;
    const header = [
      'min',
      'ops',
      'err',
      'late',
      '1+1 p50/p99 ms',
      'all p99 ms',
      'API RSS MiB',
      'API fds',
      'Jupyter RSS MiB',
      'kernels PSS MiB (procs)',
      'host RSS MiB / fds',
      'load',
    ];
    progress(`running ${minutes} minute(s) of load; a row per minute:\n${header.join(' | ')}`);
    while (fatal === undefined) {
      const t = now() - t0;
      if (t >= runMs) break;
      for (let i = 0; i < kinds.length; i++) {
        queues[i]!.push(...schedules[i]!.due(t, runMs));
        while (queues[i]!.length > 0 && inFlight[i]! < kinds[i]!.concurrency) start(i, queues[i]!.shift()!);
      }
      if (t - lastSample >= 5000) {
        lastSample = t;
        try {
          liveServer.assertRunning();
          samples.push(readResources(liveServer, t / 1000));
          if (!Number.isFinite(samples.at(-1)!.apiRss)) throw new Error(`the API process (pid ${liveServer.apiPid}) is gone`);
        } catch (error) {
          fatal = (error as Error).message;
        }
      }
      if (t >= (minute + 1) * 60_000) {
        progress(minuteRow(minute, records, samples).join(' | '));
        minute += 1;
      }
      await sleep(20);
    }
    // Operations still due (a backlog at the end) start now and count as late; then every one finishes.
    for (let i = 0; i < kinds.length; i++) for (const due of queues[i]!.splice(0)) start(i, due);
    progress(`load done; waiting for ${running.size} operation(s) in flight`);
    await Promise.race([Promise.allSettled([...running]), sleep(OP_TIMEOUT_MS + 5000)]);
    if (minute < minutes && fatal === undefined) progress(minuteRow(minute, records, samples).join(' | '));
    try {
      liveServer.assertRunning();
    } catch (error) {
      fatal ??= (error as Error).message;
    }
  } catch (error) {
    fatal = error instanceof Error ? (error.stack ?? error.message) : String(error);
  }
  if (fatal && server) fatal += `\n--- server log (last lines) ---\n${tail(server.logFile)}`;
  if (fatal) progress(`FATAL: ${fatal}`);

  const { markdown, failed, data } = report(machine, records, samples, errors, fatal);
  process.stdout.write(markdown);
  if (options.out) await writeFile(options.out, markdown);
  if (options.json)
    await writeFile(
      options.json,
      `${JSON.stringify({ minutes, machine, kinds: kinds.map(({ name, perMinute, concurrency }) => ({ name, perMinute, concurrency })), records, samples, errors: [...errors.groups.values()], fatal, verdicts: data }, null, 2)}\n`,
    );
  await stop();
  return failed ? 1 : 0;
}

function minuteRow(minute: number, records: readonly OpRecord[], samples: readonly Resources[]): string[] {
  const inMinute = records.filter((r) => Math.floor(r.due / 60_000) === minute);
  const ok = inMinute.filter((r) => r.ok);
  const tiny = ok.filter((r) => r.kind === 'exec 1+1').map((r) => r.latency);
  const sample = samples.filter((s) => s.t < (minute + 1) * 60).at(-1);
  return [
    String(minute + 1),
    String(inMinute.length),
    String(inMinute.length - ok.length),
    String(inMinute.filter((r) => r.startDelay > LATE_MS).length),
    `${ms(percentile(tiny, 50))} / ${ms(percentile(tiny, 99))}`,
    ms(
      percentile(
        ok.map((r) => r.latency),
        99,
      ),
    ),
    sample ? mib(sample.apiRss) : 'n/a',
    sample ? String(sample.apiFds) : 'n/a',
    sample ? mib(sample.jupyterRss) : 'n/a',
    sample ? `${mib(sample.kernelsPss)} (${sample.kernelProcesses})` : 'n/a',
    sample ? `${mib(sample.hostRss)} / ${sample.hostFds}` : 'n/a',
    sample ? formatNumber(sample.load, 1) : 'n/a',
  ];
}

function report(
  machine: ReturnType<typeof machineInfo>,
  records: readonly OpRecord[],
  samples: readonly Resources[],
  errors: ErrorLog,
  fatal: string | undefined,
): { markdown: string; failed: boolean; data: unknown } {
  const byKind = perMinute(records, minutes);
  const warm = warmUpSeconds(minutes);
  const series = (key: keyof Resources): ResourceSample[] =>
    samples.map((s) => ({ t: s.t, value: s[key] })).filter((s) => Number.isFinite(s.value));
  const flat = {
    apiRss: flatness(series('apiRss'), minutes),
    apiFds: flatness(series('apiFds'), minutes),
    jupyterRss: flatness(series('jupyterRss'), minutes),
    kernelsPss: flatness(series('kernelsPss'), minutes),
    hostRss: flatness(series('hostRss'), minutes),
    hostFds: flatness(series('hostFds'), minutes),
  };
  const stability = p99Stability(byKind, minutes);
  const late = records.filter((r) => r.startDelay > LATE_MS).length;
  const fdsFail = minutes >= 10 && (descriptorsGrew(flat.apiFds) || descriptorsGrew(flat.hostFds));
  const failed = fatal !== undefined || errors.total > 0 || fdsFail;
  const yes = (ok: boolean) => (ok ? 'yes' : '**no**');
  const short = minutes < 5 ? ' (a run under 5 minutes is too short to judge this)' : '';

  const perKind = kinds.map((kind) => {
    const mine = records.filter((r) => r.kind === kind.name);
    const lat = mine.filter((r) => r.ok).map((r) => r.latency);
    return [
      kind.name,
      String(kind.perMinute),
      String(mine.length),
      ms(percentile(lat, 50)),
      ms(percentile(lat, 99)),
      ms(percentile(lat, 100)),
      String(mine.filter((r) => !r.ok).length),
      String(mine.filter((r) => r.startDelay > LATE_MS).length),
    ];
  });
  const parts = [
    `## Soak: ${minutes} minute(s) of mixed load at a fixed rate`,
    '',
    table(
      ['Machine', ''],
      [
        ['Date', machine.date],
        ['CPU / memory', `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB`],
        ['OS / Node / Python', `${machine.os}, Linux ${machine.kernel} / ${machine.node} / ${machine.python}`],
        ['jupyter_server / ipykernel', `${machine.jupyterServer} / ${machine.ipykernel}`],
        ['Commit', machine.commit],
        [
          'Load average before → after',
          `${machine.loadAverage.map((v) => v.toFixed(2)).join(' ')} → ${os
            .loadavg()
            .map((v) => v.toFixed(2))
            .join(' ')}`,
        ],
        ['Server', `start-up.sh on 127.0.0.1, production defaults (KERNEL_POOL python=1), LOG_LEVEL ${options['log-level']}`],
      ],
    ),
    '',
    `Per minute (by the time each operation was due). Latency runs from that time to the checked answer, so a late start counts in it; "late" started more than ${LATE_MS / 1000} s after its time. Memory and descriptors: the last reading of the minute (read every 5 s from /proc; kernels: PSS of every process under Jupyter; load: the machine's 1-minute load average, which other work on a shared machine raises).`,
    '',
    table(
      [
        'Minute',
        'Ops',
        'Errors',
        'Late',
        '`1+1` p50 / p99 ms',
        'All ops p99 ms',
        'API RSS MiB',
        'API fds',
        'Jupyter RSS MiB',
        'Kernels PSS MiB (processes)',
        'Process host RSS MiB / fds',
        'Load (1 min)',
      ],
      Array.from({ length: minutes }, (_, m) => minuteRow(m, records, samples)),
    ),
    '',
    table(['Operation', 'Per minute', 'Count', 'p50 ms', 'p99 ms', 'max ms', 'Errors', 'Late'], perKind),
    '',
    `### Verdicts`,
    '',
    `Warm-up: the first ${warm >= 60 ? `${warm / 60} minute(s) (20% of the run, at least 1)` : `${warm} s`}. Flat: the median reading of the last ${minutes <= 1 ? '20 s' : 'minute'} is within 10% of the median of the first ${minutes <= 1 ? '20 s' : 'minute'} after the warm-up.`,
    '',
    table(
      ['Check', 'After warm-up', 'End', 'Change', 'Met'],
      [
        ['Unexpected errors', '', String(errors.total), '', yes(errors.total === 0)],
        ['Server alive to the end', '', fatal === undefined ? 'yes' : 'no', '', yes(fatal === undefined)],
        ...(
          [
            ['API RSS', flat.apiRss, true],
            ['API open descriptors', flat.apiFds, false],
            ['Jupyter RSS', flat.jupyterRss, true],
            ['Kernels PSS', flat.kernelsPss, true],
            ['Process host RSS', flat.hostRss, true],
            ['Process host open descriptors', flat.hostFds, false],
          ] as const
        ).map(([label, f, bytes]) => [
          `${label} flat within 10%${short}`,
          bytes ? `${mib(f.base)} MiB` : formatNumber(f.base, 0),
          bytes ? `${mib(f.last)} MiB` : formatNumber(f.last, 0),
          pct(f.growth),
          yes(f.flat),
        ]),
        [
          `p99 stable, every kind: median of the per-minute p99s over the last ${stabilityWindow(minutes)} minute(s) within 2× of that over the first ${stabilityWindow(minutes)} after the warm-up`,
          '',
          stability
            .filter((s) => !s.stable)
            .map((s) => `${s.kind} ${ms(s.first)} → ${ms(s.last)} ms`)
            .join('; ') || 'all within',
          '',
          yes(stability.every((s) => s.stable)),
        ],
        ['Late starts', '', String(late), '', ''],
      ],
    ),
    '',
    `Exit status 1 on an unexpected error or a dead server, and, in runs of 10 minutes or more, when the API's or the process host's descriptors grew by more than 10% and more than 10 (a reading counts the connections in flight). RSS and p99 verdicts are reported, not enforced: on a shared machine they move with the neighbours' load.`,
  ];
  if (errors.groups.size > 0 || fatal) {
    parts.push('', '### Unexpected errors', '');
    for (const group of errors.groups.values())
      parts.push(`- **${group.kind}** × ${group.count}, first at ${formatNumber(group.at, 0)} s: ${group.first}`);
    if (fatal) parts.push(`- **server**: ${fatal.split('\n')[0]}`);
  }
  return {
    markdown: `${parts.join('\n')}\n`,
    failed,
    data: { warmUpSeconds: warm, flat, stability, late, fdsFail, errors: errors.total },
  };
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
