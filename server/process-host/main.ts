import { chmodSync, chownSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import { LocalFiles } from './files.js';
import { ProcessConnection, type HostSettings } from './process-connection.js';
import { HOST_VARIABLE, leftoverProcesses } from './tree.js';

/**
 * The process host: runs commands and terminals for the API, as the kernels' user. The API runs
 * as its own user without capabilities and cannot start a process as another one; this host is
 * started by start-up.sh with the kernels' environment and serves the protocol of protocol.ts on
 * a Unix socket only the API can open.
 *
 * It also runs the file operations of e2b's filesystem service (files.ts, file-connection.ts), for
 * the same reason: they act with that user's rights.
 *
 * Environment: PROCESS_HOST_SOCKET (where to listen), WORKSPACE_DIR (the default cwd, and where
 * relative file paths start), KERNEL_MEMORY_LIMIT (RLIMIT_AS of every process, as the kernels'),
 * KERNEL_USER (started as root: whom to become), LOG_LEVEL. None of them reaches the processes.
 * HOME, which does, is what `~` stands for in file paths.
 *
 * Started as root with KERNEL_USER, it binds the socket, gives it to the group of its directory (the API's), mode
 * 0660, and becomes KERNEL_USER before it reads a single request. The change of uid also makes it
 * non-dumpable, so kernel code (the same uid) can neither read its /proc/<pid>/environ nor trace it.
 */

// Read here and never passed on; JUPYTER_TOKEN too, should a launcher other than start-up.sh leave
// it in: with it, code could drive every kernel through Jupyter's API.
const HOST_VARIABLES = ['PROCESS_HOST_SOCKET', 'WORKSPACE_DIR', 'KERNEL_USER', 'LOG_LEVEL', 'PWD', 'OLDPWD', 'JUPYTER_TOKEN'];
const logger = pino({ base: { source: 'process-host' }, level: process.env.LOG_LEVEL || 'info' });

function fail(message: string): never {
  logger.fatal(message);
  process.exit(2);
}

function userEntry(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  return fail(`KERNEL_USER=${name}: no such user`);
}

// The units of the API's size parser (server/config.ts), as image/kernels/launch-kernel reads them.
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};
function parseSize(text: string): number | null {
  if (text.trim() === '') return null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = UNITS[match?.[2]?.toLowerCase() ?? 'none'];
  if (!match || unit === undefined) return fail(`KERNEL_MEMORY_LIMIT=${text} is not a size such as 2GiB or 512MiB`);
  return Math.floor(Number(match[1]) * unit);
}

const socketPath = process.env.PROCESS_HOST_SOCKET || fail('PROCESS_HOST_SOCKET is not set');
const kernelUser = process.env.KERNEL_USER || '';
// As start-up.sh decides: root with KERNEL_USER means separate users; otherwise (a development
// machine) everything runs as whoever started it, kernels included, and so do the commands.
const dropPrivileges = process.getuid?.() === 0 && kernelUser !== '';

const baseEnv: Record<string, string> = {};
for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !HOST_VARIABLES.includes(name)) baseEnv[name] = value;
baseEnv[HOST_VARIABLE] = socketPath;

const workspace = path.resolve(process.env.WORKSPACE_DIR || process.env.HOME || '/');
const settings: HostSettings = {
  workspace,
  baseEnv,
  files: new LocalFiles({ workspace, ...(process.env.HOME ? { home: process.env.HOME } : {}) }),
  memoryLimit: parseSize(process.env.KERNEL_MEMORY_LIMIT ?? ''),
  log: (level, message, fields) => logger[level](fields ?? {}, message),
};

try {
  unlinkSync(socketPath); // a socket left by the host that ran before
} catch {
  // none
}

const server = createServer((socket) => new ProcessConnection(socket, settings));
// One connection per process or file operation: the API's own limits (MAX_PROCESSES, its
// watches) are far below this; it bounds what a misbehaving client could hold open.
server.maxConnections = 4096;
server.on('error', (error) => fail(`cannot listen on ${socketPath}: ${error.message}`));
server.listen(socketPath, () => {
  // Synchronous up to the uid change: no connection is served before it.
  if (dropPrivileges) {
    const group = statSync(path.dirname(socketPath)).gid;
    chownSync(socketPath, 0, group);
    chmodSync(socketPath, 0o660);
    const { uid, gid } = userEntry(kernelUser);
    // Missing from @types/node 20's Process, present in Node (POSIX) since 0.9.
    (process as unknown as { initgroups(user: string, group: number): void }).initgroups(kernelUser, gid);
    process.setgid!(gid);
    process.setuid!(uid);
  } else {
    // A setgid directory is one shared with the API's group on purpose (a pod's emptyDir under
    // fsGroup, start-up.sh's ROLE=jupyter): the API runs in another container under another uid.
    chmodSync(socketPath, statSync(path.dirname(socketPath)).mode & 0o2000 ? 0o660 : 0o600);
  }
  // A host that died (killed, OOM) could not end its processes: they end now.
  for (const pid of leftoverProcesses(socketPath)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  logger.info({ uid: process.getuid?.() }, 'process host: listening');
});

for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.on(signal, () => {
    // Closing every connection kills every tree (the connection owns its process).
    server.close();
    for (const pid of leftoverProcesses(socketPath)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    process.exit(0);
  });
