import { readFileSync } from 'node:fs';

/**
 * How many processes the out-of-memory killer has killed so far, as this process can see it:
 * the `oom_kill` count of its own memory cgroup (v2 `memory.events`, hierarchical; v1
 * `memory.oom_control`): inside a container that is the container's, where `docker run -m`
 * kills happen. Without one, the system-wide count of `/proc/vmstat`. Undefined when neither can
 * be read (not Linux). A kernel that died while this count went up was, in all likelihood, the
 * one killed: kernels start with oom_score_adj 1000 (image/kernels/launch-kernel), so they go first.
 */
export function oomKillCount(): number | undefined {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return fromFile('/proc/vmstat');
  }
  const v2 = lines
    .find((line) => line.startsWith('0::'))
    ?.slice(3)
    .replace(/\/$/, '');
  const v1 = lines
    .find((line) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:/.test(line))
    ?.replace(/^[^:]*:[^:]*:/, '')
    .replace(/\/$/, '');
  const candidates = [
    ...(v2 !== undefined ? [`/sys/fs/cgroup${v2}/memory.events`] : []),
    // v1: the path seen from the host; a container mounts its own cgroup at the root instead.
    ...(v1 !== undefined ? [`/sys/fs/cgroup/memory${v1}/memory.oom_control`, '/sys/fs/cgroup/memory/memory.oom_control'] : []),
    '/proc/vmstat',
  ];
  for (const file of candidates) {
    const count = fromFile(file);
    if (count !== undefined) return count;
  }
  return undefined;
}

function fromFile(file: string): number | undefined {
  try {
    return counter(readFileSync(file, 'utf8'), 'oom_kill');
  } catch {
    return undefined;
  }
}

function counter(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}
