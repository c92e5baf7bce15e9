import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { operations } from './generated/openapi.js';
import { encodePath, HttpConnection, type ServerOptions } from './http.js';
import { packDirectory, unpackInto } from './tar.js';

type Listing = operations['getFiles']['responses'][200]['content']['application/json'];
/** One entry of a directory listing. */
export type FileEntry = Listing['entries'][number];

export interface FileInfo {
  path: string;
  size: number;
  modified: number;
}

export interface ArchiveInfo {
  path: string;
  entries: number;
  bytes: number;
}

export interface TransferOptions {
  /** Replace what is at the destination (a file, a link or a whole directory). Default false. */
  overwrite?: boolean;
}

export type ResourceClientOptions = ServerOptions;

function checkPath(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty path, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * Moves files and directories in and out of the workspace (paths are relative to it), and
 * copies, moves, lists and deletes them there. Every transfer streams: no file or archive is
 * held in memory whole.
 */
export class ResourceClient {
  private readonly http: HttpConnection;

  constructor(options: ResourceClientOptions) {
    this.http = new HttpConnection(options);
  }

  /** Uploads a local file, creating the remote parent directories; an existing file is replaced. */
  async uploadFile(localPath: string, remotePath: string): Promise<FileInfo> {
    checkPath('remotePath', remotePath);
    const info = await stat(checkPath('localPath', localPath));
    if (!info.isFile()) throw new TypeError(`${localPath} is not a file`);
    return this.uploadStream(createReadStream(localPath), remotePath);
  }

  /** Uploads whatever a stream yields as the file at `remotePath`. */
  async uploadStream(
    source: Iterable<Uint8Array> | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
    remotePath: string,
  ): Promise<FileInfo> {
    checkPath('remotePath', remotePath);
    const body = source instanceof ReadableStream ? source : (Readable.toWeb(Readable.from(source)) as ReadableStream<Uint8Array>);
    return this.http.json<FileInfo>(`/files/${encodePath(remotePath)}`, { method: 'PUT', body });
  }

  /**
   * Uploads a local directory's contents into `remoteDir` (created when missing) as one tar
   * archive, unpacked by the server all or nothing: same-named files are replaced, directories
   * merged, and what `remoteDir` holds besides stays.
   */
  async uploadDirectory(localDir: string, remoteDir: string): Promise<ArchiveInfo> {
    checkPath('remoteDir', remoteDir);
    const info = await stat(checkPath('localDir', localDir));
    if (!info.isDirectory()) throw new TypeError(`${localDir} is not a directory`);
    const tar = packDirectory(localDir);
    const body = Readable.toWeb(tar.child.stdout!) as ReadableStream<Uint8Array>;
    try {
      const [answer] = await Promise.all([
        this.http.json<ArchiveInfo>(`/files/${encodePath(remoteDir) || '.'}`, { method: 'PUT', query: { extract: 'tar' }, body }),
        tar.exited,
      ]);
      return answer;
    } catch (error) {
      tar.child.kill();
      throw error;
    }
  }

  /** The bytes of a remote file, as a stream. */
  async downloadStream(remotePath: string): Promise<ReadableStream<Uint8Array>> {
    const response = await this.http.request(`/files/${encodePath(checkPath('remotePath', remotePath))}`);
    return response.body as ReadableStream<Uint8Array>;
  }

  /**
   * Downloads a remote file to `localPath` (parents created). It is written beside the target
   * and renamed into place once complete, so a failed download leaves no partial file.
   */
  async downloadFile(remotePath: string, localPath: string): Promise<void> {
    checkPath('localPath', localPath);
    const body = await this.downloadStream(remotePath);
    await mkdir(path.dirname(path.resolve(localPath)), { recursive: true });
    const partial = `${localPath}.${process.pid}.${Date.now()}.part`;
    try {
      await pipeline(Readable.fromWeb(body as Parameters<typeof Readable.fromWeb>[0]), createWriteStream(partial));
      await rename(partial, localPath);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }

  /** Downloads a remote directory's contents into `localDir` (created when missing) through one tar archive. */
  async downloadDirectory(remoteDir: string, localDir: string): Promise<void> {
    checkPath('localDir', localDir);
    const response = await this.http.request(`/files/${encodePath(checkPath('remoteDir', remoteDir)) || '.'}`, {
      query: { format: 'tar' },
    });
    await mkdir(localDir, { recursive: true });
    const tar = unpackInto(localDir);
    try {
      await Promise.all([
        pipeline(Readable.fromWeb(response.body as Parameters<typeof Readable.fromWeb>[0]), tar.child.stdin as Writable),
        tar.exited,
      ]);
    } catch (error) {
      tar.child.kill();
      throw error;
    }
  }

  /** Copies a file, link or directory (recursively) within the workspace. */
  async copy(from: string, to: string, options: TransferOptions = {}): Promise<void> {
    await this.action(from, { action: 'copy', to: checkPath('to', to), overwrite: options.overwrite ?? false });
  }

  /** Moves (renames) a file, link or directory within the workspace. */
  async move(from: string, to: string, options: TransferOptions = {}): Promise<void> {
    await this.action(from, { action: 'move', to: checkPath('to', to), overwrite: options.overwrite ?? false });
  }

  /** Makes a directory and its parents; nothing happens when it exists. */
  async makeDirectory(remotePath: string): Promise<void> {
    await this.action(remotePath, { action: 'mkdir' });
  }

  /** Deletes a file, a link (never its target) or a directory with everything in it. */
  async delete(remotePath: string): Promise<void> {
    await this.http.request(`/files/${encodePath(checkPath('remotePath', remotePath))}`, { method: 'DELETE' });
  }

  /** Every entry of a remote directory (default: the workspace root), directories first, then by name. */
  async list(remotePath = '.'): Promise<FileEntry[]> {
    const entries: FileEntry[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.http.json<Listing>('/files', { query: { path: remotePath, cursor } });
      entries.push(...page.entries);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    return entries;
  }

  private async action(remotePath: string, body: Record<string, unknown>): Promise<void> {
    await this.http.request(`/files/${encodePath(checkPath('path', remotePath))}`, { method: 'POST', json: body });
  }
}
