import { constants, existsSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  FileNotFoundError,
  InvalidPathError,
  NoSpaceError,
  NotADirectoryError,
  PathChangedError,
  PathOutsideWorkspaceError,
  PermissionDeniedError,
} from '../errors.js';
import { lookOnDisk, walk, type WalkEnd } from './links.js';
import { isInside, isInternalName, parseWorkspacePath, quote, RESERVED } from './paths.js';

/**
 * `/proc/self/fd/N/name` names `name` inside the directory that descriptor N holds open, the
 * way openat(2) would: what happens to the path that led there afterwards no longer matters.
 * Node has no openat, and this is how the operations below stay put once a directory has been
 * checked. Where /proc is missing (not Linux), they fall back to the checked real path.
 */
export const PROC_FD = existsSync('/proc/self/fd') ? '/proc/self/fd' : undefined;

/**
 * A path that names the directory open at `handle`: its /proc entry, or `fallback` (the path
 * it was opened by) where there is no /proc.
 */
export function pathOfHandle(handle: FileHandle, fallback: string): string {
  return PROC_FD ? `${PROC_FD}/${handle.fd}` : fallback;
}

/** `name` inside the directory at `directory`; names that are bytes stay bytes. */
export function childOf(directory: string, name: Buffer | string): Buffer | string {
  return typeof name === 'string' ? `${directory}/${name}` : Buffer.concat([Buffer.from(`${directory}/`), name]);
}

/** A path resolved under the workspace. */
export interface ResolvedPath {
  /** The path as the client named it, normalized: `.` or `a/b.txt`. */
  display: string;
  /** Real location relative to the real workspace root, as segments; [] is the root itself. */
  segments: string[];
  /** Absolute real path (symlinks resolved); may not exist yet. */
  real: string;
  /** lstat of `real` when it exists. */
  stats: Stats | undefined;
}

export interface ResolveOptions {
  /** Follow a symlink in the last segment (true), or stop at the link itself (false: delete). */
  followLastLink?: boolean;
}

/** An open directory inside the workspace; `child(name)` is a path that stays inside it. */
export class DirectoryHandle {
  constructor(
    private readonly handle: FileHandle,
    /** Real path at the time it was opened, relative to the workspace root ('' for the root). */
    readonly relative: string,
    private readonly real: string,
  ) {}

  /** A path to `name` inside this very directory, even if the directory has moved since. */
  child(name: string): string {
    return PROC_FD ? `${PROC_FD}/${this.handle.fd}/${name}` : path.join(this.real, name);
  }

  /** The directory itself, for readdir. */
  get path(): string {
    return PROC_FD ? `${PROC_FD}/${this.handle.fd}` : this.real;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * Path resolution under the workspace root. Containment is decided on real paths: every
 * symlink on the way is followed by hand (so that dangling links are judged by where they
 * point, too) and the result must lie under the root's real path. The file operations then
 * walk to the checked location one directory descriptor at a time with O_NOFOLLOW, so a
 * segment swapped for a symlink between the check and the use fails instead of escaping.
 */
export class Workspace {
  constructor(readonly root: string) {}

  /** The root's real path, looked up on every call so that a moved root is noticed. */
  async realRoot(): Promise<string> {
    try {
      return await realpath(this.root);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) throw new FileNotFoundError(`${quote('.')} (the workspace root ${this.root} does not exist)`);
      throw error;
    }
  }

  /**
   * Resolves a client path. Throws PathOutsideWorkspaceError when it, symlinks followed, ends
   * outside the root; InvalidPathError when it is malformed; NotADirectoryError when a file
   * stands where a directory would have to be. A missing path resolves with `stats` undefined.
   */
  async resolve(raw: string, options: ResolveOptions = {}): Promise<ResolvedPath> {
    const { display, segments } = parseWorkspacePath(raw);
    const root = await this.realRoot();
    const { real, stats } = await this.walk(root, segments, options.followLastLink ?? true, raw);
    if (!isInside(root, real)) throw new PathOutsideWorkspaceError(quote(raw));
    const relative = path.relative(root, real);
    const realSegments = relative === '' ? [] : relative.split(path.sep);
    // A link may lead to a reserved name that the path itself does not show.
    if (realSegments.some(isInternalName)) throw new InvalidPathError(quote(raw), RESERVED);
    return { display, segments: realSegments, real, stats };
  }

  /** Resolves the real location of `segments` under `root`, following symlinks one by one. */
  private async walk(
    root: string,
    segments: string[],
    followLastLink: boolean,
    raw: string,
  ): Promise<{ real: string; stats: Stats | undefined }> {
    let end: WalkEnd;
    try {
      end = await walk(root, segments, lookOnDisk, followLastLink);
    } catch (error) {
      throw translateErrno(error, raw);
    }
    if (end.tooManyLinks) throw new InvalidPathError(quote(raw), 'too many levels of symbolic links');
    if (end.blockedAt !== undefined) {
      // Say so only about places inside: outside, even existence is none of the client's business.
      if (!isInside(root, end.blockedAt)) throw new PathOutsideWorkspaceError(quote(raw));
      throw new NotADirectoryError(quote(path.relative(root, end.blockedAt)));
    }
    if (end.missing) return { real: end.real, stats: undefined };
    // After a `..`, or with no segment at all, nothing was looked at where the walk ended.
    return { real: end.real, stats: end.kind?.stats ?? (await lstat(end.real)) };
  }

  /**
   * Opens the directory at `segments` (real, relative to the root, as {@link resolve} returns
   * them) by walking down from the root with O_NOFOLLOW, creating missing directories when
   * `create` is set. A segment that has turned into a symlink since it was resolved fails
   * with PathChangedError rather than being followed.
   */
  async openDirectory(segments: string[], create = false): Promise<DirectoryHandle> {
    const root = await this.realRoot();
    let directory = new DirectoryHandle(await open(root, constants.O_RDONLY | constants.O_DIRECTORY), '', root);
    try {
      for (const name of segments) {
        const relative = directory.relative === '' ? name : `${directory.relative}/${name}`;
        const child = directory.child(name);
        if (create) {
          try {
            await mkdir(child);
          } catch (error) {
            if (!isErrno(error, 'EEXIST')) throw translateErrno(error, relative);
          }
        }
        let handle: FileHandle;
        try {
          handle = await open(child, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
        } catch (error) {
          // With O_DIRECTORY, Linux reports a symlink as ENOTDIR rather than ELOOP.
          if (
            isErrno(error, 'ENOTDIR') &&
            (await lstat(child).then(
              (stats) => stats.isSymbolicLink(),
              () => false,
            ))
          ) {
            throw new PathChangedError(quote(relative));
          }
          throw translateErrno(error, relative);
        }
        await directory.close();
        directory = new DirectoryHandle(handle, relative, path.join(root, relative));
      }
      return directory;
    } catch (error) {
      await directory.close().catch(() => undefined);
      throw error;
    }
  }
}

export function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

/**
 * Turns the errors of a directory walk into coded ones. ELOOP under O_NOFOLLOW means that a
 * segment resolved as a directory is a symlink now; ENOTDIR, that it is something else.
 */
export function translateErrno(error: unknown, where: string): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new FileNotFoundError(quote(where));
    case 'ENOTDIR':
      return new NotADirectoryError(quote(where));
    case 'ELOOP':
    // A directory where a file was (or the reverse), a rename into what became its own
    // subtree, a directory refilled while it was emptied: the path changed under the operation.
    case 'EISDIR':
    case 'EINVAL':
    case 'ENOTEMPTY':
      return new PathChangedError(quote(where));
    case 'ENAMETOOLONG':
      return new InvalidPathError(quote(where), 'the path is too long');
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new PermissionDeniedError(quote(where));
    case 'ENOSPC':
    case 'EDQUOT':
      return new NoSpaceError(quote(where));
    default:
      return error;
  }
}
