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
  // COPYFILE_DISABLE: macOS's bsdtar would add AppleDouble `._` files of extended attributes.
  const child = spawn(TAR, args, { stdio, env: { ...process.env, COPYFILE_DISABLE: '1' } });
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

/**
 * `tar -x` from stdin into a directory that exists. The files belong to whoever runs it: run as
 * root, tar would otherwise give them the container's user ids.
 */
export function unpackInto(directory: string): TarProcess {
  return run(['-C', directory, '--no-same-owner', '-xf', '-'], ['pipe', 'ignore', 'pipe']);
}
