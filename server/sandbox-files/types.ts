/**
 * The filesystem as the sandbox's user (the kernels' user) sees it: what e2b's daemon serves on
 * ENVD_PORT (Connect `filesystem.Filesystem`, `GET`/`POST /files`). Unlike the workspace file API
 * on the API's port, paths are not rooted in the workspace: any path that user may reach, with
 * that user's rights. Every operation runs in the process host (process-host/), which is that
 * user; the API never touches these paths itself.
 *
 * Paths given to these methods are absolute, or relative to the workspace; `path` in an answer is
 * always absolute and normalized.
 */
import type { Readable } from 'node:stream';

export type EntryType = 'file' | 'directory' | 'symlink';

export interface EntryInfo {
  /** The last part of `path`. */
  name: string;
  /** A symlink is reported as one (lstat), with its target in `symlinkTarget`. */
  type: EntryType;
  path: string;
  size: number;
  /** The mode's permission and special bits (st_mode & 0o7777). */
  mode: number;
  /** `ls -l`'s form, type letter included: `drwxr-xr-x`. */
  permissions: string;
  /** User and group names (numeric ids when the name is unknown). */
  owner: string;
  group: string;
  modifiedMs: number;
  symlinkTarget?: string;
}

/**
 * Why an operation failed, as errno names (what the host saw); the doors map them to their own
 * errors (Connect codes, HTTP statuses). ELIMIT: a bound of this server's was reached (the
 * message says which).
 */
export const FILE_ERROR_CODES = [
  'ENOENT',
  'EACCES',
  'EPERM',
  'EEXIST',
  'ENOTDIR',
  'EISDIR',
  'ENOTEMPTY',
  'EINVAL',
  'ELOOP',
  'ENAMETOOLONG',
  'ENOSPC',
  'EXDEV',
  'EBUSY',
  'EROFS',
  'ELIMIT',
  'EIO',
] as const;
export type FileErrorCode = (typeof FILE_ERROR_CODES)[number];

export class SandboxFileError extends Error {
  constructor(
    readonly code: FileErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxFileError';
  }
}

export type WatchEventType = 'create' | 'write' | 'remove' | 'rename' | 'chmod';

export interface WatchEvent {
  type: WatchEventType;
  /** Relative to the watched directory (a file directly in it: its name). */
  name: string;
}

export interface WatchOptions {
  recursive: boolean;
  signal?: AbortSignal;
}

/**
 * A running watch. `events` yields in the order the changes happened and ends when the watch
 * ends: `close()`, the signal, or an error (thrown by the iterator as a SandboxFileError:
 * ELIMIT when a bound was reached, e.g. too many directories or a reader that does not keep up).
 */
export interface Watch {
  events: AsyncIterable<WatchEvent>;
  close(): void;
}

export interface SandboxFiles {
  stat(path: string): Promise<EntryInfo>;
  /** Creates the directory and its missing parents; EEXIST when `path` already exists. */
  makeDir(path: string): Promise<EntryInfo>;
  /** rename(2), parents of the destination created; answers the entry at its new place. */
  move(source: string, destination: string): Promise<EntryInfo>;
  /** Entries under `path` down to `depth` levels (1: its children only), in no promised order. */
  list(path: string, depth: number, signal?: AbortSignal): Promise<EntryInfo[]>;
  /** Removes a file, a link or a whole directory tree. */
  remove(path: string): Promise<void>;
  /** Opens a file for reading; the stream ends with its last byte, backpressure honoured. */
  read(path: string, signal?: AbortSignal): Promise<{ entry: EntryInfo; stream: Readable }>;
  /**
   * Writes `source` to `path` (parents created). Nothing is half-written: the bytes go to a
   * temporary file beside it that replaces `path` only once `source` ended well.
   */
  write(path: string, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<EntryInfo>;
  /** Starts watching the directory `path`; resolves once the watch is in place. */
  watch(path: string, options: WatchOptions): Promise<Watch>;
}
