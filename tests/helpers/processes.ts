import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Process helpers that the tests and the benchmarks share: free ports, waiting for a server,
 * stopping what they started, finding a child process.
 */

/** The repository's root directory. */
export const root = path.resolve(import.meta.dirname, '..', '..');

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

/**
 * Whether nothing listens on the port, on either loopback address `localhost` may mean: e2b's
 * SDK in debug mode talks to fixed ports (49999, 49983).
 */
export async function portIsFree(port: number): Promise<boolean> {
  for (const host of ['127.0.0.1', '::1']) {
    const probe = createServer();
    probe.listen(port, host);
    try {
      await Promise.race([once(probe, 'listening'), once(probe, 'error').then(([error]) => Promise.reject(error))]);
      probe.close();
      await once(probe, 'close');
    } catch (error) {
      // A machine without IPv6 has no ::1 to be taken.
      if ((error as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') continue;
      return false;
    }
  }
  return true;
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
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
        .split('\0')
        .filter((arg) => arg !== '');
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

/** Every live process below `root` (children, theirs, ...), zombies left out. */
export function descendantsOf(root: number): { pid: number; argv: string[] }[] {
  const all = processes();
  const found: ProcInfo[] = [];
  let parents = new Set([root]);
  while (parents.size > 0) {
    const children = all.filter((proc) => parents.has(proc.ppid));
    found.push(...children);
    parents = new Set(children.map((proc) => proc.pid));
  }
  return found.filter((proc) => isAlive(proc.pid)).map(({ pid, argv }) => ({ pid, argv }));
}

/** Whether `pid` runs (a zombie, exited but not yet reaped, does not). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

/** Resident memory of `pid` in bytes (VmRSS), 0 when it is gone. */
export function residentBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Waits until `url` answers 2xx; fails early when `child` exits. */
export async function waitForHttp(
  url: string,
  child: ChildProcess,
  deadlineMs: number,
  intervalMs = 20,
  headers: Record<string, string> = {},
): Promise<void> {
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

/** Sends SIGTERM, then SIGKILL after `graceMs`: only ever to a process the caller started. */
export async function stopProcess(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
