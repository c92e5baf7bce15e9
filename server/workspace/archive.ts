import { close as fsClose, constants, fstat as fsFstat, open as fsOpen, read as fsRead, type Dirent, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { FileNotFoundError, NotADirectoryError } from '../errors.js';
import { linkLeadsInside } from './links.js';
import { isInternalName, isServableName, quote } from './paths.js';
import { ArchiveReader } from './archive-reader.js';
import { childOf, isErrno, PROC_FD, type Workspace } from './workspace.js';

export type ArchiveFormat = 'tar' | 'tar.gz';

const READ_CHUNK_BYTES = 1024 * 1024;

export interface DirectoryArchive {
  /** The archived directory, workspace-relative and normalized. */
  display: string;
  /** The archive's bytes, produced as the client reads them. Destroying it stops the walk. */
  stream: Readable;
}

/**
 * Streams the directory at `raw` as a tar (or gzip'ed tar) archive, built while it is read:
 * no temporary file, memory bounded by the read-ahead (READ_AHEAD_ENTRIES, 12 MiB at most),
 * a batch and the stream buffers whatever the tree's size. Entry names are relative to the directory (as `tar -C dir -c .` makes them),
 * so extracting the archive into a directory recreates its contents there.
 *
 * What goes in: regular files, directories (with their modes and mtimes) and symlinks, stored
 * as links and never followed. What stays out: FIFOs, sockets and devices, links that lead out
 * of the workspace and names that are not UTF-8 or hold control characters (as in listings),
 * and the server's own work in progress.
 * The walk holds one directory descriptor per level and opens everything with O_NOFOLLOW below
 * it, so a directory swapped for a link to elsewhere while the archive is built is left out
 * rather than followed: nothing outside the workspace can end up in the archive.
 */
export async function archiveDirectory(
  workspace: Workspace,
  raw: string,
  format: ArchiveFormat,
  /** Told the bytes of each file once it is in the archive. */
  onFileBytes?: (count: number) => void,
): Promise<DirectoryArchive> {
  const resolved = await workspace.resolve(raw);
  if (!resolved.stats) throw new FileNotFoundError(quote(resolved.display));
  if (!resolved.stats.isDirectory()) throw new NotADirectoryError(quote(resolved.display));
  const root = await workspace.realRoot();
  const directory = await workspace.openDirectory(resolved.segments);

  const linkInside: LinkCheck = (target, prefix) => linkLeadsInside(root, path.join(resolved.real, prefix), target);
  const walk = async function* (): AsyncGenerator<Buffer> {
    const walker: Walker = { writer: new TarWriter(), linkInside, onFileBytes, reader: undefined, readerTried: false };
    try {
      yield* walkDirectory(walker, directory.path, '');
      yield* walker.writer.end();
    } finally {
      await walker.reader?.close();
      await directory.close();
    }
  };
  // Pulled as the client reads: the walk waits while the socket is full, and destroying the
  // output returns the generator, which closes every descriptor it holds.
  const source = Readable.from(walk(), { objectMode: false, highWaterMark: BATCH_BYTES });
  const output = new PassThrough({ highWaterMark: BATCH_BYTES });
  // pipeline tears every stage down when the client goes away (the output is destroyed).
  const done = format === 'tar.gz' ? pipeline(source, createGzip(), output) : pipeline(source, output);
  void done.catch(() => undefined);
  return { display: resolved.display, stream: output };
}

/**
 * Whether a link whose target is `target`, in the archive's directory `prefix`, stays in the
 * workspace, resolved through the links on its way as the kernel would.
 */
type LinkCheck = (target: string, prefix: string) => Promise<boolean>;

/** Bytes handed to the stream at once: headers and small files are gathered up to this. */
const BATCH_BYTES = 1024 * 1024;
/** Files up to this size are read whole, ahead of their turn, while earlier entries stream. */
const INLINE_BYTES = 128 * 1024;
/**
 * Entries prepared ahead (opened, stat'ed and, when small, read): with a job of JOB_FILES
 * started at the edge, at most 95 files of INLINE_BYTES, 12 MiB, wait in memory.
 */
const READ_AHEAD_ENTRIES = 64;

const FILE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** What one archive's walk shares down the tree. */
interface Walker {
  writer: TarWriter;
  linkInside: LinkCheck;
  onFileBytes: ((count: number) => void) | undefined;
  /** The thread that reads runs of files, once a directory holds enough of them to pay for it. */
  reader: ArchiveReader | undefined;
  readerTried: boolean;
}

/** A run of files at least this long starts the reader thread (a small tree never does). */
const READER_AFTER_FILES = 16;
/** Files read by the thread in one job: 4 MiB at most (32 × INLINE_BYTES) in memory per job. */
const JOB_FILES = 32;

interface Attributes {
  size: number;
  mode: number;
  mtimeMs: number;
}

/** An entry of a directory, prepared ahead of its turn. */
type Prepared =
  | { kind: 'skip' }
  | { kind: 'link'; target: string; stats: Attributes }
  | { kind: 'directory'; fd: number; stats: Attributes }
  | { kind: 'file'; stats: Attributes; data: Buffer }
  | { kind: 'large'; fd: number; stats: Attributes };

/** Entries prepared together (one entry, or a run of files read by the thread) and their dirents. */
interface Group {
  dirents: Dirent<Buffer>[];
  prepared: Promise<Prepared[]>;
}

/**
 * The archive of one directory, depth first in byte order of the names. The entries of a
 * directory are prepared up to READ_AHEAD_ENTRIES ahead (opened, stat'ed and small files read
 * while the current entry is written out): by the reader thread for runs of files, otherwise
 * in libuv's pool. The read-ahead stops at subdirectories, so descriptors stay bounded by the
 * depth plus the window.
 */
async function* walkDirectory(walker: Walker, directory: string, prefix: string): AsyncGenerator<Buffer> {
  const { writer, onFileBytes } = walker;
  const dirents = (await readdir(directory, { encoding: 'buffer', withFileTypes: true })).filter(
    (dirent) => isServableName(dirent.name) && !isInternalName(dirent.name.toString('utf8')),
  );
  dirents.sort((a, b) => Buffer.compare(a.name, b.name));
  if (!walker.readerTried && dirents.filter((dirent) => dirent.isFile()).length >= READER_AFTER_FILES) {
    walker.readerTried = true;
    walker.reader = ArchiveReader.create();
  }
  const pending: Group[] = [];
  let ahead = 0;
  let next = 0;
  const fill = () => {
    while (next < dirents.length && ahead < READ_AHEAD_ENTRIES) {
      const dirent = dirents[next]!;
      // A subdirectory is opened in its turn only: its walk holds descriptors of its own.
      if (dirent.isDirectory() && pending.length > 0) return;
      let group: Group;
      if (walker.reader && dirent.isFile()) {
        let end = next;
        while (end < dirents.length && end - next < JOB_FILES && dirents[end]!.isFile()) end++;
        const run = dirents.slice(next, end);
        group = { dirents: run, prepared: readRun(walker.reader, directory, run) };
      } else {
        group = {
          dirents: [dirent],
          prepared: prepare(childOf(directory, dirent.name), dirent, prefix, walker.linkInside).then((one) => [one]),
        };
      }
      pending.push(group);
      next += group.dirents.length;
      ahead += group.dirents.length;
      if (dirent.isDirectory()) return;
    }
  };
  try {
    fill();
    while (pending.length > 0) {
      const group = pending[0]!;
      const entries = await group.prepared;
      pending.shift();
      ahead -= group.dirents.length;
      fill();
      let i = 0;
      try {
        for (; i < entries.length; i++) {
          const entry = entries[i]!;
          const name = `${prefix}${group.dirents[i]!.name.toString('utf8')}`;
          try {
            if (entry.kind === 'file') {
              writer.append(
                { name, type: 'file', size: entry.data.length, mode: entry.stats.mode, mtime: entry.stats.mtimeMs },
                entry.data,
              );
              if (writer.ready.length > 0) yield* writer.take();
              onFileBytes?.(entry.data.length);
            } else if (entry.kind === 'link') {
              yield* writer.add({ name, type: 'symlink', linkname: entry.target, mode: entry.stats.mode, mtime: entry.stats.mtimeMs });
            } else if (entry.kind === 'large') {
              const size = entry.stats.size;
              yield* writer.add({ name, type: 'file', size, mode: entry.stats.mode, mtime: entry.stats.mtimeMs });
              yield* writer.flush();
              yield* readExactly(entry.fd, size);
              yield* writer.pad(size);
              onFileBytes?.(size);
            } else if (entry.kind === 'directory') {
              yield* writer.add({ name: `${name}/`, type: 'directory', mode: entry.stats.mode, mtime: entry.stats.mtimeMs });
              const inner = PROC_FD ? `${PROC_FD}/${entry.fd}` : childOf(directory, group.dirents[i]!.name).toString();
              yield* walkDirectory(walker, inner, `${name}/`);
              fill();
            }
          } finally {
            await closeEntry(entry);
          }
        }
      } finally {
        // Returned early: the descriptors of the rest of the group.
        for (const rest of entries.slice(i + 1)) await closeEntry(rest);
      }
    }
  } finally {
    // Abandoned (the client went away, or a failure): what was prepared ahead is let go.
    const left = await Promise.allSettled(pending.splice(0).map((group) => group.prepared));
    for (const result of left) if (result.status === 'fulfilled') for (const entry of result.value) await closeEntry(entry);
  }
}

async function closeEntry(entry: Prepared): Promise<void> {
  if (entry.kind === 'large' || entry.kind === 'directory') await close(entry.fd);
}

/** A run of files of one directory, through the reader thread. */
async function readRun(reader: ArchiveReader, directory: string, run: Dirent<Buffer>[]): Promise<Prepared[]> {
  const files = await reader.read(
    directory,
    run.map((dirent) => dirent.name.toString('utf8')),
    FILE_FLAGS,
    INLINE_BYTES,
  );
  return files.map((file): Prepared => {
    if (!file) return { kind: 'skip' };
    if ('fd' in file) return { kind: 'large', fd: file.fd, stats: file };
    return { kind: 'file', stats: file, data: file.data };
  });
}

/**
 * Opens and checks one entry. The type readdir reported decides what is tried (a symlink is
 * read, never opened); whatever is opened is opened with O_NOFOLLOW and checked again on its
 * descriptor, so an entry swapped for a link or a FIFO meanwhile is left out rather than followed.
 */
async function prepare(child: Buffer | string, dirent: Dirent<Buffer>, prefix: string, linkInside: LinkCheck): Promise<Prepared> {
  let kind: 'link' | 'directory' | 'file' | undefined;
  if (dirent.isSymbolicLink()) kind = 'link';
  else if (dirent.isDirectory()) kind = 'directory';
  else if (dirent.isFile()) kind = 'file';
  else if (!dirent.isFIFO() && !dirent.isSocket() && !dirent.isBlockDevice() && !dirent.isCharacterDevice()) {
    // A filesystem that does not report types: ask.
    const stats = await lstat(child).catch((error: unknown) => {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw error;
    });
    if (stats?.isSymbolicLink()) kind = 'link';
    else if (stats?.isDirectory()) kind = 'directory';
    else if (stats?.isFile()) kind = 'file';
  }
  // FIFOs, sockets and devices stay out.
  if (kind === undefined) return { kind: 'skip' };
  if (kind === 'link') {
    const stats = await lstat(child).catch(() => undefined);
    if (!stats?.isSymbolicLink()) return { kind: 'skip' };
    const target = await readlink(child).catch(() => undefined);
    // Links that lead out of the workspace stay out, as in listings: the archive would be
    // refused on its way back in.
    if (target === undefined || !(await linkInside(target, prefix))) return { kind: 'skip' };
    return { kind: 'link', target, stats };
  }
  // O_NONBLOCK: a FIFO swapped in would otherwise wait for a writer forever.
  const fd = await openOrSkip(child, kind === 'directory' ? DIRECTORY_FLAGS : FILE_FLAGS);
  if (fd === undefined) return { kind: 'skip' };
  let keep = false;
  try {
    const stats = await fstat(fd);
    if (kind === 'directory') {
      keep = stats.isDirectory();
      return keep ? { kind: 'directory', fd, stats } : { kind: 'skip' };
    }
    if (!stats.isFile()) return { kind: 'skip' };
    if (stats.size > INLINE_BYTES) {
      keep = true;
      return { kind: 'large', fd, stats };
    }
    const data = Buffer.allocUnsafe(stats.size);
    let position = 0;
    while (position < data.length) {
      const bytesRead = await read(fd, data, position, data.length - position, position);
      if (bytesRead === 0) break;
      position += bytesRead;
    }
    // Shrunk while read: padded with zeros, as the size in the header says (see readExactly).
    data.fill(0, position);
    return { kind: 'file', stats, data };
  } finally {
    if (!keep) await close(fd);
  }
}

/** Opens `child`, or undefined when it is gone or has turned into a link or something else meanwhile. */
async function openOrSkip(child: Buffer | string, flags: number): Promise<number | undefined> {
  try {
    return await open(child, flags);
  } catch (error) {
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ELOOP') || isErrno(error, 'ENOTDIR')) return undefined;
    throw error;
  }
}

/**
 * Exactly `size` bytes of the file: the size in the entry's header is already written, so a
 * file that shrinks while it is read is padded with zeros and one that grows is cut at the
 * size it had (as GNU tar does, which also warns "file changed as we read it"). The next
 * read is in flight while the previous chunk is written out.
 */
async function* readExactly(fd: number, size: number): AsyncGenerator<Buffer> {
  const readAt = async (position: number): Promise<Buffer> => {
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, size - position));
    let filled = 0;
    while (filled < buffer.length) {
      const bytesRead = await read(fd, buffer, filled, buffer.length - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.fill(0, filled);
  };
  let position = 0;
  let ahead = size > 0 ? readAt(0) : undefined;
  try {
    while (ahead) {
      const chunk = await ahead;
      position += chunk.length;
      ahead = position < size ? readAt(position) : undefined;
      yield chunk;
    }
  } finally {
    // Returned early: the read in flight still owns the descriptor until it settles.
    await ahead?.catch(() => undefined);
  }
}

interface EntryHeader {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  /** Milliseconds since the epoch. */
  mtime: number;
  size?: number;
  linkname?: string;
}

const TYPE_FLAGS = { file: '0', directory: '5', symlink: '2' } as const;
/** Largest value of an 11-digit octal field: a size past it goes in a pax record. */
const MAX_OCTAL_11 = 0o77777777777;

/**
 * Writes POSIX tar (ustar headers, with pax records for what ustar cannot hold: long names
 * and links, huge sizes), gathering headers and small files into batches of BATCH_BYTES so
 * that a tree of many small files is not a stream of 512-byte chunks. Written here rather
 * than with tar-stream, which hands every header and entry to the stream on its own.
 */
class TarWriter {
  private batch = Buffer.allocUnsafe(BATCH_BYTES);
  private used = 0;
  /** Full batches not handed out yet. */
  readonly ready: Buffer[] = [];

  /** The entry's header and content, as a generator of the batches they fill. */
  *add(header: EntryHeader, data?: Buffer): Generator<Buffer> {
    this.append(header, data);
    yield* this.take();
  }

  /**
   * The entry's header (and, for a small file, its content and padding) into the batch; full
   * batches wait in `ready`. A plain call: a tree of small files costs no generator per entry.
   */
  append(header: EntryHeader, data?: Buffer): void {
    const name = Buffer.from(header.name);
    const linkname = header.linkname === undefined ? undefined : Buffer.from(header.linkname);
    const size = header.size ?? 0;
    const pax: string[] = [];
    let split = splitName(name);
    if (!split) {
      pax.push(record('path', header.name));
      split = { prefix: Buffer.alloc(0), name: name.subarray(0, 100) };
    }
    if (linkname && linkname.length > 100) pax.push(record('linkpath', header.linkname!));
    if (size > MAX_OCTAL_11) pax.push(record('size', String(size)));
    if (pax.length > 0) {
      const body = Buffer.from(pax.join(''));
      this.put(encodeHeader({ prefix: Buffer.alloc(0), name: Buffer.from('././@PaxHeader') }, 'x', 0o644, header.mtime, body.length));
      this.put(body);
      this.putPadding(body.length);
    }
    this.put(encodeHeader(split, TYPE_FLAGS[header.type], header.mode & 0o7777, header.mtime, size, linkname?.subarray(0, 100)));
    // Copied into the batch (a small file is INLINE_BYTES at most): the stream gets 1 MiB
    // chunks rather than a header of 512 bytes, then a file, then a header.
    if (data) {
      this.put(data);
      this.putPadding(data.length);
    }
  }

  /** The full batches so far. */
  *take(): Generator<Buffer> {
    while (this.ready.length > 0) yield this.ready.shift()!;
  }

  /** Zeros up to the next 512-byte block after `size` bytes of content. */
  *pad(size: number): Generator<Buffer> {
    this.putPadding(size);
    yield* this.take();
  }

  /** The batch so far, to be followed by a file's content handed out directly. */
  *flush(): Generator<Buffer> {
    this.seal();
    yield* this.take();
  }

  /** The end-of-archive marker (two zero blocks) and the last batch. */
  *end(): Generator<Buffer> {
    this.put(Buffer.alloc(1024));
    yield* this.flush();
  }

  private putPadding(size: number): void {
    const rest = (512 - (size % 512)) % 512;
    if (rest > 0) this.put(Buffer.alloc(rest));
  }

  private seal(): void {
    if (this.used === 0) return;
    this.ready.push(this.batch.subarray(0, this.used));
    this.batch = Buffer.allocUnsafe(BATCH_BYTES);
    this.used = 0;
  }

  private put(bytes: Buffer): void {
    let offset = 0;
    while (offset < bytes.length) {
      const count = Math.min(bytes.length - offset, BATCH_BYTES - this.used);
      bytes.copy(this.batch, this.used, offset, offset + count);
      this.used += count;
      offset += count;
      if (this.used === BATCH_BYTES) this.seal();
    }
  }
}

/** A name as ustar's prefix and name fields, or undefined when it fits neither (a pax record then). */
function splitName(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  // The split is at a slash, with at most 155 bytes before it and 100 after.
  for (let i = Math.min(155, name.length - 1); i > 0; i--) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
    }
  }
  return undefined;
}

/** One pax record: its length counts itself, in decimal. */
function record(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let length = bytes + String(bytes).length;
  if (String(length).length !== String(bytes).length) length = bytes + String(length).length;
  return `${length}${body}`;
}

function encodeHeader(
  split: { prefix: Buffer; name: Buffer },
  type: string,
  mode: number,
  mtimeMs: number,
  size: number,
  linkname?: Buffer,
): Buffer {
  const header = Buffer.alloc(512);
  split.name.copy(header, 0);
  octal(header, 100, 8, mode);
  octal(header, 108, 8, 0);
  octal(header, 116, 8, 0);
  octal(header, 124, 12, size > MAX_OCTAL_11 ? 0 : size);
  octal(header, 136, 12, Math.max(0, Math.floor(mtimeMs / 1000)));
  header.write(type, 156, 'latin1');
  linkname?.copy(header, 157);
  header.write('ustar\u000000', 257, 'latin1');
  octal(header, 329, 8, 0);
  octal(header, 337, 8, 0);
  split.prefix.copy(header, 345);
  // The checksum: the sum of the header's bytes with its own field read as spaces.
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += header[i]!;
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return header;
}

/** An octal field: digits padded with zeros, then NUL. */
function octal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, 'latin1');
}

const open = promisify(fsOpen);
const fstat = promisify(fsFstat) as (fd: number) => Promise<Stats>;
const close = (fd: number) => promisify(fsClose)(fd).catch(() => undefined);
const read = (fd: number, buffer: Buffer, offset: number, length: number, position: number) =>
  new Promise<number>((resolve, reject) =>
    fsRead(fd, buffer, offset, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))),
  );
