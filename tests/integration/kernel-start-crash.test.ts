import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEvents, type ExecutionEvent } from '../helpers/api.js';
import { root } from '../helpers/processes.js';
import { parseSamples } from '../helpers/prometheus.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * A kernel that dies while it starts: Jupyter picks a kernel's ZeroMQ ports by binding to port 0
 * and closing them, and on a busy machine another process can take one before the kernel binds
 * it ("Address already in use"). Jupyter's restarter then starts the kernel again, under the same
 * id; unless it picks new ports, every restart fails the same way and the kernel is declared
 * dead. That kernel never ran anything, so nothing was lost: a context or a pooled kernel
 * started this way must work as if the first start had succeeded.
 *
 * The kernelspec `crash-once` stands for that: its first start under a connection file tells this
 * test, which then listens on the kernel's shell port (as the other process would), and exits;
 * the restart under the same file runs the real Python kernel.
 */
let server: StartedServer;
let pooled: StartedServer;
let jupyterPath: string;
let crashes: string;
const holders: Server[] = [];
let holding: NodeJS.Timeout;

/** Takes the shell port of every kernel that reported its crash, as long as the test runs. */
async function holdPorts(seen: Set<string>): Promise<void> {
  for (const name of await readdir(crashes)) {
    if (seen.has(name)) continue;
    seen.add(name);
    const connection = JSON.parse(await readFile(await readFile(path.join(crashes, name), 'utf8'), 'utf8')) as {
      ip: string;
      shell_port: number;
    };
    const holder = createServer();
    await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(connection.shell_port, connection.ip, resolve));
    holders.push(holder);
  }
}

beforeAll(async () => {
  jupyterPath = await mkdtemp(path.join(tmpdir(), 'ci-kernels-'));
  crashes = path.join(jupyterPath, 'crashes');
  await mkdir(path.join(jupyterPath, 'kernels', 'crash-once'), { recursive: true });
  await mkdir(crashes);
  const seen = new Set<string>();
  holding = setInterval(() => void holdPorts(seen).catch(() => undefined), 20);
  const script = [
    'marker="$1.started"',
    // Reported, then a pause that lets the test take the port before the restart comes.
    `if [ ! -e "$marker" ]; then : > "$marker"; printf %s "$1" > ${JSON.stringify(crashes)}/"$$"; sleep 0.5; echo "kernel start failed on purpose" >&2; exit 1; fi`,
    `exec ${JSON.stringify(path.join(root, 'image', 'kernels', 'launch-kernel'))} python "$1"`,
  ].join('\n');
  await writeFile(
    path.join(jupyterPath, 'kernels', 'crash-once', 'kernel.json'),
    JSON.stringify({
      argv: ['/bin/bash', '-c', script, 'crash-once', '{connection_file}'],
      display_name: 'Crashes once',
      language: 'python',
    }),
  );
  // The pool keeps kernels per language, and `crash-once` is a Python kernelspec: the pooled
  // server keeps one of those for every Python context.
  [server, pooled] = await Promise.all([
    startServer({ JUPYTER_PATH: jupyterPath, KERNEL_POOL: 'python=0' }),
    startServer({ JUPYTER_PATH: jupyterPath, KERNEL_POOL: 'crash-once=1' }),
  ]);
}, 120_000);
afterAll(async () => {
  clearInterval(holding);
  await Promise.all([server?.stop(), pooled?.stop()]);
  for (const holder of holders) holder.close();
  await rm(jupyterPath, { recursive: true, force: true });
});

async function metric(target: StartedServer, name: string, language: string): Promise<number> {
  const samples = parseSamples(await (await fetch(`${target.baseUrl}/metrics`)).text());
  let total = 0;
  for (const [key, value] of samples) if (key.startsWith(`${name}{`) && key.includes(`language="${language}"`)) total += value;
  return total;
}

async function run(target: StartedServer, body: Record<string, unknown>): Promise<ExecutionEvent[]> {
  const response = await fetch(`${target.baseUrl}/execute`, { method: 'POST', body: JSON.stringify({ timeout: 60, ...body }) });
  expect(response.status).toBe(200);
  return (await readEvents(response)).filter((event) => event.type !== 'keepalive');
}

async function createContext(target: StartedServer, language: string): Promise<string> {
  const created = await fetch(`${target.baseUrl}/contexts`, {
    method: 'POST',
    body: JSON.stringify({ language }),
    headers: { 'content-type': 'application/json' },
  });
  expect(created.status).toBe(200);
  return ((await created.json()) as { id: string }).id;
}

async function firstRun(target: StartedServer, contextId: string): Promise<void> {
  const events = await run(target, { context_id: contextId, code: 'print(6 * 7)' });
  expect(events.filter((event) => event.type === 'error')).toEqual([]);
  expect(events.filter((event) => event.type === 'stdout').map((event) => event.text)).toEqual(['42\n']);
  expect(events.find((event) => 'execution_count' in event)?.execution_count).toBe(1);
}

describe('a kernel that dies while it starts', () => {
  it('gives a context that works, with nothing reported lost', async () => {
    const deathsBefore = await metric(server, 'code_interpreter_kernel_deaths_total', 'python');
    await firstRun(server, await createContext(server, 'crash-once'));
    expect(await metric(server, 'code_interpreter_kernel_deaths_total', 'python')).toBe(deathsBefore);
  }, 90_000);

  it('fills the pool, and the pooled kernel serves a context', async () => {
    const deadline = Date.now() + 60_000;
    while ((await metric(pooled, 'code_interpreter_kernel_pool_size', 'python')) < 1) {
      expect(Date.now(), 'the pooled kernel became ready').toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const hitsBefore = await metric(pooled, 'code_interpreter_kernel_pool_hits_total', 'python');
    const deathsBefore = await metric(pooled, 'code_interpreter_kernel_deaths_total', 'python');
    const id = await createContext(pooled, 'python');
    expect(await metric(pooled, 'code_interpreter_kernel_pool_hits_total', 'python')).toBe(hitsBefore + 1);
    await firstRun(pooled, id);
    expect(await metric(pooled, 'code_interpreter_kernel_deaths_total', 'python')).toBe(deathsBefore);
  }, 90_000);
});
