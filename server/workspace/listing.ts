import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { FileNotFoundError, InvalidRequestError, NotADirectoryError } from '../errors.js';
import { isInternalName, isServableName, quote } from './paths.js';
import type { DirectoryHandle, Workspace } from './workspace.js';

export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10_000;

/** Listing stats entries this many at a time: enough to keep the thread pool busy. */
const STAT_CONCURRENCY = 32;

export interface DirectoryEntry {
  name: string;
  type: 'file' | 'dir';
  /** Bytes; null for directories. */
  size: number | null;
  /** Modification time in seconds since the epoch, with a fraction. */
  modified: number;
}

export interface DirectoryListing {
  path: string;
  entries: DirectoryEntry[];
  /** Where the next page starts, or null on the last page. */
  next_cursor: string | null;
  /** Entries of the whole directory left out because their names are not ones the API serves. */
  omitted: number;
}

export interface ListOptions {
  limit?: number | undefined;
  cursor?: string | undefined;
}

type Kind = 'dir' | 'file';
interface Candidate {
  name: string;
  kind: Kind;
}

/**
 * One page of a directory: directories first, then files, each group by name (UTF-16 order),
 * `limit` entries after `cursor`. Only the entries of the page are stat'ed, so a page of a
 * 100,000-entry directory costs one readdir and a page of stats. The cursor is the sort key of
 * the page's last entry, so entries created or deleted between pages neither repeat nor shift
 * the others.
 */
export async function listDirectory(workspace: Workspace, raw: string, options: ListOptions = {}): Promise<DirectoryListing> {
  const limit = options.limit ?? DEFAULT_LIST_LIMIT;
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
  const resolved = await workspace.resolve(raw);
  if (!resolved.stats) throw new FileNotFoundError(quote(resolved.display));
  if (!resolved.stats.isDirectory()) throw new NotADirectoryError(quote(resolved.display));

  const directory = await workspace.openDirectory(resolved.segments);
  try {
    const dirents = await readdir(directory.path, { withFileTypes: true, encoding: 'buffer' });
    let omitted = 0;
    const servable: Array<Dirent<Buffer>> = [];
    for (const dirent of dirents) {
      if (!isServableName(dirent.name)) omitted++;
      else if (!isInternalName(dirent.name.toString('utf8'))) servable.push(dirent);
    }
    const candidates: Candidate[] = [];
    await inBatches(servable, async (dirent) => {
      const name = dirent.name.toString('utf8');
      const kind = await kindOf(workspace, directory, resolved.segments, name, dirent);
      if (kind) candidates.push({ name, kind });
    });
    candidates.sort(compare);

    const start = after === undefined ? 0 : firstAfter(candidates, after);
    const page = candidates.slice(start, start + limit);
    const more = start + limit < candidates.length;
    const entries: DirectoryEntry[] = [];
    const found = new Map<string, DirectoryEntry>();
    await inBatches(page, async (candidate) => {
      const entry = await entryOf(workspace, directory, resolved.segments, candidate.name);
      if (entry) found.set(candidate.name, entry);
    });
    for (const candidate of page) {
      const entry = found.get(candidate.name);
      if (entry) entries.push(entry);
    }
    const last = page.at(-1);
    return { path: resolved.display, entries, next_cursor: more && last ? encodeCursor(last) : null, omitted };
  } finally {
    await directory.close();
  }
}

async function inBatches<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += STAT_CONCURRENCY) await Promise.all(items.slice(i, i + STAT_CONCURRENCY).map(work));
}

function compare(a: Candidate, b: Candidate): number {
  if (a.kind !== b.kind) return a.kind === 'dir' ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Index of the first candidate sorting after `key` (binary search: the list is sorted). */
function firstAfter(candidates: Candidate[], key: Candidate): number {
  let low = 0;
  let high = candidates.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compare(candidates[middle]!, key) <= 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

function encodeCursor(candidate: Candidate): string {
  return Buffer.from(JSON.stringify([candidate.kind, candidate.name])).toString('base64url');
}

function decodeCursor(cursor: string): Candidate {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2) {
      const [kind, name] = value as unknown[];
      if ((kind === 'dir' || kind === 'file') && typeof name === 'string') return { kind, name };
    }
  } catch {
    // Reported below.
  }
  throw new InvalidRequestError(`Invalid cursor ${quote(cursor)}: pass the next_cursor of a previous listing unchanged`);
}

/**
 * Directory or file, as the client will see it; undefined for what the API cannot serve:
 * entries gone since readdir, sockets, FIFOs and devices, and symlinks that dangle or lead out
 * of the workspace (whose target is none of the client's business).
 */
async function kindOf(
  workspace: Workspace,
  directory: DirectoryHandle,
  segments: string[],
  name: string,
  dirent: Dirent<Buffer>,
): Promise<Kind | undefined> {
  if (dirent.isDirectory()) return 'dir';
  if (dirent.isFile()) return 'file';
  if (!dirent.isSymbolicLink() && !unknownType(dirent)) return undefined;
  const stats = await statOf(workspace, directory, segments, name);
  return stats?.isDirectory() ? 'dir' : stats?.isFile() ? 'file' : undefined;
}

/** Some filesystems do not report types in readdir. */
function unknownType(dirent: Dirent<Buffer>): boolean {
  return !dirent.isFIFO() && !dirent.isSocket() && !dirent.isBlockDevice() && !dirent.isCharacterDevice();
}

async function entryOf(
  workspace: Workspace,
  directory: DirectoryHandle,
  segments: string[],
  name: string,
): Promise<DirectoryEntry | undefined> {
  const stats = await statOf(workspace, directory, segments, name);
  if (stats?.isDirectory()) return { name, type: 'dir', size: null, modified: stats.mtimeMs / 1000 };
  if (stats?.isFile()) return { name, type: 'file', size: stats.size, modified: stats.mtimeMs / 1000 };
  return undefined;
}

/** lstat, or for a link that stays inside, the stat of its target. */
async function statOf(workspace: Workspace, directory: DirectoryHandle, segments: string[], name: string): Promise<Stats | undefined> {
  try {
    const stats = await lstat(directory.child(name));
    if (!stats.isSymbolicLink()) return stats;
    const target = await workspace.resolve([...segments, name].join('/'));
    return target.stats ? await stat(target.real) : undefined;
  } catch {
    return undefined;
  }
}
