import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename as renameFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { FileNotFoundError, FileType, FilesystemEventType, InvalidArgumentError, RateLimitError, Sandbox, type FilesystemEvent } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventType, Filesystem } from '../../server/transports/connect/gen/envd/filesystem/filesystem_pb.js';
import { TestProcessHost } from '../helpers/process-host.js';
import { portIsFree } from '../helpers/processes.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * e2b's `sandbox.files`, unmodified, in debug mode: it sends every file call to localhost:49983,
 * envd's port, which it does not let anyone change. This file starts its own server with
 * ENVD_PORT there, and is skipped only when something else holds the port.
 */
const ENVD_PORT = 49983;
const portFree = await portIsFree(ENVD_PORT);
if (!portFree) {
  console.warn(`e2b files tests SKIPPED: port ${ENVD_PORT} is taken by another process, and the SDK's debug mode talks to that port only`);
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Waits until `check` holds, polling: watch events arrive when the kernel reports them. */
async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!portFree)(`the e2b SDK's sandbox.files in debug mode, on localhost:${ENVD_PORT}`, () => {
  let server: StartedServer;
  let sandbox: Sandbox;
  let root: string;
  const host = new TestProcessHost();
  let unique = 0;
  /** A fresh directory per test, under the workspace. */
  const fresh = async () => {
    const directory = path.join(root, `t${++unique}`);
    await mkdir(directory, { recursive: true });
    return directory;
  };

  beforeAll(async () => {
    server = await startServer({ ENVD_PORT: String(ENVD_PORT), PROCESS_HOST_SOCKET: host.socketPath }, { host: 'localhost' });
    await host.start({ WORKSPACE_DIR: server.workspaceDir });
    sandbox = await Sandbox.create({ debug: true });
    root = server.workspaceDir;
  });

  afterAll(async () => {
    await server?.stop();
    await host.stop();
  });

  describe('read and write', () => {
    it('round-trips text, and writes create the missing parent directories', async () => {
      const directory = await fresh();
      const file = path.join(directory, 'a', 'b', 'hello.txt');
      const info = await sandbox.files.write(file, 'héllo, wörld\n');
      expect(info).toMatchObject({ name: 'hello.txt', path: file, type: FileType.FILE });
      expect(await sandbox.files.read(file)).toBe('héllo, wörld\n');
      expect(await readFile(file, 'utf8')).toBe('héllo, wörld\n');
    });

    it('round-trips every byte value as bytes, blob and stream', async () => {
      const directory = await fresh();
      const data = new Uint8Array([...Array.from({ length: 256 }, (_, i) => i), ...randomBytes(4096)]);
      const file = path.join(directory, 'bytes.bin');
      await sandbox.files.write(file, data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      expect(Buffer.from(await sandbox.files.read(file, { format: 'bytes' })).equals(data)).toBe(true);
      const blob = await sandbox.files.read(file, { format: 'blob' });
      expect(Buffer.from(await blob.arrayBuffer()).equals(data)).toBe(true);
      const stream = await sandbox.files.read(file, { format: 'stream' });
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    });

    it('round-trips a 50 MiB file byte for byte, streamed up (raw body) and down', async () => {
      const directory = await fresh();
      const data = randomBytes(50 * 1024 * 1024);
      const file = path.join(directory, 'big.bin');
      const source = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let offset = 0; offset < data.length; offset += 1024 * 1024) controller.enqueue(data.subarray(offset, offset + 1024 * 1024));
          controller.close();
        },
      });
      const info = await sandbox.files.write(file, source);
      expect(info.path).toBe(file);
      expect((await stat(file)).size).toBe(data.length);
      const stream = await sandbox.files.read(file, { format: 'stream' });
      const hash = createHash('sha256');
      let length = 0;
      for await (const chunk of stream) {
        hash.update(chunk);
        length += chunk.length;
      }
      expect(length).toBe(data.length);
      expect(hash.digest('hex')).toBe(sha256(data));
    }, 120_000);

    it('round-trips a 50 MiB file through a multipart upload', async () => {
      const directory = await fresh();
      const data = randomBytes(50 * 1024 * 1024);
      const file = path.join(directory, 'big-multipart.bin');
      await sandbox.files.write(file, new Blob([data]));
      expect(sha256(await readFile(file))).toBe(sha256(data));
      expect(sha256(await sandbox.files.read(file, { format: 'bytes' }))).toBe(sha256(data));
    }, 120_000);

    it('writes several files in one upload, nested directories included', async () => {
      const directory = await fresh();
      const entries = [
        { path: path.join(directory, 'one.txt'), data: 'one' },
        { path: path.join(directory, 'x', 'y', 'two.txt'), data: new Blob(['two']) },
        { path: path.join(directory, 'x', 'three.bin'), data: new Uint8Array([0, 1, 2, 255]).buffer },
      ];
      const written = await sandbox.files.writeFiles(entries);
      expect(written.map((entry) => entry.path)).toEqual(entries.map((entry) => entry.path));
      expect(written.every((entry) => entry.type === FileType.FILE)).toBe(true);
      expect(await readFile(entries[0]!.path, 'utf8')).toBe('one');
      expect(await readFile(entries[1]!.path, 'utf8')).toBe('two');
      expect([...(await readFile(entries[2]!.path))]).toEqual([0, 1, 2, 255]);
    });

    it('takes gzip uploads and gzip-accepting reads, and refuses metadata it would not keep', async () => {
      const directory = await fresh();
      const file = path.join(directory, 'gz.txt');
      await sandbox.files.write(file, 'compressed on the way up', { gzip: true });
      expect(await readFile(file, 'utf8')).toBe('compressed on the way up');
      expect(await sandbox.files.read(file, { gzip: true })).toBe('compressed on the way up');
      await expect(sandbox.files.write(path.join(directory, 'm.txt'), 'x', { metadata: { k: 'v' } })).rejects.toThrow(/metadata/);
      await expect(stat(path.join(directory, 'm.txt'))).rejects.toThrow();
    });

    it('overwrites an existing file, down to nothing', async () => {
      const directory = await fresh();
      const file = path.join(directory, 'f.txt');
      await sandbox.files.write(file, 'a much longer first version');
      await sandbox.files.write(file, 'short');
      expect(await sandbox.files.read(file)).toBe('short');
      await sandbox.files.write(file, '');
      expect(await sandbox.files.read(file)).toBe('');
      expect((await sandbox.files.getInfo(file)).size).toBe(0);
    });

    it('resolves a relative path in the workspace', async () => {
      await sandbox.files.write('relative.txt', 'here');
      expect(await readFile(path.join(root, 'relative.txt'), 'utf8')).toBe('here');
      expect((await sandbox.files.getInfo('relative.txt')).path).toBe(path.join(root, 'relative.txt'));
    });

    it('refuses upload names with a .. part or a NUL, writing nothing', async () => {
      const directory = await fresh();
      await expect(sandbox.files.write(`${directory}/../escaped.txt`, 'x')).rejects.toThrow(InvalidArgumentError);
      await expect(sandbox.files.writeFiles([{ path: `${directory}/sub/../../e.txt`, data: 'x' }])).rejects.toThrow(/'\.\.'/);
      await expect(sandbox.files.writeFiles([{ path: `${directory}/nul\0.txt`, data: 'x' }])).rejects.toThrow(/NUL/);
      await expect(sandbox.files.write(`${directory}/nul\0.txt`, new ReadableStream({ start: (c) => c.close() }))).rejects.toThrow(
        InvalidArgumentError,
      );
      await expect(stat(path.join(root, 'escaped.txt'))).rejects.toThrow();
      await expect(stat(path.join(directory, 'nul'))).rejects.toThrow();
    });

    it('answers 400 to a multipart body cut inside a part, keeping the file it would have replaced', async () => {
      const directory = await fresh();
      const target = path.join(directory, 'kept.txt');
      await writeFile(target, 'before');
      const boundary = 'cut-boundary-0123';
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${target}"\r\n\r\n`;
      const response = await fetch(`http://localhost:${ENVD_PORT}/files`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        // No closing boundary: the body ends in the middle of the part.
        body: Buffer.concat([Buffer.from(head), randomBytes(300_000)]),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { message: string }).message).toMatch(/multipart/);
      expect(await readFile(target, 'utf8')).toBe('before');
      expect((await readdir(directory)).sort()).toEqual(['kept.txt']);
    });

    it('reads a missing file as FileNotFoundError, and a directory as an invalid argument', async () => {
      const directory = await fresh();
      await expect(sandbox.files.read(path.join(directory, 'missing.txt'))).rejects.toThrow(FileNotFoundError);
      await expect(sandbox.files.read(path.join(directory, 'missing.txt'), { format: 'stream' })).rejects.toThrow(FileNotFoundError);
      await expect(sandbox.files.read(directory)).rejects.toThrow(InvalidArgumentError);
    });

    it('refuses another user than the sandbox user', async () => {
      const directory = await fresh();
      await expect(sandbox.files.write(path.join(directory, 'r.txt'), 'x', { user: 'root' })).rejects.toThrow(/root/);
      await expect(sandbox.files.getInfo(directory, { user: 'root' })).rejects.toThrow(/root/);
      expect(await sandbox.files.exists(directory, { user: 'user' })).toBe(true);
    });
  });

  describe('entries', () => {
    it('getInfo describes files, directories and links', async () => {
      const directory = await fresh();
      const file = path.join(directory, 'f.txt');
      await writeFile(file, '12345');
      await chmod(file, 0o640);
      await symlink('f.txt', path.join(directory, 'link'));
      const info = await sandbox.files.getInfo(file);
      expect(info).toMatchObject({ name: 'f.txt', type: FileType.FILE, path: file, size: 5, mode: 0o640, permissions: '-rw-r-----' });
      expect(info.modifiedTime!.getTime()).toBe(Math.floor((await stat(file)).mtimeMs));
      expect((await sandbox.files.getInfo(directory)).type).toBe(FileType.DIR);
      const link = await sandbox.files.getInfo(path.join(directory, 'link'));
      expect(link).toMatchObject({ type: FileType.SYMLINK, symlinkTarget: 'f.txt' });
      await expect(sandbox.files.getInfo(path.join(directory, 'missing'))).rejects.toThrow(FileNotFoundError);
    });

    it('exists, makeDir, rename and remove', async () => {
      const directory = await fresh();
      const nested = path.join(directory, 'p', 'q');
      expect(await sandbox.files.exists(nested)).toBe(false);
      expect(await sandbox.files.makeDir(nested)).toBe(true);
      expect(await sandbox.files.makeDir(nested)).toBe(false);
      expect(await sandbox.files.exists(nested)).toBe(true);
      await writeFile(path.join(nested, 'f.txt'), 'f');
      const moved = await sandbox.files.rename(path.join(directory, 'p'), path.join(directory, 'r', 'p2'));
      expect(moved).toMatchObject({ name: 'p2', type: FileType.DIR, path: path.join(directory, 'r', 'p2') });
      expect(await readFile(path.join(directory, 'r', 'p2', 'q', 'f.txt'), 'utf8')).toBe('f');
      await expect(sandbox.files.rename(path.join(directory, 'nothing'), path.join(directory, 'n2'))).rejects.toThrow(FileNotFoundError);
      await sandbox.files.remove(path.join(directory, 'r'));
      expect(await sandbox.files.exists(path.join(directory, 'r'))).toBe(false);
      await expect(sandbox.files.remove(path.join(directory, 'r'))).rejects.toThrow(FileNotFoundError);
    });

    it('lists one level by default and deeper with depth', async () => {
      const directory = await fresh();
      await mkdir(path.join(directory, 'a', 'b', 'c'), { recursive: true });
      await writeFile(path.join(directory, 'top.txt'), '');
      await writeFile(path.join(directory, 'a', 'b', 'deep.txt'), '');
      const names = async (depth?: number) =>
        (await sandbox.files.list(directory, depth === undefined ? undefined : { depth }))
          .map((entry) => path.relative(directory, entry.path))
          .sort();
      expect(await names()).toEqual(['a', 'top.txt']);
      expect(await names(2)).toEqual(['a', 'a/b', 'top.txt']);
      expect(await names(3)).toEqual(['a', 'a/b', 'a/b/c', 'a/b/deep.txt', 'top.txt']);
      const [top] = (await sandbox.files.list(directory)).filter((entry) => entry.name === 'top.txt');
      expect(top).toMatchObject({ type: FileType.FILE, path: path.join(directory, 'top.txt'), size: 0 });
      await expect(sandbox.files.list(path.join(directory, 'missing'))).rejects.toThrow(FileNotFoundError);
    });
  });

  describe('upload and download URLs', () => {
    it('are unsigned /files URLs on the envd port while access is open, and work with plain fetch', async () => {
      const directory = await fresh();
      const file = path.join(directory, 'url.txt');
      const uploadUrl = await sandbox.uploadUrl(file);
      expect(new URL(uploadUrl).port).toBe(String(ENVD_PORT));
      const form = new FormData();
      form.append('file', new Blob(['via url']), 'ignored-name');
      const uploaded = await fetch(uploadUrl, { method: 'POST', body: form });
      expect(uploaded.status).toBe(200);
      expect(await uploaded.json()).toEqual([{ name: 'url.txt', type: 'file', path: file }]);
      const downloaded = await fetch(await sandbox.downloadUrl(file));
      expect(downloaded.status).toBe(200);
      expect(downloaded.headers.get('content-type')).toBe('application/octet-stream');
      expect(await downloaded.text()).toBe('via url');
      const missing = await fetch(await sandbox.downloadUrl(path.join(directory, 'missing')));
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: 404, message: expect.stringContaining('missing') });
    });
  });

  describe('watchDir', () => {
    it('reports create, write, chmod, rename and remove in the directory', async () => {
      const directory = await fresh();
      const events: FilesystemEvent[] = [];
      const handle = await sandbox.files.watchDir(directory, (event) => void events.push(event));
      try {
        const seen = (type: string, name: string) => events.some((event) => String(event.type) === type && event.name === name);
        await writeFile(path.join(directory, 'w.txt'), 'one');
        await until(() => seen('create', 'w.txt'), 'create');
        await writeFile(path.join(directory, 'w.txt'), 'two, longer');
        await until(() => seen('write', 'w.txt'), 'write');
        await chmod(path.join(directory, 'w.txt'), 0o600);
        await until(() => seen('chmod', 'w.txt'), 'chmod');
        await renameFile(path.join(directory, 'w.txt'), path.join(directory, 'v.txt'));
        await until(() => seen('rename', 'w.txt') && seen('create', 'v.txt'), 'rename');
        await rm(path.join(directory, 'v.txt'));
        await until(() => seen('remove', 'v.txt'), 'remove');
      } finally {
        await handle.stop();
      }
    });

    it("reports an SDK write under the file's own name, never the server's temporary one", async () => {
      const directory = await fresh();
      const events: FilesystemEvent[] = [];
      const handle = await sandbox.files.watchDir(directory, (event) => void events.push(event));
      try {
        await sandbox.files.write(path.join(directory, 'written.txt'), 'first');
        await sandbox.files.write(path.join(directory, 'written.txt'), 'second, replacing it');
        await until(() => events.filter((event) => event.name === 'written.txt').length >= 3, 'the two writes');
        await writeFile(path.join(directory, 'marker.txt'), 'x');
        await until(() => events.some((event) => event.name === 'marker.txt'), 'the marker');
        expect(events.filter((event) => event.name !== 'written.txt' && event.name !== 'marker.txt')).toEqual([]);
        expect(events.find((event) => event.name === 'written.txt')?.type).toBe(FilesystemEventType.CREATE);
      } finally {
        await handle.stop();
      }
    });

    it('sees nested changes only when recursive', async () => {
      const directory = await fresh();
      await mkdir(path.join(directory, 'sub'));
      const flat: FilesystemEvent[] = [];
      const deep: FilesystemEvent[] = [];
      const flatHandle = await sandbox.files.watchDir(directory, (event) => void flat.push(event));
      const deepHandle = await sandbox.files.watchDir(directory, (event) => void deep.push(event), { recursive: true });
      try {
        await writeFile(path.join(directory, 'sub', 'inner.txt'), 'x');
        await until(
          () => deep.some((event) => event.name === 'sub/inner.txt' && event.type === FilesystemEventType.CREATE),
          'the nested create',
        );
        await writeFile(path.join(directory, 'marker.txt'), 'x');
        await until(() => flat.some((event) => event.name === 'marker.txt'), 'the top-level create');
        expect(flat.some((event) => event.name.startsWith('sub/'))).toBe(false);
      } finally {
        await flatHandle.stop();
        await deepHandle.stop();
      }
    });

    it('refuses a recursive watch of / past the directory bound, and serves on', async () => {
      await expect(sandbox.files.watchDir('/', () => undefined, { recursive: true })).rejects.toThrow(RateLimitError);
      expect(await sandbox.files.exists(root)).toBe(true);
    });

    it('delivers a burst of ten thousand creates, or ends the watch saying why: never unbounded', async () => {
      const directory = await fresh();
      let creates = 0;
      let ended: Error | undefined | null = null;
      const handle = await sandbox.files.watchDir(
        directory,
        (event) => {
          if (event.type === FilesystemEventType.CREATE) creates++;
        },
        { onExit: (error) => void (ended = error) },
      );
      try {
        const names = Array.from({ length: 10_000 }, (_, index) => path.join(directory, `f${index}`));
        for (let index = 0; index < names.length; index += 500)
          await Promise.all(names.slice(index, index + 500).map((name) => writeFile(name, '')));
        await until(() => creates === 10_000 || ended !== null, 'every create, or the end of the watch', 30_000);
        if (ended !== null) expect(String(ended)).toMatch(/keep up|more than/);
        else expect(creates).toBe(10_000);
      } finally {
        await handle.stop();
      }
      // The server is fine after it.
      expect((await sandbox.files.list(directory)).length).toBe(10_000);
    });

    it('adds the entry to an event with includeEntry', async () => {
      const directory = await fresh();
      const events: FilesystemEvent[] = [];
      const handle = await sandbox.files.watchDir(directory, (event) => void events.push(event), { includeEntry: true });
      try {
        await writeFile(path.join(directory, 'e.txt'), 'four');
        await until(
          () => events.some((event) => event.type === FilesystemEventType.WRITE && event.entry?.size === 4),
          'a write with its entry',
        );
        const written = events.find((event) => event.type === FilesystemEventType.WRITE)!;
        expect(written.entry).toMatchObject({ name: 'e.txt', path: path.join(directory, 'e.txt'), type: FileType.FILE });
      } finally {
        await handle.stop();
      }
    });

    it('fails to watch a missing directory with FileNotFoundError', async () => {
      const directory = await fresh();
      await expect(sandbox.files.watchDir(path.join(directory, 'missing'), () => undefined)).rejects.toThrow(FileNotFoundError);
    });
  });

  describe('the watcher polling API (raw Connect)', () => {
    const client = () => createClient(Filesystem, createConnectTransport({ baseUrl: `http://localhost:${ENVD_PORT}`, httpVersion: '1.1' }));

    it('creates a watcher, hands out its events once each, and removes it', async () => {
      const directory = await fresh();
      const fs = client();
      const { watcherId } = await fs.createWatcher({ path: directory, recursive: false, includeEntry: true });
      expect(watcherId).not.toBe('');
      await writeFile(path.join(directory, 'polled.txt'), 'abc');
      const collected: { name: string; type: EventType; size?: bigint }[] = [];
      const deadline = Date.now() + 5_000;
      while (!collected.some((event) => event.type === EventType.WRITE) && Date.now() < deadline) {
        const { events } = await fs.getWatcherEvents({ watcherId });
        collected.push(...events.map((event) => ({ name: event.name, type: event.type, size: event.entry?.size })));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(collected.find((event) => event.type === EventType.CREATE)).toMatchObject({ name: 'polled.txt' });
      expect(collected.find((event) => event.type === EventType.WRITE)).toMatchObject({ name: 'polled.txt', size: 3n });
      // Handed out once: the next poll has only what happened since.
      await writeFile(path.join(directory, 'second.txt'), '');
      let next: string[] = [];
      for (let i = 0; i < 50 && !next.includes('second.txt'); i++) {
        next = next.concat((await fs.getWatcherEvents({ watcherId })).events.map((event) => event.name));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(next).toContain('second.txt');
      expect(next).not.toContain('polled.txt');
      await fs.removeWatcher({ watcherId });
      await expect(fs.getWatcherEvents({ watcherId })).rejects.toMatchObject({ code: Code.NotFound });
      await expect(fs.removeWatcher({ watcherId })).rejects.toBeInstanceOf(ConnectError);
    });
  });
});
