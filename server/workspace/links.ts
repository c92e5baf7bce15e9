import { lstat, readlink } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from './paths.js';
import { isErrno } from './workspace.js';

/** Linux follows at most 40 links in one lookup. */
const MAX_SYMLINKS = 40;

/** What stands at a path, as far as resolving a link cares. */
export type Kind = { type: 'directory' } | { type: 'link'; target: string } | { type: 'other' } | undefined;

/** Looks at one absolute path without following a link in its last segment. */
export type Look = (absolute: string) => Promise<Kind>;

export const lookOnDisk: Look = async (absolute) => {
  try {
    const stats = await lstat(absolute);
    if (stats.isSymbolicLink()) return { type: 'link', target: await readlink(absolute) };
    return stats.isDirectory() ? { type: 'directory' } : { type: 'other' };
  } catch (error) {
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return undefined;
    throw error;
  }
};

/**
 * Looks at the tree as it will be once the tree at `from` is at `at`: below `at`, what is in
 * `from`, and (with `fallThrough`, for a merge) what is at `at` already where `from` has
 * nothing; `gone` (the source of a move) looks empty; everything else as it is on disk. For a
 * directory open at a descriptor, `from` is its /proc/self/fd entry followed by `/.`, so that
 * the directory is looked at rather than the entry (a link).
 */
export function overlay(at: string, from: string, options: { fallThrough?: boolean; gone?: string } = {}): Look {
  return async (absolute) => {
    if (isInside(at, absolute)) {
      const relative = path.relative(at, absolute);
      const kind = await lookOnDisk(relative === '' ? from : path.join(from, relative));
      if (kind || !options.fallThrough) return kind;
    } else if (options.gone !== undefined && isInside(options.gone, absolute)) {
      return undefined;
    }
    return lookOnDisk(absolute);
  };
}

/**
 * Whether a symlink in the real directory `directory` whose target is `target` leads inside
 * `root`, judged the way the kernel resolves it: every link on the way (`d -> .` in
 * `d/d/../../etc`) is followed, and `..` climbs from where a link led, not from where its name
 * stands. Past a missing segment the rest is taken as written (a later `mkdir` would make it
 * so). A link that loops is no way out: the kernel refuses it too.
 */
export async function linkLeadsInside(root: string, directory: string, target: string, look: Look = lookOnDisk): Promise<boolean> {
  const pending = target.split('/').reverse();
  let current = path.isAbsolute(target) ? '/' : directory;
  let links = 0;
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (name === '' || name === '.') continue;
    if (name === '..') {
      current = path.dirname(current);
      continue;
    }
    const next = path.join(current, name);
    const kind = await look(next);
    if (kind?.type === 'link') {
      if (++links > MAX_SYMLINKS) return true;
      if (path.isAbsolute(kind.target)) current = '/';
      pending.push(...kind.target.split('/').reverse());
      continue;
    }
    if (kind?.type !== 'directory') return isInside(root, path.join(next, ...pending.reverse()));
    current = next;
  }
  return isInside(root, current);
}
