import { lstatSync, mkdirSync } from 'node:fs';
import module from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** What {@link enableCompileCache} did, for the start-up log. */
export interface CompileCacheOutcome {
  enabled: boolean;
  directory?: string;
  /** Why it is off, when it is. */
  reason?: string;
}

interface NodeCompileCache {
  enableCompileCache?: (directory?: string) => { status: number; message?: string; directory?: string };
  flushCompileCache?: () => void;
  constants?: { compileCacheStatus?: Record<'FAILED' | 'ENABLED' | 'ALREADY_ENABLED' | 'DISABLED', number> };
}

let outcome: CompileCacheOutcome = { enabled: false, reason: 'not tried' };

/**
 * Turns on Node's module compile cache (Node 22.1+; the image runs 24): V8 keeps the code it
 * compiled for the server on disk, and the next start reads it instead of parsing and compiling
 * the 4 MB bundle again. A speed-up only: whatever goes wrong leaves the cache off, never the
 * server down.
 *
 * The directory is NODE_COMPILE_CACHE when the operator set it (Node honours it by itself), else
 * one of this user's own in the temporary directory, never in the workspace. Code loaded from
 * the cache runs as the API, so a directory anyone else could write to is refused: kernels run
 * untrusted code as another user, and a cache they planted would run with the API's tokens.
 */
export function enableCompileCache(): CompileCacheOutcome {
  const node = module as unknown as NodeCompileCache;
  if (!node.enableCompileCache || !node.constants?.compileCacheStatus) {
    return (outcome = { enabled: false, reason: `Node ${process.version} has no compile cache (22.1 or later has)` });
  }
  let directory: string | undefined;
  if (!process.env.NODE_COMPILE_CACHE) {
    directory = path.join(tmpdir(), `code-interpreter-compile-cache-${process.getuid?.() ?? 'user'}`);
    const problem = cacheDirectoryProblem(directory);
    if (problem) return (outcome = { enabled: false, directory, reason: problem });
  }
  const { ENABLED, ALREADY_ENABLED } = node.constants.compileCacheStatus;
  const result = node.enableCompileCache(directory);
  const enabled = result.status === ENABLED || result.status === ALREADY_ENABLED;
  outcome = enabled
    ? { enabled, directory: result.directory ?? directory }
    : { enabled, reason: result.message ?? 'disabled (NODE_DISABLE_COMPILE_CACHE)' };
  return outcome;
}

export function compileCacheOutcome(): CompileCacheOutcome {
  return outcome;
}

/**
 * Writes the cache now (Node 22.10+) rather than when the process exits: a server that is
 * killed, or never stops, would otherwise leave nothing for its next start.
 */
export function flushCompileCache(): void {
  if (outcome.enabled) (module as unknown as NodeCompileCache).flushCompileCache?.();
}

/**
 * Creates `directory` (0700) when it is missing, and says why it must not hold a compile cache
 * otherwise: not a directory of its own (a symbolic link, say), not owned by this user, or
 * writable by the group or others.
 */
export function cacheDirectoryProblem(directory: string): string | undefined {
  try {
    mkdirSync(directory, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot be created: ${(error as Error).message}`;
  }
  try {
    const info = lstatSync(directory);
    if (!info.isDirectory()) return 'is not a directory';
    const uid = process.getuid?.();
    if (uid !== undefined && info.uid !== uid) return `belongs to another user (uid ${info.uid})`;
    if ((info.mode & 0o022) !== 0) return 'can be written by other users';
    return undefined;
  } catch (error) {
    return `cannot be used: ${(error as Error).message}`;
  }
}
