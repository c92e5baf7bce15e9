import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * How many processes the out-of-memory killer has killed so far, as this process can see it:
 * the `oom_kill` count of its own memory cgroup (v2 `memory.events`, hierarchical; v1
 * `memory.oom_control`): inside a container that is the container's, where `docker run -m`
 * kills happen. Without one, the system-wide count of `/proc/vmstat`. Undefined when neither can
 * be read (not Linux). A kernel that died while this count went up was, in all likelihood, the
 * one killed: kernels start with oom_score_adj 1000 (image/kernels/launch-kernel), so they go first.
 *
 * It is read each time a kernel starts working, so on every execution's path: the file is found
 * once and kept open, and each reading is one pread into a buffer kept for it, rather than
 * reading /proc/self/cgroup and trying each candidate file again (several opens, a failed one
 * throwing) before the kernel's first output could be handled. When a reading fails (the
 * cgroup went away), the file is looked for again.
 */
export function oomKillCount(): number | undefined {
  if (counterFile === undefined) counterFile = findCounterFile();
  if (counterFile === null) return undefined;
  const count = readCounter(counterFile);
  if (count !== undefined) return count;
  forgetCounterFile();
  counterFile = findCounterFile();
  return counterFile === null ? undefined : readCounter(counterFile);
}

/** The open file the count is read from; null when there is none, undefined before the first look. */
let counterFile: { path: string; fd: number } | null | undefined;

/** Enough for /proc/vmstat (about 4 KiB on Linux 6); a longer file is read in several reads. */
let buffer = Buffer.alloc(16 * 1024);

/** Closes the file and looks for it again on the next reading (for tests). */
export function forgetCounterFile(): void {
  if (counterFile) {
    try {
      closeSync(counterFile.fd);
    } catch {
      // Closed already, or never valid: nothing to give back.
    }
  }
  counterFile = undefined;
}

/** The file the count is read from, for tests; undefined when there is none. */
export function oomCounterPath(): string | undefined {
  if (counterFile === undefined) counterFile = findCounterFile();
  return counterFile?.path;
}

function candidateFiles(): string[] {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return ['/proc/vmstat'];
  }
  const v2 = lines
    .find((line) => line.startsWith('0::'))
    ?.slice(3)
    .replace(/\/$/, '');
  const v1 = lines
    .find((line) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:/.test(line))
    ?.replace(/^[^:]*:[^:]*:/, '')
    .replace(/\/$/, '');
  return [
    ...(v2 !== undefined ? [`/sys/fs/cgroup${v2}/memory.events`] : []),
    // v1: the path seen from the host; a container mounts its own cgroup at the root instead.
    ...(v1 !== undefined ? [`/sys/fs/cgroup/memory${v1}/memory.oom_control`, '/sys/fs/cgroup/memory/memory.oom_control'] : []),
    '/proc/vmstat',
  ];
}

function findCounterFile(): { path: string; fd: number } | null {
  for (const path of candidateFiles()) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      continue;
    }
    const file = { path, fd };
    if (readCounter(file) !== undefined) return file;
    closeSync(fd);
  }
  return null;
}

/** The `oom_kill` count the open file holds now, read from its start; undefined when it has none or cannot be read. */
export function readCounter(file: { fd: number }): number | undefined {
  let length = 0;
  try {
    for (;;) {
      if (length === buffer.length) {
        const larger = Buffer.alloc(buffer.length * 2);
        buffer.copy(larger);
        buffer = larger;
      }
      const read = readSync(file.fd, buffer, length, buffer.length - length, length);
      if (read === 0) break;
      length += read;
    }
  } catch {
    return undefined;
  }
  const match = OOM_KILL_LINE.exec(buffer.toString('latin1', 0, length));
  return match ? Number(match[1]) : undefined;
}

const OOM_KILL_LINE = /^oom_kill (\d+)$/m;
