import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rename, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AlreadyExistsError, FileNotFoundError, InvalidPathError, NotADirectoryError, WorkspaceRootError } from '../errors.js';
import { linkLeadsInside, overlay } from './links.js';
import { isInside, isInternalName, quote } from './paths.js';
import { removeEntry } from './remove.js';
import { childOf, isErrno, pathOfHandle, translateErrno, type DirectoryHandle, type ResolvedPath, type Workspace } from './workspace.js';

const COPY_CHUNK_BYTES = 1024 * 1024;

/** A copy is built under this name beside its target, then renamed into place. */
const copyName = () => `.copy-${randomBytes(12).toString('hex')}`;

export interface MoveResult {
  /** The destination, workspace-relative and normalized. */
  path: string;
  /** True when nothing was at the destination before. */
  created: boolean;
}

export interface MoveOptions {
  /** Replace whatever is at the destination (a file, a link, a whole directory). */
  overwrite?: boolean;
}

/**
 * Makes a directory and its missing parents. Answers `created: false` for a directory that
 * exists already; a file (or anything else) in the way is a 409.
 */
export async function makeDirectory(workspace: Workspace, raw: string): Promise<MoveResult> {
  let resolved: ResolvedPath;
  try {
    resolved = await workspace.resolve(raw);
  } catch (error) {
    if (error instanceof NotADirectoryError) throw new AlreadyExistsError(quote(raw), ': a file is in the way');
    throw error;
  }
  if (resolved.stats?.isDirectory()) return { path: resolved.display, created: false };
  if (resolved.stats) throw new AlreadyExistsError(quote(resolved.display), ' and is not a directory');
  try {
    const directory = await workspace.openDirectory(resolved.segments, true);
    await directory.close();
  } catch (error) {
    if (error instanceof NotADirectoryError) throw new AlreadyExistsError(quote(raw), ': a file is in the way');
    throw error;
  }
  return { path: resolved.display, created: true };
}

/**
 * Moves a file, a link (the link itself) or a directory to `to`, creating the destination's
 * parents. Both ends are resolved by the workspace's rules, and the rename happens between two
 * directory descriptors, so neither end can be swapped for a link to elsewhere in between.
 */
export async function move(workspace: Workspace, from: string, to: string, options: MoveOptions = {}): Promise<MoveResult> {
  const { source, target } = await bothEnds(workspace, from, to, 'moved', options);
  const sourceParent = await workspace.openDirectory(source.segments.slice(0, -1));
  try {
    await checkLinks(workspace, sourceParent, source, target, true);
    const targetParent = await workspace.openDirectory(target.segments.slice(0, -1), true);
    try {
      const created = await makeRoom(targetParent, target, options);
      try {
        await rename(sourceParent.child(source.segments.at(-1)!), targetParent.child(target.segments.at(-1)!));
      } catch (error) {
        if (isErrno(error, 'EXDEV')) throw new InvalidPathError(quote(to), 'is on another filesystem than the source; copy, then delete');
        throw translateErrno(error, source.display);
      }
      return { path: target.display, created };
    } finally {
      await targetParent.close();
    }
  } finally {
    await sourceParent.close();
  }
}

/**
 * Copies a file, a link (as a link) or a directory (recursively, links copied as links; FIFOs,
 * sockets and devices left out) to `to`. The copy is built under a hidden name beside the
 * target and renamed into place once whole: a copy that fails (no space, say) leaves nothing.
 * Every file is read through a descriptor opened with O_NOFOLLOW, so an entry swapped for a
 * link meanwhile is never followed out of the workspace.
 */
export async function copy(workspace: Workspace, from: string, to: string, options: MoveOptions = {}): Promise<MoveResult> {
  const { source, target } = await bothEnds(workspace, from, to, 'copied', options);
  const sourceParent = await workspace.openDirectory(source.segments.slice(0, -1));
  try {
    await checkLinks(workspace, sourceParent, source, target, false);
    const targetParent = await workspace.openDirectory(target.segments.slice(0, -1), true);
    try {
      const temp = copyName();
      try {
        await copyEntry(sourceParent.path, source.segments.at(-1)!, targetParent.path, temp);
        const created = await makeRoom(targetParent, target, options);
        await rename(targetParent.child(temp), targetParent.child(target.segments.at(-1)!));
        return { path: target.display, created };
      } catch (error) {
        await removeEntry(targetParent.path, temp, target.display).catch(() => undefined);
        throw translateErrno(error, source.display);
      }
    } finally {
      await targetParent.close();
    }
  } finally {
    await sourceParent.close();
  }
}

async function bothEnds(
  workspace: Workspace,
  from: string,
  to: string,
  verb: string,
  options: MoveOptions,
): Promise<{ source: ResolvedPath; target: ResolvedPath }> {
  const source = await workspace.resolve(from, { followLastLink: false });
  if (source.segments.length === 0) throw new WorkspaceRootError(verb);
  if (!source.stats) throw new FileNotFoundError(quote(source.display));
  const target = await workspace.resolve(to, { followLastLink: false });
  if (target.segments.length === 0) throw new WorkspaceRootError(`${verb} onto`);
  if (source.stats.isDirectory() && isInside(source.real, target.real)) {
    throw new InvalidPathError(quote(to), `is inside ${quote(source.display)}, the directory being ${verb}`);
  }
  if (target.stats && !options.overwrite) throw new AlreadyExistsError(quote(target.display), '; send "overwrite": true to replace it');
  if (target.stats?.isDirectory() && isInside(target.real, source.real)) {
    throw new InvalidPathError(quote(to), `holds ${quote(source.display)}: it cannot be replaced by it`);
  }
  return { source, target };
}

/**
 * Refuses a move or copy that would turn a link that leads inside the workspace into one that
 * leads out: a relative link means something else where it lands (`../..` one level nearer the
 * root leads out of it). Each link of the tree is resolved at its new place as the kernel would,
 * through the tree's other links (the tree laid over the destination). Links that lead out
 * already (a virtual environment's `python -> /usr/bin/python3`) go as they are.
 */
async function checkLinks(
  workspace: Workspace,
  sourceParent: DirectoryHandle,
  source: ResolvedPath,
  target: ResolvedPath,
  moving: boolean,
): Promise<void> {
  const root = await workspace.realRoot();
  const look = overlay(target.real, source.real, moving ? { gone: source.real } : {});
  const checkLink = async (child: Buffer | string, relative: string[]): Promise<void> => {
    const linkTarget = await readlink(child, 'utf8');
    if (await linkLeadsInside(root, path.dirname(path.join(target.real, ...relative)), linkTarget, look)) return;
    if (await linkLeadsInside(root, path.dirname(path.join(source.real, ...relative)), linkTarget)) {
      const display = [target.display, ...relative].join('/');
      throw new InvalidPathError(
        quote(target.display),
        `the link ${quote(display)} to ${quote(linkTarget)} would lead outside the workspace from there`,
      );
    }
  };
  // Types from readdir: a tree of files costs one readdir per directory, not one lstat per file.
  const visitDirectory = async (child: Buffer | string, relative: string[]): Promise<void> => {
    const handle = await open(child, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      const here = pathOfHandle(handle, child.toString());
      for (const entry of await readdir(here, { withFileTypes: true, encoding: 'buffer' })) {
        const inner = childOf(here, entry.name);
        const innerRelative = [...relative, entry.name.toString('utf8')];
        const stats = entry.isFile() || entry.isDirectory() || entry.isSymbolicLink() ? entry : await lstat(inner);
        if (stats.isSymbolicLink()) await checkLink(inner, innerRelative);
        else if (stats.isDirectory()) await visitDirectory(inner, innerRelative);
      }
    } finally {
      await handle.close();
    }
  };
  const name = source.segments.at(-1)!;
  const stats = await lstat(sourceParent.child(name));
  if (stats.isSymbolicLink()) await checkLink(sourceParent.child(name), []);
  else if (stats.isDirectory()) await visitDirectory(sourceParent.child(name), []);
}

/**
 * Checks the destination: 409 when something is there and `overwrite` is off; with it, whatever
 * is there goes first (a file or link would be replaced by the rename anyway, a directory must
 * be emptied). Returns whether the destination was free.
 */
async function makeRoom(parent: DirectoryHandle, target: ResolvedPath, options: MoveOptions): Promise<boolean> {
  const name = target.segments.at(-1)!;
  const existing = await lstat(parent.child(name)).catch((error: unknown) => {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw translateErrno(error, target.display);
  });
  if (!existing) return true;
  if (!options.overwrite) throw new AlreadyExistsError(quote(target.display), '; send "overwrite": true to replace it');
  if (existing.isDirectory()) await removeEntry(parent.path, name, target.display);
  return false;
}

/** Copies `name` in the directory at `from` to `as` in the directory at `to`, never following a link. */
async function copyEntry(from: string, name: Buffer | string, to: string, as: Buffer | string): Promise<void> {
  const source = childOf(from, name);
  const destination = childOf(to, as);
  const stats = await lstat(source);
  if (stats.isSymbolicLink()) {
    await symlink(await readlink(source), destination);
  } else if (stats.isFile()) {
    await copyFile(source, destination, stats.mode & 0o7777);
  } else if (stats.isDirectory()) {
    const handle = await open(source, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      await mkdir(destination, stats.mode & 0o7777);
      const created = await open(destination, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        const here = pathOfHandle(handle, source.toString());
        const there = pathOfHandle(created, destination.toString());
        for (const entry of await readdir(here, { encoding: 'buffer' })) {
          // Another upload's or copy's work in progress is not part of the tree, as in archives.
          if (!isInternalName(entry.toString('utf8'))) await copyEntry(here, entry, there, entry);
        }
      } finally {
        await created.close();
      }
    } finally {
      await handle.close();
    }
  }
  // FIFOs, sockets and devices are left out, as in archives.
}

async function copyFile(source: Buffer | string, destination: Buffer | string, mode: number): Promise<void> {
  let input: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in would otherwise wait for a writer forever.
    input = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    // Swapped for a link since the lstat: leave it out rather than follow it.
    if (isErrno(error, 'ELOOP')) return;
    throw error;
  }
  try {
    if (!(await input.stat()).isFile()) return;
    const output = await open(destination, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    await pipeline(input.createReadStream({ autoClose: false, highWaterMark: COPY_CHUNK_BYTES }), output.createWriteStream());
  } finally {
    await input.close();
  }
}
