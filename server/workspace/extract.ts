import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, link, lstat, lutimes, mkdir, open, readdir, rename, rmdir, symlink, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header } from 'tar-stream';
import {
  ApiError,
  AlreadyExistsError,
  ExtractTooLargeError,
  InvalidArchiveError,
  NotADirectoryError,
  PathChangedError,
  PermissionDeniedError,
  UnsafeArchiveEntryError,
} from '../errors.js';
import type { ArchiveFormat } from './archive.js';
import { linkLeadsInside, overlay } from './links.js';
import { isInternalName, MAX_PATH_BYTES, MAX_SEGMENT_BYTES, quote, RESERVED } from './paths.js';
import { removeEntry } from './remove.js';
import { childOf, isErrno, pathOfHandle, translateErrno, type DirectoryHandle, type ResolvedPath, type Workspace } from './workspace.js';

export interface ExtractOptions {
  format: ArchiveFormat;
  /** Most entries the archive may hold (MAX_EXTRACT_ENTRIES). */
  maxEntries: number;
  /** Most bytes its files may add up to (MAX_EXTRACT_BYTES). */
  maxExtractBytes: number;
}

export interface ExtractResult {
  /** The directory extracted into, workspace-relative and normalized. */
  path: string;
  /** Entries written: files, directories and links. */
  entries: number;
  /** Bytes of file content written. */
  bytes: number;
}

/** Directory descriptors kept open while unpacking; past this many they are closed and reopened. */
const MAX_OPEN_DIRECTORIES = 128;
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Files up to this size are gathered in memory and written behind the parser. */
const SMALL_FILE_BYTES = 1024 * 1024;
/** Most files, and bytes, written behind the parser at once. */
const WRITE_BEHIND_FILES = 64;
const WRITE_BEHIND_BYTES = 16 * 1024 * 1024;
/** Tar's unit: headers and padded data come in blocks of this many bytes. */
const BLOCK = 512;

/**
 * Unpacks a tar or tar.gz archive (`body`, already limited to MAX_UPLOAD_BYTES by the caller)
 * into the directory at `raw`, all or nothing:
 *
 * 1. Every entry is checked before anything of it is written, and written into a hidden staging
 *    directory (`.extract-*`) at the workspace root, through descriptors opened with O_NOFOLLOW.
 *    The first entry that is unsafe refuses the whole archive: an absolute path or `..`, a
 *    control character, an over-long or reserved name, a hardlink to anything but a file of the
 *    archive, an entry under a symlink of the archive (written through it), a device, FIFO or
 *    anything but files, directories and links, more than `maxEntries` entries or `maxBytes`
 *    bytes of content (a gzip bomb stops there), a body cut short.
 * 2. Once all is staged, every symlink is resolved as the kernel would, through the archive's
 *    other links and what the target holds already: one that leads outside refuses the archive.
 *    Then the staging tree is checked against the target: an archive directory where the target has
 *    a file or link, or an archive file where it has a directory, is a 409 before anything moves.
 * 3. It is moved into place. The merge rule: the archive's files and links replace those of the
 *    same name; its directories merge with existing ones; whatever the target holds that the
 *    archive does not stays as it was.
 *
 * The staging directory is removed on every path out, success or failure.
 */
export async function extractArchive(
  workspace: Workspace,
  raw: string,
  body: AsyncIterable<Buffer>,
  options: ExtractOptions,
): Promise<ExtractResult> {
  const target = await workspace.resolve(raw);
  if (target.stats && !target.stats.isDirectory()) throw new NotADirectoryError(quote(target.display));
  const root = await workspace.realRoot();
  const rootDirectory = await workspace.openDirectory([]);
  const stagingName = `.extract-${randomBytes(12).toString('hex')}`;
  let staging: Staging | undefined;
  try {
    await mkdir(rootDirectory.child(stagingName), 0o700);
    staging = new Staging(await openDirectoryIn(rootDirectory.path, stagingName), stagingName);
    const { links, ...counts } = await unpack(body, options, staging);
    await checkLinks(root, target, staging, links);
    await staging.finish();
    await moveIntoPlace(workspace, rootDirectory, staging, target);
    return { path: target.display, ...counts };
  } catch (error) {
    throw translateErrno(error, target.display);
  } finally {
    await staging?.close();
    await removeEntry(rootDirectory.path, stagingName, stagingName).catch(() => undefined);
    await rootDirectory.close();
  }
}

/** A symlink of the archive: its entry's name and target, by its path under the target. */
type ArchiveLinks = Map<string, { name: string; target: string }>;

async function unpack(
  body: AsyncIterable<Buffer>,
  options: ExtractOptions,
  staging: Staging,
): Promise<{ entries: number; bytes: number; links: ArchiveLinks }> {
  const extract = tarExtract();
  // Headers, pax records and padding on top of the content: an archive that inflates past
  // this is no honest archive within the limits, whatever its headers claim.
  const inflatedLimit = options.maxExtractBytes + (options.maxEntries + 2) * 3 * 1024 + 2 ** 20;
  const counter = countBytes(options.format === 'tar.gz' ? inflatedLimit : Infinity, options.maxExtractBytes);
  const stages: Array<Transform | Writable> = options.format === 'tar.gz' ? [createGunzip(), counter] : [counter];
  const feeding = pipeline([Readable.from(body, { objectMode: false }), ...stages, extract as unknown as Writable]);
  // When the body fails or ends inside an entry, the parser may hand out that entry already
  // destroyed, and a pipeline from a destroyed entry waits forever: the failure of the feeding
  // stops whatever the loop is waiting for. Whichever fails first explains the failure.
  const stop = new AbortController();
  feeding.catch((error: unknown) => stop.abort(error));

  const links: ArchiveLinks = new Map();
  let entries = 0;
  let bytes = 0;
  // Where the data of the last entry ends in the tar stream: the end-of-archive marker follows.
  let dataEnd = 0;
  try {
    for await (const entry of extract) {
      const header = entry.header;
      const name = header.name;
      dataEnd = entry.offset + BLOCK + (header.type === 'directory' ? 0 : Math.ceil(header.size / BLOCK) * BLOCK);
      const segments = entryPath(name);
      if (++entries > options.maxEntries) throw new ExtractTooLargeError(`${options.maxEntries} entries (MAX_EXTRACT_ENTRIES)`);
      for (let i = 1; i < segments.length; i++) {
        const prefix = segments.slice(0, i).join('/');
        if (links.has(prefix))
          throw new UnsafeArchiveEntryError(quote(name), `it would be written through the symlink ${quote(prefix)} of the archive`);
      }
      switch (header.type) {
        case 'file':
        case 'contiguous-file':
          bytes += header.size;
          if (bytes > options.maxExtractBytes)
            throw new ExtractTooLargeError(`${options.maxExtractBytes} bytes of content (MAX_EXTRACT_BYTES)`);
          if (segments.length === 0) throw new UnsafeArchiveEntryError(quote(name), 'a file cannot replace the target directory');
          await staging.writeFile(segments, name, entry as unknown as Readable, header, stop.signal);
          links.delete(segments.join('/'));
          break;
        case 'directory':
          await staging.directory(segments, name, header);
          entry.resume();
          break;
        case 'symlink': {
          if (segments.length === 0) throw new UnsafeArchiveEntryError(quote(name), 'a link cannot replace the target directory');
          await staging.symlink(segments, name, header);
          links.set(segments.join('/'), { name, target: header.linkname });
          entry.resume();
          break;
        }
        case 'link': {
          const source = entryPath(header.linkname);
          if (segments.length === 0 || source.length === 0) throw new UnsafeArchiveEntryError(quote(name), 'a hardlink must name a file');
          if (source.some((_, i) => links.has(source.slice(0, i + 1).join('/')))) {
            throw new UnsafeArchiveEntryError(quote(name), `it is a hardlink through the symlink in ${quote(header.linkname)}`);
          }
          await staging.hardlink(segments, source, name, header.linkname);
          links.delete(segments.join('/'));
          entry.resume();
          break;
        }
        default:
          throw new UnsafeArchiveEntryError(
            quote(name),
            `it is a ${header.type ?? 'entry of unknown type'}; only files, directories and links are extracted`,
          );
      }
    }
    await feeding;
    await staging.drain();
    // The parser accepts a stream cut right after an entry's data, or after a long-name header
    // whose entry never came; so would the extraction, taking the first half of an archive for
    // the whole. Every tar writer ends an archive with zero blocks, and GNU tar is content with one.
    if (counter.total < Math.max(dataEnd, counter.contentEnd) + BLOCK)
      throw new InvalidArchiveError(options.format, 'it ends before the end-of-archive marker: cut short?');
  } catch (error) {
    extract.destroy();
    throw archiveError(stop.signal.aborted ? stop.signal.reason : error, options.format);
  }
  return { entries, bytes, links };
}

/**
 * Refuses the archive if one of its symlinks, once in place, leads out of the workspace: judged
 * when the whole archive is staged, through its other links and those already in the target
 * (a later entry can change where an earlier link leads).
 */
async function checkLinks(root: string, target: ResolvedPath, staging: Staging, links: ArchiveLinks): Promise<void> {
  const look = overlay(target.real, `${staging.path}/.`, { fallThrough: true });
  for (const [key, link] of links) {
    const directory = path.join(target.real, ...key.split('/').slice(0, -1));
    if (!(await linkLeadsInside(root, directory, link.target, look))) {
      throw new UnsafeArchiveEntryError(quote(link.name), `it is a symlink to ${quote(link.target)}, which leads outside the workspace`);
    }
  }
}

/** Coded errors pass; the parser's and zlib's become a 400 that says the archive is broken. */
function archiveError(error: unknown, format: ArchiveFormat): unknown {
  if (error instanceof ApiError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code?.startsWith('Z_') || !code) return new InvalidArchiveError(format, (error as Error).message);
  return error;
}

/** Counts the tar stream's bytes (and stops a gzip bomb before it has inflated much further than allowed). */
interface TarCounter extends Transform {
  total: number;
  /** Offset just past the last block that holds a byte other than zero. */
  contentEnd: number;
}

function countBytes(limit: number, maxBytes: number): TarCounter {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      let last = chunk.length - 1;
      while (last >= 0 && chunk[last] === 0) last--;
      if (last >= 0) counter.contentEnd = Math.ceil((counter.total + last + 1) / BLOCK) * BLOCK;
      counter.total += chunk.length;
      if (counter.total > limit) callback(new ExtractTooLargeError(`${maxBytes} bytes of content (MAX_EXTRACT_BYTES)`));
      else callback(null, chunk);
    },
  }) as TarCounter;
  counter.total = 0;
  counter.contentEnd = 0;
  return counter;
}

/**
 * An entry's name as segments under the target, or a refusal. `./` and empty segments are
 * dropped (`tar -C dir -c .` names everything `./x`); the root itself is [].
 */
function entryPath(name: string): string[] {
  if (name.startsWith('/')) throw new UnsafeArchiveEntryError(quote(name), 'it has an absolute path');
  if (CONTROL.test(name)) throw new UnsafeArchiveEntryError(quote(name), 'its name holds NUL or control characters');
  if (name.includes('\\')) throw new UnsafeArchiveEntryError(quote(name), 'its name holds a backslash');
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw new UnsafeArchiveEntryError(quote(name), "it climbs out with '..'");
  if (segments.some(isInternalName)) throw new UnsafeArchiveEntryError(quote(name), RESERVED);
  if (segments.some((segment) => Buffer.byteLength(segment) > MAX_SEGMENT_BYTES)) {
    throw new UnsafeArchiveEntryError(quote(name), `a name in its path is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  if (Buffer.byteLength(segments.join('/')) > MAX_PATH_BYTES)
    throw new UnsafeArchiveEntryError(quote(name), `its path is longer than ${MAX_PATH_BYTES} bytes`);
  return segments;
}

/** An entry's content, whole: `size` bytes (the parser ends it there, or fails). */
async function collect(content: Readable, size: number, signal: AbortSignal): Promise<Buffer> {
  const data = Buffer.allocUnsafe(size);
  let filled = 0;
  await pipeline(
    content,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (filled + chunk.length > size) return callback(new Error('an entry holds more than its size'));
        chunk.copy(data, filled);
        filled += chunk.length;
        callback();
      },
    }),
    { signal },
  );
  if (filled !== size) throw new Error('an entry holds less than its size');
  return data;
}

async function openDirectoryIn(parent: string, name: Buffer | string): Promise<FileHandle> {
  return open(childOf(parent, name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

/**
 * The staging tree: every write goes through a descriptor of its parent directory, opened
 * with O_NOFOLLOW from the staging root down, never through a path string.
 */
class Staging {
  private readonly open = new Map<string, FileHandle>();
  private readonly times = new Map<string, Header>();
  /** Small files being written behind the parser, by their path, and their bytes. */
  private readonly writes = new Map<string, Promise<void>>();
  private writeBytes = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly root: FileHandle,
    readonly name: string,
  ) {}

  get path(): string {
    return pathOfHandle(this.root, this.name);
  }

  /** The directory at `segments`, created (with its parents) when missing. */
  private async dir(segments: string[], entry: string): Promise<string> {
    if (segments.length === 0) return this.path;
    const key = segments.join('/');
    const cached = this.open.get(key);
    if (cached) return pathOfHandle(cached, key);
    const parent = await this.dir(segments.slice(0, -1), entry);
    const name = segments.at(-1)!;
    try {
      // As any directory the API makes: 0777 less the umask, setgid where its parent is.
      await mkdir(childOf(parent, name), 0o777);
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw error;
    }
    let handle: FileHandle;
    try {
      handle = await openDirectoryIn(parent, name);
    } catch (error) {
      if (isErrno(error, 'ENOTDIR') || isErrno(error, 'ELOOP')) {
        throw new UnsafeArchiveEntryError(quote(entry), `${quote(key)} is a file or link of the archive, not a directory`);
      }
      throw error;
    }
    if (this.open.size >= MAX_OPEN_DIRECTORIES) {
      // Writes behind name their directory by its descriptor: none may outlive it.
      await this.drain();
      await this.closeAll();
    }
    this.open.set(key, handle);
    return pathOfHandle(handle, key);
  }

  async directory(segments: string[], entry: string, header: Header): Promise<void> {
    await this.dir(segments, entry);
    this.times.set(segments.join('/'), header);
  }

  async writeFile(segments: string[], entry: string, content: Readable, header: Header, signal: AbortSignal): Promise<void> {
    const parent = await this.dir(segments.slice(0, -1), entry);
    const key = segments.join('/');
    await this.settled(key);
    // As a file written by PUT (0666 less the umask), executable where the archive says so.
    const mode = 0o666 | (header.mode & 0o111);
    if (header.size <= SMALL_FILE_BYTES) {
      // Small files are read whole and written behind the parser: the next entries are parsed
      // while earlier ones are in libuv's pool (bounded by WRITE_BEHIND_*), rather than one
      // open, write, utimes and close after another, each waiting for the last.
      const data = await collect(content, header.size, signal);
      while (this.writes.size >= WRITE_BEHIND_FILES || this.writeBytes > WRITE_BEHIND_BYTES) await Promise.race(this.writes.values());
      this.failed();
      this.writeBytes += data.length;
      const task = this.writeSmall(parent, segments.at(-1)!, entry, data, mode, header.mtime)
        .catch((error: unknown) => {
          this.failure ??= { error };
        })
        .finally(() => {
          this.writeBytes -= data.length;
          if (this.writes.get(key) === task) this.writes.delete(key);
        });
      this.writes.set(key, task);
      return;
    }
    const handle = await this.create(parent, segments.at(-1)!, entry, mode);
    try {
      // The write stream closes the descriptor when it finishes or fails.
      await pipeline(content, handle.createWriteStream({ highWaterMark: 1024 * 1024 }), { signal });
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    // lutimes names the entry inside the held parent and never follows a link.
    await lutimes(childOf(parent, segments.at(-1)!), header.mtime, header.mtime);
  }

  private async writeSmall(parent: string, name: string, entry: string, data: Buffer, mode: number, mtime: Date): Promise<void> {
    const handle = await this.create(parent, name, entry, mode);
    try {
      let written = 0;
      while (written < data.length) written += (await handle.write(data, written, data.length - written)).bytesWritten;
      // On the descriptor of the file just created: never through a link.
      await handle.utimes(mtime, mtime);
    } finally {
      await handle.close();
    }
  }

  /**
   * Creates the file `name` in `parent` with O_EXCL and O_NOFOLLOW; an earlier file or link of
   * the same name (a later entry replaces it, as tar does) is removed first, never a directory.
   */
  private async create(parent: string, name: string, entry: string, mode: number): Promise<FileHandle> {
    const child = childOf(parent, name);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    try {
      return await open(child, flags, mode);
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw error;
    }
    return open(await this.makeRoom(parent, name, entry), flags, mode);
  }

  /** Waits for the write behind of `key` (a later entry of the same name comes after it). */
  private async settled(key: string): Promise<void> {
    await this.writes.get(key);
    this.failed();
  }

  /** Waits for every write behind; throws the first that failed. */
  async drain(): Promise<void> {
    while (this.writes.size > 0) await Promise.all(this.writes.values());
    this.failed();
  }

  private failed(): void {
    if (this.failure) throw this.failure.error;
  }

  async symlink(segments: string[], entry: string, header: Header): Promise<void> {
    const parent = await this.dir(segments.slice(0, -1), entry);
    await this.settled(segments.join('/'));
    const child = await this.makeRoom(parent, segments.at(-1)!, entry);
    await symlink(header.linkname, child);
    await lutimes(child, header.mtime, header.mtime);
  }

  async hardlink(segments: string[], source: string[], entry: string, linkname: string): Promise<void> {
    // Its source, and whatever it replaces, must be on disk first.
    await this.drain();
    const from = childOf(await this.dir(source.slice(0, -1), entry), source.at(-1)!);
    const stats = await lstat(from).catch(() => undefined);
    if (!stats?.isFile())
      throw new UnsafeArchiveEntryError(quote(entry), `it is a hardlink to ${quote(linkname)}, which is no file earlier in the archive`);
    const parent = await this.dir(segments.slice(0, -1), entry);
    await link(from, await this.makeRoom(parent, segments.at(-1)!, entry));
  }

  /** A later entry of the same name replaces an earlier file or link (as tar does); never a directory. */
  private async makeRoom(parent: string, name: string, entry: string): Promise<Buffer | string> {
    const child = childOf(parent, name);
    const stats = await lstat(child).catch(() => undefined);
    if (stats?.isDirectory()) throw new UnsafeArchiveEntryError(quote(entry), 'it would replace a directory of the archive');
    if (stats) await unlink(child);
    return child;
  }

  /**
   * The staging root, private while it fills, gets the mode of any directory the API makes
   * (it becomes the target when that is new); then directory mtimes, deepest first: writing
   * into a directory changes its mtime. Directory modes of the archive are not applied: a
   * 0555 or 000 directory would shut out the kernels (and the remover), and the workspace is
   * shared by its group.
   */
  async finish(): Promise<void> {
    await this.drain();
    const probe = childOf(this.path, `.extract-${randomBytes(12).toString('hex')}`);
    await mkdir(probe, 0o777);
    const { mode } = await lstat(probe);
    await rmdir(probe);
    await this.root.chmod(mode & 0o7777);
    const keys = [...this.times.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
    for (const key of keys) {
      const header = this.times.get(key)!;
      const directory = await this.dir(key === '' ? [] : key.split('/'), key);
      const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        await handle.utimes(header.mtime, header.mtime);
      } finally {
        await handle.close();
      }
    }
  }

  private async closeAll(): Promise<void> {
    const handles = [...this.open.values()];
    this.open.clear();
    await Promise.all(handles.map((handle) => handle.close()));
  }

  async close(): Promise<void> {
    // Settled before the descriptors they write through are closed and the staging removed.
    await Promise.allSettled(this.writes.values());
    await this.closeAll();
    await this.root.close();
  }
}

/**
 * Moves the staging tree into place: renamed whole onto a target that does not exist yet, or
 * merged into an existing one after a check that nothing is in the way.
 */
async function moveIntoPlace(workspace: Workspace, rootDirectory: DirectoryHandle, staging: Staging, target: ResolvedPath): Promise<void> {
  const name = target.segments.at(-1);
  if (!target.stats && name !== undefined) {
    const parent = await workspace.openDirectory(target.segments.slice(0, -1), true);
    try {
      await rename(rootDirectory.child(staging.name), parent.child(name));
      return;
    } catch (error) {
      // Made meanwhile: merge into it like into any existing directory.
      if (!isErrno(error, 'EEXIST') && !isErrno(error, 'ENOTEMPTY') && !isErrno(error, 'EISDIR')) throw error;
    } finally {
      await parent.close();
    }
  }
  const directory = await workspace.openDirectory(target.segments);
  try {
    await merge(staging.path, directory.path, target.display, false);
    try {
      await merge(staging.path, directory.path, target.display, true);
    } catch (error) {
      // Something in the target changed (made, removed, swapped) after the check: the moves
      // before it stand, each entry whole, and the rest of the archive goes with the staging.
      if (CHANGED.some((code) => isErrno(error, code))) throw changedWhileMoving(target.display);
      throw error;
    }
  } finally {
    await directory.close();
  }
}

/** What a rename or an open in the target answers when the target changed under the move. */
const CHANGED = ['ENOENT', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EEXIST', 'ELOOP'];

function changedWhileMoving(here: string): Error {
  return new PathChangedError(
    `${quote(here)} (while the archive was moved into place: what was moved before stays, each file whole; the rest was not extracted)`,
  );
}

/**
 * One pass over the staging tree against the target: checking only (`move` false: throws
 * AlreadyExistsError at the first thing in the way, PermissionDeniedError for a directory the
 * API may not write into), or moving.
 */
async function merge(from: string, to: string, display: string, move: boolean): Promise<void> {
  const names = await readdir(from, { encoding: 'buffer' });
  // A read-only directory of the target (one a kernel made, say) would stop the moves halfway.
  if (!move && names.length > 0) {
    await access(to, constants.W_OK | constants.X_OK).catch((error: unknown) => {
      throw isErrno(error, 'EACCES') || isErrno(error, 'EROFS')
        ? new PermissionDeniedError(`${quote(display)}; nothing was written`)
        : error;
    });
  }
  for (const name of names) {
    const here = `${display === '.' ? '' : `${display}/`}${name.toString('utf8')}`;
    const source = await lstat(childOf(from, name));
    const existing = await lstat(childOf(to, name)).catch((error: unknown) => {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw error;
    });
    if (!existing) {
      if (move) await rename(childOf(from, name), childOf(to, name));
      continue;
    }
    if (source.isDirectory() !== existing.isDirectory()) {
      const error = source.isDirectory()
        ? new AlreadyExistsError(quote(here), ' and is not a directory, where the archive has one; nothing was written')
        : new AlreadyExistsError(quote(here), ' and is a directory, where the archive has a file or link; nothing was written');
      throw move ? changedWhileMoving(here) : error;
    }
    if (!source.isDirectory()) {
      // A file or link replaces a file or link: the link itself, never written through.
      if (move) await rename(childOf(from, name), childOf(to, name));
      continue;
    }
    const inner = await openDirectoryIn(from, name);
    try {
      const existingInner = await openDirectoryIn(to, name).catch((error: unknown) => {
        if (isErrno(error, 'ENOTDIR') || isErrno(error, 'ELOOP')) throw move ? changedWhileMoving(here) : new PathChangedError(quote(here));
        throw error;
      });
      try {
        await merge(pathOfHandle(inner, here), pathOfHandle(existingInner, here), here, move);
      } finally {
        await existingInner.close();
      }
    } finally {
      await inner.close();
    }
  }
}
