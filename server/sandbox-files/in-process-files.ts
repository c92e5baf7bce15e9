/**
 * SandboxFiles in the API's own process, with the API's own rights: a stand-in until the process
 * host serves these operations as the kernels' user. Right only where both are one user (a
 * development machine); in the image the API cannot act as the kernels' user.
 */
import { constants, createReadStream, watch as fsWatch } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import {
  FILE_ERROR_CODES,
  SandboxFileError,
  type EntryInfo,
  type FileErrorCode,
  type SandboxFiles,
  type Watch,
  type WatchEvent,
} from './types.js';

/** Entries one list answers at most: a deep listing of `/` is no answer to hold in memory. */
const MAX_LIST_ENTRIES = 100_000;
/** Events a watch holds for a reader that does not keep up; one more ends the watch. */
const MAX_PENDING_EVENTS = 10_000;

export class InProcessFiles implements SandboxFiles {
  constructor(private readonly workspace: string) {}

  #resolve(target: string): string {
    if (typeof target !== 'string' || target === '') throw new SandboxFileError('EINVAL', 'a path is required');
    if (target.includes('\0')) throw new SandboxFileError('EINVAL', 'a path cannot contain NUL');
    return path.resolve(this.workspace, target);
  }

  async stat(target: string): Promise<EntryInfo> {
    const full = this.#resolve(target);
    return entryOf(full, await lstat(full).catch(fail(full)));
  }

  async makeDir(target: string): Promise<EntryInfo> {
    const full = this.#resolve(target);
    const existing = await lstat(full).catch(() => undefined);
    if (existing) throw new SandboxFileError('EEXIST', `path '${full}' already exists`);
    await mkdir(full, { recursive: true }).catch(fail(full));
    return this.stat(full);
  }

  async move(source: string, destination: string): Promise<EntryInfo> {
    const from = this.#resolve(source);
    const to = this.#resolve(destination);
    await lstat(from).catch(fail(from));
    await mkdir(path.dirname(to), { recursive: true }).catch(fail(to));
    await rename(from, to).catch(fail(from));
    return this.stat(to);
  }

  async list(target: string, depth: number, signal?: AbortSignal): Promise<EntryInfo[]> {
    const full = this.#resolve(target);
    const info = await stat(full).catch(fail(full));
    if (!info.isDirectory()) throw new SandboxFileError('ENOTDIR', `path '${full}' is not a directory`);
    const entries: EntryInfo[] = [];
    const walk = async (directory: string, level: number): Promise<void> => {
      signal?.throwIfAborted();
      const names = await readdir(directory).catch(fail(directory));
      for (const name of names) {
        const child = path.join(directory, name);
        const childStats = await lstat(child).catch(() => undefined);
        if (!childStats) continue;
        if (entries.length >= MAX_LIST_ENTRIES)
          throw new SandboxFileError('ELIMIT', `more than ${MAX_LIST_ENTRIES} entries under '${full}'`);
        entries.push(await entryOf(child, childStats));
        if (childStats.isDirectory() && level < depth) await walk(child, level + 1);
      }
    };
    await walk(full, 1);
    return entries;
  }

  async remove(target: string): Promise<void> {
    const full = this.#resolve(target);
    await lstat(full).catch(fail(full));
    await rm(full, { recursive: true, force: true }).catch(fail(full));
  }

  async read(target: string, signal?: AbortSignal): Promise<{ entry: EntryInfo; stream: Readable }> {
    const full = this.#resolve(target);
    const handle = await open(full, constants.O_RDONLY).catch(fail(full));
    try {
      const info = await handle.stat();
      if (info.isDirectory()) throw new SandboxFileError('EISDIR', `path '${full}' is a directory`);
      const stream = createReadStream('', { fd: handle.fd, autoClose: false, signal, highWaterMark: 64 * 1024 });
      stream.once('close', () => void handle.close());
      return { entry: await entryOf(full, info), stream };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async write(target: string, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<EntryInfo> {
    const full = this.#resolve(target);
    await mkdir(path.dirname(full), { recursive: true }).catch(fail(full));
    const existing = await stat(full).catch(() => undefined);
    if (existing?.isDirectory()) throw new SandboxFileError('EISDIR', `path '${full}' is a directory`);
    const temporary = path.join(path.dirname(full), `.${path.basename(full)}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temporary, 'wx', existing ? existing.mode & 0o7777 : 0o644).catch(fail(full));
    try {
      await pipeline(Readable.from(source), handle.createWriteStream(), { signal });
      await rename(temporary, full).catch(fail(full));
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    } finally {
      await handle.close().catch(() => undefined);
    }
    return this.stat(full);
  }

  async watch(target: string, options: { recursive: boolean; signal?: AbortSignal }): Promise<Watch> {
    const full = this.#resolve(target);
    const info = await stat(full).catch(fail(full));
    if (!info.isDirectory()) throw new SandboxFileError('ENOTDIR', `path '${full}' is not a directory`);
    const pending: WatchEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: SandboxFileError | undefined;
    const watcher = fsWatch(full, { recursive: options.recursive });
    const finish = (error?: SandboxFileError) => {
      if (ended) return;
      ended = true;
      failure = error;
      watcher.close();
      wake?.();
    };
    watcher.on('error', () => finish(new SandboxFileError('EIO', `watching '${full}' failed`)));
    // Node reports only `rename` (appeared or went) and `change`: which one a rename was is
    // read back from the directory.
    watcher.on('change', (kind, name) => {
      if (ended || typeof name !== 'string') return;
      const push = (event: WatchEvent) => {
        if (pending.length >= MAX_PENDING_EVENTS) return finish(new SandboxFileError('ELIMIT', 'the watch reader fell behind'));
        pending.push(event);
        wake?.();
      };
      if (kind === 'change') return push({ type: 'write', name });
      void lstat(path.join(full, name)).then(
        () => push({ type: 'create', name }),
        () => push({ type: 'remove', name }),
      );
    });
    options.signal?.addEventListener('abort', () => finish(), { once: true });
    async function* events(): AsyncGenerator<WatchEvent> {
      try {
        for (;;) {
          const next = pending.shift();
          if (next) {
            yield next;
            continue;
          }
          if (ended) {
            if (failure) throw failure;
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        finish();
      }
    }
    return { events: events(), close: () => finish() };
  }
}

function fail(target: string): (error: unknown) => never {
  return (error) => {
    if (error instanceof SandboxFileError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const known = (FILE_ERROR_CODES as readonly string[]).includes(code ?? '') ? (code as FileErrorCode) : 'EIO';
    const reason =
      known === 'ENOENT' ? 'does not exist' : known === 'EACCES' || known === 'EPERM' ? 'permission denied' : (error as Error).message;
    throw new SandboxFileError(known, `path '${target}': ${reason}`);
  };
}

async function entryOf(full: string, info: Stats): Promise<EntryInfo> {
  const type = info.isSymbolicLink() ? 'symlink' : info.isDirectory() ? 'directory' : 'file';
  const entry: EntryInfo = {
    name: path.basename(full),
    type,
    path: full,
    size: info.size,
    mode: info.mode & 0o7777,
    permissions: permissionsOf(info),
    owner: String(info.uid),
    group: String(info.gid),
    modifiedMs: info.mtimeMs,
  };
  if (type === 'symlink') entry.symlinkTarget = await readlink(full).catch(() => undefined);
  return entry;
}

function permissionsOf(info: Stats): string {
  const letter = info.isSymbolicLink() ? 'l' : info.isDirectory() ? 'd' : '-';
  const bits = 'rwxrwxrwx';
  let text = letter;
  for (let i = 0; i < 9; i++) text += info.mode & (1 << (8 - i)) ? bits[i] : '-';
  return text;
}
