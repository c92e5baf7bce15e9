import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEvents, type ExecutionEvent } from '../helpers/api.js';
import { jupyterKernels, kernelPids, PYTHON_KERNEL_ID_CODE } from '../helpers/kernels.js';
import { key, parseSamples } from '../helpers/prometheus.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * KERNEL_POOL: contexts and restarts served by kernels started ahead of time. Each server here
 * is started for the purpose: one with a pool of every language, one with none (what a fresh
 * kernel looks like), one with a pool that fills MAX_CONTEXTS.
 */
const POOL = { python: 1, r: 1, javascript: 1, bash: 1 };
let pooled: StartedServer;
let fresh: StartedServer;

beforeAll(async () => {
  [pooled, fresh] = await Promise.all([
    startServer({
      KERNEL_POOL: Object.entries(POOL)
        .map(([language, size]) => `${language}=${size}`)
        .join(','),
    }),
    startServer({ KERNEL_POOL: 'python=0' }),
  ]);
}, 120_000);
afterAll(async () => {
  await Promise.all([pooled?.stop(), fresh?.stop()]);
});

async function call<T = unknown>(
  server: StartedServer,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${server.baseUrl}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function run(server: StartedServer, body: Record<string, unknown>): Promise<ExecutionEvent[]> {
  const response = await fetch(`${server.baseUrl}/execute`, { method: 'POST', body: JSON.stringify({ timeout: 60, ...body }) });
  expect(response.status).toBe(200);
  return (await readEvents(response)).filter((event) => event.type !== 'keepalive');
}

function stdout(events: ExecutionEvent[]): string {
  const errors = events.filter((event) => event.type === 'error');
  expect(errors).toEqual([]);
  return events
    .filter((event) => event.type === 'stdout')
    .map((event) => event.text as string)
    .join('');
}

async function metric(server: StartedServer, name: string, labels: Record<string, string>): Promise<number> {
  const samples = parseSamples(await (await fetch(`${server.baseUrl}/metrics`)).text());
  return samples.get(key(name, labels)) ?? 0;
}

const ready = (server: StartedServer, language: string) => metric(server, 'code_interpreter_kernel_pool_size', { language });
const hits = (server: StartedServer, language: string) => metric(server, 'code_interpreter_kernel_pool_hits_total', { language });

async function eventually<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const poolReady = (server: StartedServer, language: string, size = 1) =>
  eventually(
    `${language} kernels ready in the pool`,
    () => ready(server, language),
    (count) => count === size,
  );

async function kernelIdOf(server: StartedServer, contextId: string): Promise<string> {
  return stdout(await run(server, { context_id: contextId, code: PYTHON_KERNEL_ID_CODE })).trim();
}

/**
 * What a user could tell about a new context's kernel from inside it, with the server's own
 * paths replaced by placeholders: the snapshot runs as the context's first execution.
 */
const SNAPSHOT: Record<string, string> = {
  python: [
    'import json as _j, os as _o, sys as _s',
    'print(_j.dumps({"cwd": _o.getcwd(), "path0": _s.path[0], "dh": [str(p) for p in _dh], "dh_types": [type(p).__name__ for p in _dh],',
    '  "starting_dir": get_ipython().starting_dir, "names": sorted(get_ipython().user_ns), "In": In, "Out": list(Out),',
    '  "env": dict(_o.environ)}))',
  ].join('\n'),
  r: 'cat(jsonlite::toJSON(list(cwd = getwd(), names = ls(all.names = TRUE), env = as.list(Sys.getenv())), auto_unbox = TRUE))',
  javascript:
    'console.log(JSON.stringify({ cwd: Deno.cwd(), names: Object.getOwnPropertyNames(globalThis).sort(), env: Deno.env.toObject() }))',
  // The shell's own names and how OLDPWD is declared too: `cd` sets it, a new shell has it empty.
  bash:
    'python3 -c \'import json, os, sys; print(json.dumps({"cwd": os.getcwd(), "names": sys.argv[1].split(), "oldpwd": sys.argv[2], "env": dict(os.environ)}))\' ' +
    '"$(compgen -v)" "$(declare -p OLDPWD)"',
};

/** What SNAPSHOT prints: the kernel's cwd, its environment and more, compared whole. */
type KernelState = { cwd: string; env: Record<string, string | undefined> } & Record<string, unknown>;

async function snapshot(server: StartedServer, language: string, cwd: string | undefined): Promise<{ count: unknown; state: KernelState }> {
  const created = await call<{ id: string }>(server, 'POST', '/contexts', { language, cwd });
  expect(created.status).toBe(200);
  const events = await run(server, { context_id: created.body.id, code: SNAPSHOT[language] });
  const count = events.find((event) => 'execution_count' in event)?.execution_count;
  const state = JSON.parse(stdout(events)) as KernelState;
  await call(server, 'DELETE', `/contexts/${created.body.id}`);
  // Paths and values that differ between any two servers or kernel processes, not between a
  // pooled and a fresh kernel: the workspace, IPython and Jupyter directories (start-up.sh makes
  // them per server), the launcher's pid.
  const ipythonDir = state.env?.IPYTHONDIR;
  const jupyterDirs = state.env?.JUPYTER_RUNTIME_DIR?.replace(/\/runtime$/, '');
  let text = JSON.stringify(state).replaceAll(server.workspaceDir, '<workspace>');
  if (ipythonDir) text = text.replaceAll(ipythonDir, '<ipythondir>');
  if (jupyterDirs) text = text.replaceAll(jupyterDirs, '<jupyter-dirs>');
  const normal = JSON.parse(text) as KernelState;
  delete normal.env.JPY_PARENT_PID;
  delete normal.env.R_SESSION_TMPDIR;
  return { count, state: normal };
}

describe('KERNEL_POOL', () => {
  it('serves a new context from the pool, indistinguishable from a fresh kernel started there', async () => {
    for (const cwd of [undefined, 'sub/dir']) {
      if (cwd) await Promise.all([pooled, fresh].map((server) => mkdir(path.join(server.workspaceDir, cwd), { recursive: true })));
      for (const language of Object.keys(POOL)) {
        await poolReady(pooled, language);
        const before = await hits(pooled, language);
        const [mine, theirs] = [await snapshot(pooled, language, cwd), await snapshot(fresh, language, cwd)];
        expect(await hits(pooled, language), `${language} in ${cwd ?? 'the workspace'} came from the pool`).toBe(before + 1);
        expect(mine.count).toBe(1);
        expect(theirs.count).toBe(1);
        expect(mine.state, `${language} in ${cwd ?? 'the workspace'}`).toEqual(theirs.state);
        expect(mine.state.cwd).toBe(cwd ? `<workspace>/${cwd}` : '<workspace>');
      }
    }
  }, 180_000);

  it('moves a pooled kernel to a directory whose name holds quotes, a dollar sign and non-ASCII characters', async () => {
    const name = 'it\'s "odd" $HOME é 𝄞';
    await mkdir(path.join(pooled.workspaceDir, name), { recursive: true });
    const cwdOf: Record<string, string> = {
      python: 'import os\nprint(os.getcwd())',
      r: 'cat(getwd(), "\\n", sep = "")',
      javascript: 'console.log(Deno.cwd())',
      bash: 'pwd',
    };
    for (const language of Object.keys(POOL)) {
      await poolReady(pooled, language);
      const before = await hits(pooled, language);
      const created = await call<{ id: string; cwd: string }>(pooled, 'POST', '/contexts', { language, cwd: name });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const context = created.body;
      expect(await hits(pooled, language)).toBe(before + 1);
      expect(context.cwd).toBe(path.join(pooled.workspaceDir, name));
      expect(stdout(await run(pooled, { context_id: context.id, code: cwdOf[language] })), language).toBe(`${context.cwd}\n`);
      await call(pooled, 'DELETE', `/contexts/${context.id}`);
    }
  }, 120_000);

  it('restarts a context by swapping in a pooled kernel: same id and cwd, a new kernel, the old one shut down', async () => {
    await mkdir(path.join(pooled.workspaceDir, 'restarted'), { recursive: true });
    const context = (await call<{ id: string; cwd: string }>(pooled, 'POST', '/contexts', { cwd: 'restarted' })).body;
    stdout(await run(pooled, { context_id: context.id, code: 'x = 41\nimport os\nos.chdir("/")' }));
    const oldKernel = await kernelIdOf(pooled, context.id);
    await poolReady(pooled, 'python');
    const before = await hits(pooled, 'python');

    const restarted = await call(pooled, 'POST', `/contexts/${context.id}/restart`);
    expect(restarted).toMatchObject({ status: 200, body: context });
    expect(await hits(pooled, 'python')).toBe(before + 1);

    const events = await run(pooled, { context_id: context.id, code: 'import os\nprint(os.getcwd(), "x" in globals())' });
    expect(events.find((event) => 'execution_count' in event)?.execution_count).toBe(1);
    expect(stdout(events)).toBe(`${context.cwd} False\n`);
    const newKernel = await kernelIdOf(pooled, context.id);
    expect(newKernel).not.toBe(oldKernel);
    await eventually(
      'the replaced kernel shut down',
      async () => (await jupyterKernels(pooled.jupyterUrl, pooled.jupyterToken)).map((kernel) => kernel.id),
      (ids) => !ids.includes(oldKernel) && ids.includes(newKernel),
    );
    // A restart Jupyter carries out itself (the pool is empty right after the swap) brings the
    // pooled kernel back up in the pool's directory: it is moved to the cwd again.
    const again = await call(pooled, 'POST', `/contexts/${context.id}/restart`);
    expect(again.status).toBe(200);
    expect(stdout(await run(pooled, { context_id: context.id, code: 'import os\nprint(os.getcwd())' }))).toBe(`${context.cwd}\n`);
    await call(pooled, 'DELETE', `/contexts/${context.id}`);
  }, 120_000);

  it('refills after each hand-out and never holds more than its size', async () => {
    const pythonKernels = async () =>
      (await jupyterKernels(pooled.jupyterUrl, pooled.jupyterToken)).filter((kernel) => kernel.name === 'python3').length;
    await poolReady(pooled, 'python');
    const contexts = (await call<unknown[]>(pooled, 'GET', '/contexts')).body.length;
    const created: string[] = [];
    let most = 0;
    const watch = setInterval(
      () =>
        void pythonKernels().then(
          (count) => (most = Math.max(most, count)),
          () => undefined,
        ),
      50,
    );
    try {
      for (let i = 0; i < 3; i++) {
        created.push((await call<{ id: string }>(pooled, 'POST', '/contexts', { language: 'python' })).body.id);
        await poolReady(pooled, 'python');
      }
    } finally {
      clearInterval(watch);
    }
    // Every context but the default one here is Python's; the pool holds one more at most.
    expect(await pythonKernels()).toBe(contexts + created.length + 1);
    expect(most).toBeLessThanOrEqual(contexts + created.length + 1);
    for (const id of created) await call(pooled, 'DELETE', `/contexts/${id}`);
  }, 120_000);

  it('recreates a deleted default context from the pool', async () => {
    await poolReady(pooled, 'python');
    const defaults = (await call<Array<{ id: string; language: string }>>(pooled, 'GET', '/contexts')).body.filter(
      (context) => context.language === 'python',
    );
    const before = await hits(pooled, 'python');
    // The first Python context the server made is the default one.
    const previous = defaults[0]!;
    expect((await call(pooled, 'DELETE', `/contexts/${previous.id}`)).status).toBe(200);
    const events = await run(pooled, { code: 'import os\nprint(os.getcwd())' });
    expect(stdout(events)).toBe(`${pooled.workspaceDir}\n`);
    expect(events.find((event) => 'execution_count' in event)?.execution_count).toBe(1);
    expect(await hits(pooled, 'python')).toBe(before + 1);
  }, 120_000);

  it('replaces a pooled kernel that dies while it waits, and never hands out a dead one', async () => {
    await poolReady(pooled, 'python');
    const inContexts = new Set<string>();
    for (const context of (await call<Array<{ id: string; language: string }>>(pooled, 'GET', '/contexts')).body) {
      if (context.language === 'python') inContexts.add(await kernelIdOf(pooled, context.id));
    }
    const waiting = (await jupyterKernels(pooled.jupyterUrl, pooled.jupyterToken)).filter(
      (kernel) => kernel.name === 'python3' && !inContexts.has(kernel.id),
    );
    expect(waiting).toHaveLength(1);
    const victim = waiting[0]!.id;
    const pids = await kernelPids(victim);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGKILL');

    // A context asked for right away gets a live kernel (the dead one does not answer).
    const context = (await call<{ id: string }>(pooled, 'POST', '/contexts', { language: 'python' })).body;
    expect(stdout(await run(pooled, { context_id: context.id, code: 'print(6 * 7)' }))).toBe('42\n');
    expect(await kernelIdOf(pooled, context.id)).not.toBe(victim);
    // The dead kernel is gone from Jupyter and the pool holds a live one again.
    await eventually(
      'the dead pooled kernel shut down',
      async () => (await jupyterKernels(pooled.jupyterUrl, pooled.jupyterToken)).map((kernel) => kernel.id),
      (ids) => !ids.includes(victim),
    );
    await poolReady(pooled, 'python');
    const next = (await call<{ id: string }>(pooled, 'POST', '/contexts', { language: 'python' })).body;
    expect(stdout(await run(pooled, { context_id: next.id, code: 'print("alive")' }))).toBe('alive\n');
    await call(pooled, 'DELETE', `/contexts/${context.id}`);
    await call(pooled, 'DELETE', `/contexts/${next.id}`);
  }, 120_000);
});

describe('KERNEL_POOL within MAX_CONTEXTS', () => {
  let server: StartedServer;
  beforeAll(async () => {
    server = await startServer({ KERNEL_POOL: 'python=1', MAX_CONTEXTS: '2' });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  const kernels = async () => (await jupyterKernels(server.jupyterUrl, server.jupyterToken)).length;

  it('gives a pooled kernel’s slot to a context that needs it, and takes it back when one is free', async () => {
    await poolReady(server, 'python');
    // The default context and the pooled kernel: the limit is reached, and no context is refused.
    expect((await call<unknown[]>(server, 'GET', '/contexts')).body).toHaveLength(1);
    expect(await kernels()).toBe(2);

    const r = await call<{ id: string }>(server, 'POST', '/contexts', { language: 'r' });
    expect(r.status).toBe(200);
    expect(await ready(server, 'python')).toBe(0);
    expect(await kernels()).toBe(2);
    expect((await call(server, 'POST', '/contexts', { language: 'python' })).status).toBe(429);

    expect((await call(server, 'DELETE', `/contexts/${r.body.id}`)).status).toBe(200);
    await poolReady(server, 'python');
    expect(await kernels()).toBe(2);
    const before = await hits(server, 'python');
    const python = await call<{ id: string }>(server, 'POST', '/contexts', { language: 'python' });
    expect(python.status).toBe(200);
    expect(await hits(server, 'python')).toBe(before + 1);
    // The pool has no room left to refill.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await kernels()).toBe(2);
    await call(server, 'DELETE', `/contexts/${python.body.id}`);
  }, 120_000);
});
