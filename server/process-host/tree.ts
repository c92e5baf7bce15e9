import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A process's tree: what a signal to "the process" reaches. Its process group alone is not
 * enough (a child may start its own group or session: `setsid`, a daemon's double fork), so the
 * tree is the group, every descendant found by walking parents in /proc, and every process that
 * carries the process's marker in its environment (an escapee re-parented to PID 1 still has it,
 * unless it cleared its environment: best effort). Only processes of the host's own uid can be
 * read or signalled, which is exactly the set kernel code could have started.
 */

/** The variable every process started by the host carries: its id, for the marker search. */
export const MARKER_VARIABLE = 'CODE_INTERPRETER_PROCESS_ID';

function processIds(): number[] {
  try {
    return readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return []; // not Linux: only the process group is reached
  }
}

function parentOf(pid: number): number | undefined {
  try {
    // The command name (in parentheses) may hold spaces and parentheses: fields follow the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined; // gone meanwhile
  }
}

function carriesMarker(pid: number, marker: Buffer): boolean {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`);
    return environ.indexOf(marker) === 0 || environ.indexOf(Buffer.concat([Buffer.from([0]), marker])) !== -1;
  } catch {
    return false; // another uid's, or gone
  }
}

/** Every live process of the tree of `root` (itself included), marked with `id`. */
export function treeOf(root: number, id: string | null): number[] {
  const pids = processIds();
  const children = new Map<number, number[]>();
  for (const pid of pids) {
    const parent = parentOf(pid);
    if (parent === undefined) continue;
    const list = children.get(parent);
    if (list) list.push(pid);
    else children.set(parent, [pid]);
  }
  const found = new Set<number>();
  if (pids.includes(root)) found.add(root);
  const pending = [root];
  while (pending.length > 0) {
    for (const child of children.get(pending.pop()!) ?? []) {
      if (found.has(child)) continue;
      found.add(child);
      pending.push(child);
    }
  }
  if (id !== null) {
    const marker = Buffer.from(`${MARKER_VARIABLE}=${id}\0`);
    for (const pid of pids) if (pid !== process.pid && !found.has(pid) && carriesMarker(pid, marker)) found.add(pid);
  }
  found.delete(process.pid);
  return [...found];
}

function send(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone, or not ours
  }
}

/** Sends `signal` to the group of `root` (it leads one: it was started detached) and its tree. */
export function signalTree(root: number, id: string | null, signal: NodeJS.Signals): void {
  send(-root, signal);
  for (const pid of treeOf(root, id)) send(pid, signal);
}

/**
 * Kills the whole tree. Each round stops every member first, so that none can fork a new child
 * between the scan and the kill, then kills them; rounds repeat until the scan finds nobody (or
 * the deadline passes: a process in uninterruptible sleep dies when it wakes).
 */
export async function killTree(root: number, id: string | null, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  send(-root, 'SIGKILL');
  for (;;) {
    // The root stays a zombie until it is reaped: that is not something left to kill.
    const members = treeOf(root, id).filter((pid) => !isZombie(pid));
    if (members.length === 0 || Date.now() > deadline) return;
    for (const pid of members) send(pid, 'SIGSTOP');
    for (const pid of members) send(pid, 'SIGKILL');
    await sleep(10);
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true; // gone
  }
}

/**
 * The variable naming the host (its socket) that started a process: hosts of other servers may
 * run under the same uid (a development machine), and their processes are not this one's.
 */
export const HOST_VARIABLE = 'CODE_INTERPRETER_PROCESS_HOST';

/** Processes that a host on this socket started (one that died without ending them, or this one). */
export function leftoverProcesses(socketPath: string): number[] {
  const marker = Buffer.from(`${HOST_VARIABLE}=${socketPath}\0`);
  return processIds().filter((pid) => pid !== process.pid && carriesMarker(pid, marker));
}
