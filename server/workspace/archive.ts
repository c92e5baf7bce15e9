import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack as tarPack, type Header, type Pack } from 'tar-stream';
import { FileNotFoundError, NotADirectoryError } from '../errors.js';
import { linkLeadsInside } from './links.js';
import { isInternalName, isServableName, quote } from './paths.js';
import { childOf, isErrno, pathOfHandle, type Workspace } from './workspace.js';

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
 * no temporary file, memory bounded by one read chunk and the stream buffers whatever the
 * tree's size. Entry names are relative to the directory (as `tar -C dir -c .` makes them),
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

  const pack = tarPack();
  const output = new PassThrough({ highWaterMark: READ_CHUNK_BYTES });
  // pipeline tears every stage down when the client goes away (the output is destroyed).
  const source = pack as unknown as Readable;
  const done = (format === 'tar.gz' ? pipeline(source, createGzip(), output) : pipeline(source, output)).catch(() => undefined);
  const walk = (async () => {
    try {
      const linkInside: LinkCheck = (target, prefix) => linkLeadsInside(root, path.join(resolved.real, prefix), target);
      await addDirectory(pack, directory.path, '', linkInside, onFileBytes);
      pack.finalize();
    } catch (error) {
      pack.destroy(error as Error);
    } finally {
      await directory.close();
    }
  })();
  void Promise.all([done, walk]);
  return { display: resolved.display, stream: output };
}

/**
 * Whether a link whose target is `target`, in the archive's directory `prefix`, stays in the
 * workspace, resolved through the links on its way as the kernel would.
 */
type LinkCheck = (target: string, prefix: string) => Promise<boolean>;

async function addDirectory(
  pack: Pack,
  directory: string,
  prefix: string,
  linkInside: LinkCheck,
  onFileBytes?: (count: number) => void,
): Promise<void> {
  const names = (await readdir(directory, { encoding: 'buffer' })).filter(
    (name) => isServableName(name) && !isInternalName(name.toString('utf8')),
  );
  names.sort((a, b) => Buffer.compare(a, b));
  for (const raw of names) {
    if (pack.destroyed) return;
    const name = `${prefix}${raw.toString('utf8')}`;
    const child = childOf(directory, raw);
    let stats: Stats;
    try {
      stats = await lstat(child);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) continue;
      throw error;
    }
    if (stats.isSymbolicLink()) {
      const target = await readlink(child).catch(() => undefined);
      // Links that lead out of the workspace stay out, as in listings: the archive would be
      // refused on its way back in.
      if (target !== undefined && (await linkInside(target, prefix)))
        await addEntry(pack, { name, type: 'symlink', linkname: target, mode: stats.mode & 0o7777, mtime: stats.mtime });
    } else if (stats.isDirectory()) {
      const handle = await openOrSkip(child, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      if (!handle) continue;
      try {
        const opened = await handle.stat();
        await addEntry(pack, { name: `${name}/`, type: 'directory', mode: opened.mode & 0o7777, mtime: opened.mtime });
        await addDirectory(pack, pathOfHandle(handle, child.toString()), `${name}/`, linkInside, onFileBytes);
      } finally {
        await handle.close();
      }
    } else if (stats.isFile()) {
      // O_NONBLOCK: a FIFO swapped in would otherwise wait for a writer forever.
      const handle = await openOrSkip(child, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      if (!handle) continue;
      try {
        const opened = await handle.stat();
        if (!opened.isFile()) continue;
        const entry = pack.entry({ name, type: 'file', size: opened.size, mode: opened.mode & 0o7777, mtime: opened.mtime });
        await pipeline(exactly(handle, opened.size), entry as unknown as NodeJS.WritableStream);
        onFileBytes?.(opened.size);
      } finally {
        await handle.close();
      }
    }
    // FIFOs, sockets and devices stay out.
  }
}

/** Opens `child`, or undefined when it is gone or has turned into a link or something else meanwhile. */
async function openOrSkip(child: Buffer | string, flags: number): Promise<FileHandle | undefined> {
  try {
    return await open(child, flags);
  } catch (error) {
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ELOOP') || isErrno(error, 'ENOTDIR')) return undefined;
    throw error;
  }
}

function addEntry(pack: Pack, header: Partial<Header> & Pick<Header, 'name'>): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (error) => (error ? reject(error) : resolve())));
}

/**
 * Exactly `size` bytes of the file: the size in the entry's header is already written, so a
 * file that shrinks while it is read is padded with zeros and one that grows is cut at the
 * size it had (as GNU tar does, which also warns "file changed as we read it").
 */
async function* exactly(handle: FileHandle, size: number): AsyncGenerator<Buffer> {
  let position = 0;
  while (position < size) {
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, size - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) {
      for (; position < size; position += READ_CHUNK_BYTES) yield Buffer.alloc(Math.min(READ_CHUNK_BYTES, size - position));
      return;
    }
    position += bytesRead;
    yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  }
}
