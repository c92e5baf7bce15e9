import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Directory archives go through the system's `tar` (GNU or bsdtar): the package stays free of
 * runtime dependencies, and the archive streams through a pipe instead of being built in memory.
 */
const TAR = process.env.CODE_INTERPRETER_TAR ?? 'tar';

export interface TarProcess {
  child: ChildProcess;
  /** Settles when tar exits: rejects with its stderr when it failed. */
  exited: Promise<void>;
}

function run(args: string[], stdio: ['pipe' | 'ignore', 'pipe' | 'ignore', 'pipe']): TarProcess {
  const child = spawn(TAR, args, { stdio });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new Error(`could not run ${TAR}: ${error.message}`, { cause: error })));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${TAR} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
    });
  });
  exited.catch(() => {});
  return { child, exited };
}

/** `tar -c` of a directory's contents, names relative to it, onto stdout. */
export function packDirectory(directory: string): TarProcess {
  return run(['-C', directory, '-cf', '-', '.'], ['ignore', 'pipe', 'pipe']);
}

/** `tar -x` from stdin into a directory that exists. */
export function unpackInto(directory: string): TarProcess {
  return run(['-C', directory, '-xf', '-'], ['pipe', 'ignore', 'pipe']);
}
