import { randomBytes } from 'node:crypto';
import { constants as fsConstants, readFileSync, statSync, type Stats } from 'node:fs';
import { access, lstat, mkdir, open, opendir, readlink, realpath, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  FILE_ERROR_CODES,
  SandboxFileError,
  type EntryInfo,
  type EntryType,
  type FileErrorCode,
  type SandboxFiles,
  type Watch,
  type WatchOptions,
} from '../sandbox-files/types.js';
import { DEFAULT_MAX_QUEUED_EVENTS, WatchQueue } from '../sandbox-files/watch-queue.js';
import { DirectoryWatcher } from '../sandbox-files/watcher.js';
import { FILE_DATA_CHUNK_BYTES } from './protocol.js';

/**
 * The filesystem operations of sandbox-files/types.ts as plain node:fs calls, with the rights of
 * whoever runs them: in the container that is the process host, which is the kernels' user, so the
 * kernel's own permission checks are the only ones that apply. Nothing here confines paths; what
 * it adds is bounds (entries of a listing), errors as errno names, and whole-file writes.
 */

export interface LocalFilesOptions {
  /** Where relative paths start. */
  workspace: string;
  /** What `~` stands for, as envd expands it; undefined: `~` is an ordinary name. */
  home?: string;
  /** The most entries one listing may hold before it fails with ELIMIT. */
  maxListEntries?: number;
  /** Directories one recursive watch may watch at once before it fails with ELIMIT. */
  maxWatchDirectories?: number;
  /** Events a watch holds for a reader that has not taken them, before it fails with ELIMIT. */
  maxQueuedEvents?: number;
}

export const DEFAULT_MAX_LIST_ENTRIES = 100_000;
/** Well under the kernel's inotify watches per user (8,192 by default on older kernels, often more). */
export const DEFAULT_MAX_WATCH_DIRECTORIES = 4096;

/** How many lstat calls one listing keeps in flight: enough to hide latency, not a flood. */
const STAT_CONCURRENCY = 32;

/** The `ls -l` form of a mode, e.g. `-rw-r--r--`, `drwxrwxrwt`, `lrwxrwxrwx`. */
export function permissionsString(mode: number, type: EntryType | 'other'): string {
  const letter = type === 'directory' ? 'd' : type === 'symlink' ? 'l' : type === 'file' ? '-' : otherLetter(mode);
  const triple = (shift: number, special: boolean, specialLetter: string): string => {
    const bits = (mode >> shift) & 0o7;
    const execute = bits & 0o1;
    const x = special ? (execute ? specialLetter : specialLetter.toUpperCase()) : execute ? 'x' : '-';
    return `${bits & 0o4 ? 'r' : '-'}${bits & 0o2 ? 'w' : '-'}${x}`;
  };
  return letter + triple(6, (mode & 0o4000) !== 0, 's') + triple(3, (mode & 0o2000) !== 0, 's') + triple(0, (mode & 0o1000) !== 0, 't');
}

function otherLetter(mode: number): string {
  switch (mode & 0o170000) {
    case 0o140000:
      return 's';
    case 0o120000:
      return 'l';
    case 0o060000:
      return 'b';
    case 0o020000:
      return 'c';
    case 0o010000:
      return 'p';
    case 0o040000:
      return 'd';
    default:
      return '-';
  }
}

const DESCRIPTIONS: Record<FileErrorCode, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOTEMPTY: 'directory not empty',
  EINVAL: 'invalid argument',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'name too long',
  ENOSPC: 'no space left on device',
  EXDEV: 'cross-device link',
  EBUSY: 'device or resource busy',
  EROFS: 'read-only file system',
  ELIMIT: 'a limit was reached',
  EIO: 'input/output error',
};

/** Node's errno names that are one of ours under another name. */
const ALIASES: Record<string, FileErrorCode> = {
  EDQUOT: 'ENOSPC',
  EFBIG: 'ENOSPC',
  EMLINK: 'ELIMIT',
  EMFILE: 'ELIMIT',
  ENFILE: 'ELIMIT',
  ENOTSUP: 'EINVAL',
  EOPNOTSUPP: 'EINVAL',
  ETXTBSY: 'EBUSY',
};

/** A node:fs error as a SandboxFileError naming what failed; anything unknown becomes EIO. */
export function toFileError(error: unknown, operation: string, subject: string): SandboxFileError {
  if (error instanceof SandboxFileError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  const code: FileErrorCode = (FILE_ERROR_CODES as readonly string[]).includes(errno)
    ? (errno as FileErrorCode)
    : (ALIASES[errno] ?? 'EIO');
  const detail =
    code === 'EIO' && errno !== 'EIO' ? `${DESCRIPTIONS.EIO} (${errno || (error as Error)?.message || 'unknown'})` : DESCRIPTIONS[code];
  return new SandboxFileError(code, `${operation} '${subject}': ${detail}`);
}

/**
 * uid → user name and gid → group name from /etc/passwd and /etc/group, read again when either
 * file changed (checked at most once a second): users added in the sandbox show up by name.
 */
class IdNames {
  private users = new Map<number, string>();
  private groups = new Map<number, string>();
  private stamp = '';
  private checkedAt = 0;

  refresh(): void {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    const stamp = ['/etc/passwd', '/etc/group'].map((file) => fileStamp(file)).join('|');
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    this.users = readIds('/etc/passwd');
    this.groups = readIds('/etc/group');
  }

  user(uid: number): string {
    return this.users.get(uid) ?? String(uid);
  }

  group(gid: number): string {
    return this.groups.get(gid) ?? String(gid);
  }
}

function fileStamp(file: string): string {
  try {
    const stats = statSync(file);
    return `${stats.mtimeMs}:${stats.size}:${stats.ino}`;
  } catch {
    return 'none';
  }
}

/** name:x:id:… lines; the first name for an id wins, as getpwuid answers. */
function readIds(file: string): Map<number, string> {
  const ids = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return ids;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    const id = Number(fields[2]);
    if (fields.length >= 3 && fields[0] && fields[2] !== '' && Number.isInteger(id) && !ids.has(id)) ids.set(id, fields[0]);
  }
  return ids;
}

/**
 * mkdir -p of a path's parent. A part of it that is a file fails recursive mkdir with EEXIST,
 * which would read as "the target exists": it is ENOTDIR, as any other call through it says.
 */
async function makeParents(directory: string): Promise<void> {
  try {
    await mkdir(directory, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    throw error;
  }
}

const TEMPORARY_SUFFIX = '.part';
const TEMPORARY_NAME = /^\..+\.[0-9a-f]{12}\.part$/s;

/** A name {@link LocalFiles.write} gives its work in progress: `.<name>.<12 hex digits>.part`. */
export function isTemporaryName(name: string): boolean {
  return TEMPORARY_NAME.test(name);
}

/** A name cut to 200 bytes on a character boundary: a temporary name stays under NAME_MAX (255). */
function shortened(name: string): string {
  let short = name;
  while (Buffer.byteLength(short) > 200) short = short.slice(0, -1);
  return short;
}

/**
 * The names in a directory, or undefined when there are more than `room`: read one by one, so a
 * directory of millions costs the bound, not its size.
 */
async function readNames(directory: string, room: number): Promise<string[] | undefined> {
  const names: string[] = [];
  for await (const entry of await opendir(directory, { bufferSize: 256 })) {
    if (names.length >= room) return undefined; // leaving the loop closes the directory
    names.push(entry.name);
  }
  return names;
}

function entryType(stats: Stats): EntryType | 'other' {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isDirectory()) return 'directory';
  if (stats.isFile()) return 'file';
  return 'other';
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('This operation was aborted', 'AbortError');
}

export class LocalFiles implements SandboxFiles {
  private readonly names = new IdNames();
  private readonly maxListEntries: number;

  constructor(private readonly options: LocalFilesOptions) {
    this.maxListEntries = options.maxListEntries ?? DEFAULT_MAX_LIST_ENTRIES;
  }

  /** The absolute, normalized form of a caller's path; EINVAL for one that cannot be a path. */
  resolve(input: string, what = 'path'): string {
    if (typeof input !== 'string' || input === '') throw new SandboxFileError('EINVAL', `${what} must not be empty`);
    if (input.includes('\0')) throw new SandboxFileError('EINVAL', `${what} must not contain NUL bytes`);
    let expanded = input;
    const home = this.options.home;
    if (home !== undefined && (input === '~' || input.startsWith('~/'))) expanded = path.join(home, input.slice(1));
    return path.resolve(this.options.workspace, expanded);
  }

  async stat(input: string): Promise<EntryInfo> {
    const target = this.resolve(input);
    return this.entry(target, 'stat');
  }

  async makeDir(input: string): Promise<EntryInfo> {
    const target = this.resolve(input);
    try {
      await makeParents(path.dirname(target));
      // Not recursive: mkdir(2) itself says EEXIST, with no window between a check and the call.
      await mkdir(target);
    } catch (error) {
      throw toFileError(error, 'make directory', target);
    }
    return this.entry(target, 'make directory');
  }

  async move(sourceInput: string, destinationInput: string): Promise<EntryInfo> {
    const source = this.resolve(sourceInput, 'source');
    const destination = this.resolve(destinationInput, 'destination');
    try {
      await lstat(source);
    } catch (error) {
      throw toFileError(error, 'move', source);
    }
    try {
      await makeParents(path.dirname(destination));
      await rename(source, destination);
    } catch (error) {
      throw toFileError(error, 'move', `${source}' to '${destination}`);
    }
    return this.entry(destination, 'move');
  }

  async list(input: string, depth: number, signal?: AbortSignal): Promise<EntryInfo[]> {
    if (!Number.isInteger(depth) || depth < 1) throw new SandboxFileError('EINVAL', `depth must be a whole number ≥ 1, not ${depth}`);
    const root = this.resolve(input);
    // The root is followed when it is a link (envd does the same); nothing below it is.
    let rootStats: Stats;
    try {
      rootStats = await stat(root);
    } catch (error) {
      throw toFileError(error, 'list', root);
    }
    if (!rootStats.isDirectory()) throw new SandboxFileError('ENOTDIR', `list '${root}': ${DESCRIPTIONS.ENOTDIR}`);
    this.names.refresh();
    const entries: EntryInfo[] = [];
    let level = [root];
    for (let current = 1; current <= depth && level.length > 0; current++) {
      const next: string[] = [];
      for (const directory of level) {
        if (signal?.aborted) throw abortReason(signal);
        let names: string[] | undefined;
        try {
          names = await readNames(directory, this.maxListEntries - entries.length);
        } catch (error) {
          // The root must be readable; a subdirectory that is not (or vanished) is left out, as
          // `ls -R` goes on past it.
          if (directory === root) throw toFileError(error, 'list', root);
          continue;
        }
        if (!names)
          throw new SandboxFileError(
            'ELIMIT',
            `list '${root}': more than ${this.maxListEntries} entries; list a smaller depth or a subdirectory`,
          );
        for (let offset = 0; offset < names.length; offset += STAT_CONCURRENCY) {
          const batch = names.slice(offset, offset + STAT_CONCURRENCY).map((name) => path.join(directory, name));
          const found = await Promise.all(batch.map((child) => this.entry(child, 'list').catch(() => undefined)));
          for (const entry of found) {
            if (!entry) continue; // removed meanwhile
            entries.push(entry);
            if (entry.type === 'directory') next.push(entry.path);
          }
        }
      }
      level = next;
    }
    return entries;
  }

  async remove(input: string): Promise<void> {
    const target = this.resolve(input);
    try {
      await rm(target, { recursive: true, force: false });
    } catch (error) {
      throw toFileError(error, 'remove', target);
    }
  }

  async read(input: string, signal?: AbortSignal): Promise<{ entry: EntryInfo; stream: Readable }> {
    const target = this.resolve(input);
    if (signal?.aborted) throw abortReason(signal);
    let handle: FileHandle;
    try {
      handle = await open(target, 'r');
    } catch (error) {
      throw toFileError(error, 'read', target);
    }
    try {
      const stats = await handle.stat();
      if (stats.isDirectory()) throw new SandboxFileError('EISDIR', `read '${target}': ${DESCRIPTIONS.EISDIR}`);
      // What was opened (a link's target), under the name the caller gave.
      const entry = this.toEntry(target, stats, undefined);
      if (signal?.aborted) throw abortReason(signal);
      const stream = handle.createReadStream({ highWaterMark: FILE_DATA_CHUNK_BYTES, ...(signal ? { signal } : {}) });
      return { entry, stream };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw signal?.aborted ? abortReason(signal) : toFileError(error, 'read', target);
    }
  }

  async write(input: string, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<EntryInfo> {
    const requested = this.resolve(input);
    if (signal?.aborted) throw abortReason(signal);
    const target = await this.writeTarget(requested);
    let existing: Stats | undefined;
    try {
      existing = await stat(target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw toFileError(error, 'write', requested);
    }
    if (existing?.isDirectory()) throw new SandboxFileError('EISDIR', `write '${requested}': ${DESCRIPTIONS.EISDIR}`);
    if (existing) {
      // Renaming over a file needs only the directory's write permission; writing it in place,
      // as envd does, needs the file's. The file's own rights decide, as they would there.
      try {
        await access(target, fsConstants.W_OK);
      } catch (error) {
        throw toFileError(error, 'write', requested);
      }
    }
    const directory = path.dirname(target);
    try {
      await makeParents(directory);
    } catch (error) {
      throw toFileError(error, 'write', requested);
    }
    const temporary = path.join(directory, `.${shortened(path.basename(target))}.${randomBytes(6).toString('hex')}${TEMPORARY_SUFFIX}`);
    let handle: FileHandle | undefined;
    try {
      // wx: never through a link someone planted under the temporary name.
      handle = await open(temporary, 'wx', existing ? existing.mode & 0o7777 : 0o666);
      for await (const chunk of source) {
        if (signal?.aborted) throw abortReason(signal);
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
      }
      if (signal?.aborted) throw abortReason(signal);
      if (existing) {
        // open's mode went through the umask; the file it replaces had exactly this one.
        await handle.chmod(existing.mode & 0o7777);
        if (process.getuid?.() === 0) await handle.chown(existing.uid, existing.gid).catch(() => undefined);
      }
      await handle.close();
      handle = undefined;
      await rename(temporary, target);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      if (signal?.aborted) throw abortReason(signal);
      throw toFileError(error, 'write', requested);
    }
    const entry = await this.entry(target, 'write');
    return target === requested ? entry : { ...entry, path: requested, name: path.basename(requested) };
  }

  async watch(input: string, options: WatchOptions): Promise<Watch> {
    const root = this.resolve(input);
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    let watcher: DirectoryWatcher | undefined;
    const watch = new WatchQueue(this.options.maxQueuedEvents ?? DEFAULT_MAX_QUEUED_EVENTS, () => watcher?.close());
    try {
      watcher = await DirectoryWatcher.start(root, {
        recursive: options.recursive,
        maxDirectories: this.options.maxWatchDirectories ?? DEFAULT_MAX_WATCH_DIRECTORIES,
        // A write's temporary file is how this host writes, not a change anyone made: a watcher
        // sees the file under its own name appear (create, write), as after envd's write.
        onEvent: (event) => void (isTemporaryName(path.basename(event.name)) || watch.push(event)),
        onError: (error) => watch.fail(error),
      });
    } catch (error) {
      throw toFileError(error, 'watch', root);
    }
    if (signal?.aborted) {
      watcher.close();
      throw abortReason(signal);
    }
    signal?.addEventListener('abort', () => watch.close(), { once: true });
    return watch;
  }

  /**
   * Where a write lands: through a link to the file it points at (as open(2) with O_TRUNC would
   * write), so replacing the file does not replace the link. A dangling link is replaced.
   */
  private async writeTarget(requested: string): Promise<string> {
    try {
      if (!(await lstat(requested)).isSymbolicLink()) return requested;
    } catch {
      return requested;
    }
    try {
      return await realpath(requested);
    } catch {
      return requested;
    }
  }

  private async entry(target: string, operation: string): Promise<EntryInfo> {
    this.names.refresh();
    let stats: Stats;
    let linkTarget: string | undefined;
    try {
      stats = await lstat(target);
      if (stats.isSymbolicLink()) linkTarget = await readlink(target);
    } catch (error) {
      throw toFileError(error, operation, target);
    }
    return this.toEntry(target, stats, linkTarget);
  }

  private toEntry(target: string, stats: Stats, linkTarget: string | undefined): EntryInfo {
    const type = entryType(stats);
    const entry: EntryInfo = {
      name: path.basename(target),
      // Sockets, fifos and devices are none of the three; as files they at least show up.
      type: type === 'other' ? 'file' : type,
      path: target,
      size: stats.size,
      mode: stats.mode & 0o7777,
      permissions: permissionsString(stats.mode, type),
      owner: this.names.user(stats.uid),
      group: this.names.group(stats.gid),
      modifiedMs: stats.mtimeMs,
    };
    if (linkTarget !== undefined) entry.symlinkTarget = linkTarget;
    return entry;
  }
}
