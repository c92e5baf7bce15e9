import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** Fields after the command name in /proc/<pid>/stat (which may itself hold spaces). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  if (!fields) return 0;
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/**
 * Every process below `parent` (for Jupyter: the kernels, each under the launcher that
 * jupyter_server_config.py puts in front of it, and whatever the kernels started).
 */
export function descendantsOf(parent: number): number[] {
  const childrenByParent = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (!fields) continue;
    const ppid = Number(fields[1]);
    const siblings = childrenByParent.get(ppid);
    if (siblings) siblings.push(Number(entry));
    else childrenByParent.set(ppid, [Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [parent]; queue.length > 0;) {
    const children = childrenByParent.get(queue.pop()!) ?? [];
    found.push(...children);
    queue.push(...children);
  }
  return found;
}

export interface CpuSnapshot {
  api: number;
  jupyter: number;
  kernels: Map<number, number>;
  client: number;
}

/** CPU used so far by the API, Jupyter, each kernel (Jupyter's descendants) and this process. */
export function cpuSnapshot(apiPid: number, jupyterPid: number): CpuSnapshot {
  const usage = process.cpuUsage();
  return {
    api: cpuSeconds(apiPid),
    jupyter: cpuSeconds(jupyterPid),
    kernels: new Map(descendantsOf(jupyterPid).map((pid) => [pid, cpuSeconds(pid)])),
    client: (usage.user + usage.system) / 1e6,
  };
}

export interface CpuUsage {
  api: number;
  jupyter: number;
  kernels: number;
  client: number;
}

/** CPU seconds used between two snapshots, by process. */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUsage {
  let kernels = 0;
  for (const [pid, seconds] of after.kernels) kernels += seconds - (before.kernels.get(pid) ?? 0);
  return { api: after.api - before.api, jupyter: after.jupyter - before.jupyter, kernels, client: after.client - before.client };
}
