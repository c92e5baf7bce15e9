import type { Stats } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from './paths.js';

/** Linux follows at most 40 links in one lookup; so do we. */
const MAX_SYMLINKS = 40;

/** What stands at a path, as far as resolving a link cares; `stats` when it was read from the disk. */
export type Kind =
  { type: 'directory'; stats?: Stats } | { type: 'link'; target: string; stats?: Stats } | { type: 'other'; stats?: Stats } | undefined;

/** Looks at one absolute path without following a link in its last segment. */
export type Look = (absolute: string) => Promise<Kind>;

export const lookOnDisk: Look = async (absolute) => {
  let stats: Stats;
  try {
    stats = await lstat(absolute);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
  if (stats.isSymbolicLink()) return { type: 'link', target: await readlink(absolute), stats };
  return stats.isDirectory() ? { type: 'directory', stats } : { type: 'other', stats };
};

/** Where a {@link walk} ended. */
export interface WalkEnd {
  /** The real path reached; past a missing entry or a non-directory, the rest taken as written. */
  real: string;
  /** What stands at `real`, when the walk looked at it last (not after a `..`, nor at the start). */
  kind: Kind;
  /** Nothing stands at some segment on the way (then at `real` either). */
  missing: boolean;
  /** A non-directory that stood where segments remained. */
  blockedAt?: string;
  /** More than Linux's 40 links were followed: the kernel would refuse the path (ELOOP). */
  tooManyLinks?: true;
}

/**
 * Walks `segments` down from the real directory `start` the way the kernel resolves a path:
 * every link on the way is followed (`d -> .` in `d/d/../../etc`), an absolute target starts
 * again from `/`, and `..` climbs from where a link led, not from where its name stands. A link
 * in the last segment is followed only with `followLastLink`. The one walk behind both the
 * resolution of client paths ({@link Workspace.resolve}) and the judgement of links ({@link linkLeadsInside}).
 */
export async function walk(start: string, segments: readonly string[], look: Look = lookOnDisk, followLastLink = true): Promise<WalkEnd> {
  // A stack of segments still to visit, the next one last: a link's target is pushed on top.
  const pending = segments.slice().reverse();
  let current = start;
  let kind: Kind;
  let links = 0;
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (name === '' || name === '.') continue;
    if (name === '..') {
      current = path.dirname(current);
      kind = undefined;
      continue;
    }
    const next = path.join(current, name);
    const last = pending.length === 0;
    kind = await look(next);
    if (kind?.type === 'link' && (!last || followLastLink)) {
      if (++links > MAX_SYMLINKS) return { real: next, kind, missing: false, tooManyLinks: true };
      if (path.isAbsolute(kind.target)) current = '/';
      pending.push(...kind.target.split('/').reverse());
      kind = undefined;
      continue;
    }
    if (kind === undefined) return { real: path.join(next, ...pending.reverse()), kind, missing: true };
    if (!last && kind.type !== 'directory')
      return { real: path.join(next, ...pending.reverse()), kind: undefined, missing: false, blockedAt: next };
    current = next;
  }
  return { real: current, kind, missing: false };
}

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
  const end = await walk(path.isAbsolute(target) ? '/' : directory, target.split('/'), look);
  // A link that loops is no way out: the kernel refuses it too.
  return end.tooManyLinks === true || isInside(root, end.real);
}
