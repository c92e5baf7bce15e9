import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeControl, encodeFrame, FrameKind } from '../../server/process-host/protocol.js';
import { HostFiles } from '../../server/processes/host-files.js';
import { SandboxFileError, type WatchEvent } from '../../server/sandbox-files/types.js';
import { TestProcessHost } from '../helpers/process-host.js';

async function* chunks(...parts: Array<string | Buffer>): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

async function failure(promise: Promise<unknown>): Promise<SandboxFileError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(SandboxFileError);
  return error as SandboxFileError;
}

/** Names in `dir` that look like a write's temporary file. */
function temporaries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.part')) : [];
}

async function waitFor(test: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * HostFiles against the real process host (dist/, `npm run build` first): every call, its
 * errors, streaming both ways, and a peer that breaks the protocol.
 */
describe('sandbox files through the process host', () => {
  const host = new TestProcessHost();
  let files: HostFiles;
  let ws: string;
  beforeAll(async () => {
    await host.start();
    files = new HostFiles(host.socketPath);
    ws = host.workspace;
  });
  afterAll(() => host.stop());

  it('stats files, directories and links, relative to the workspace or absolute', async () => {
    mkdirSync(path.join(ws, 'stat/dir'), { recursive: true });
    writeFileSync(path.join(ws, 'stat/file.txt'), 'four');
    chmodSync(path.join(ws, 'stat/file.txt'), 0o640);
    symlinkSync('file.txt', path.join(ws, 'stat/link'));

    const file = await files.stat('stat/file.txt');
    expect(file).toMatchObject({
      name: 'file.txt',
      type: 'file',
      path: path.join(ws, 'stat/file.txt'),
      size: 4,
      mode: 0o640,
      permissions: '-rw-r-----',
      owner: userInfo().username,
    });
    expect(file.modifiedMs).toBeCloseTo(statSync(path.join(ws, 'stat/file.txt')).mtimeMs, 0);
    expect(await files.stat(path.join(ws, 'stat/dir'))).toMatchObject({ type: 'directory', permissions: expect.stringMatching(/^d/) });
    expect(await files.stat('stat/link')).toMatchObject({ type: 'symlink', symlinkTarget: 'file.txt', permissions: 'lrwxrwxrwx' });
    expect(await files.stat('stat/./dir/..')).toMatchObject({ path: path.join(ws, 'stat') });

    expect((await failure(files.stat('stat/missing'))).code).toBe('ENOENT');
    expect((await failure(files.stat('stat/file.txt/inside'))).code).toBe('ENOTDIR');
    expect((await failure(files.stat(''))).code).toBe('EINVAL');
    expect((await failure(files.stat('a\0b'))).code).toBe('EINVAL');
  });

  it('makes directories with their parents, and refuses one that exists', async () => {
    const entry = await files.makeDir('made/a/b');
    expect(entry).toMatchObject({ type: 'directory', path: path.join(ws, 'made/a/b'), name: 'b' });
    expect(statSync(path.join(ws, 'made/a/b')).isDirectory()).toBe(true);
    expect((await failure(files.makeDir('made/a'))).code).toBe('EEXIST');
    writeFileSync(path.join(ws, 'made/file'), '');
    expect((await failure(files.makeDir('made/file'))).code).toBe('EEXIST');
    expect((await failure(files.makeDir('made/file/sub'))).code).toBe('ENOTDIR');
    expect((await failure(files.makeDir('made/file/sub/deeper'))).code).toBe('ENOTDIR');
    expect((await failure(files.move('made/a', 'made/file/a'))).code).toBe('ENOTDIR');
  });

  it('moves an entry, creating the destination parents', async () => {
    writeFileSync(path.join(ws, 'from.txt'), 'moving');
    const entry = await files.move('from.txt', 'moved/deep/to.txt');
    expect(entry).toMatchObject({ name: 'to.txt', path: path.join(ws, 'moved/deep/to.txt'), size: 6 });
    expect(existsSync(path.join(ws, 'from.txt'))).toBe(false);
    expect(readFileSync(path.join(ws, 'moved/deep/to.txt'), 'utf8')).toBe('moving');
    expect((await failure(files.move('from.txt', 'elsewhere.txt'))).code).toBe('ENOENT');
    mkdirSync(path.join(ws, 'moved/full/x'), { recursive: true });
    mkdirSync(path.join(ws, 'moved/empty'));
    expect((await failure(files.move('moved/empty', 'moved/full'))).code).toBe('ENOTEMPTY');
  });

  it('lists to a depth, absolute paths under the path asked for, without following linked directories', async () => {
    mkdirSync(path.join(ws, 'tree/a/b/c'), { recursive: true });
    writeFileSync(path.join(ws, 'tree/top.txt'), '');
    writeFileSync(path.join(ws, 'tree/a/b/deep.txt'), '');
    mkdirSync(path.join(ws, 'outside/inner'), { recursive: true });
    symlinkSync(path.join(ws, 'outside'), path.join(ws, 'tree/linked'));
    symlinkSync(path.join(ws, 'tree'), path.join(ws, 'tree-link'));

    const names = (entries: Array<{ path: string }>) => entries.map((entry) => path.relative(ws, entry.path)).sort();
    expect(names(await files.list('tree', 1))).toEqual(['tree/a', 'tree/linked', 'tree/top.txt']);
    expect(names(await files.list('tree', 3))).toEqual([
      'tree/a',
      'tree/a/b',
      'tree/a/b/c',
      'tree/a/b/deep.txt',
      'tree/linked',
      'tree/top.txt',
    ]);
    // The root is followed when it is a link, and answers under the name asked for.
    expect(names(await files.list('tree-link', 1))).toEqual(['tree-link/a', 'tree-link/linked', 'tree-link/top.txt']);
    const linked = (await files.list('tree', 1)).find((entry) => entry.name === 'linked');
    expect(linked).toMatchObject({ type: 'symlink', symlinkTarget: path.join(ws, 'outside') });

    expect((await failure(files.list('tree/top.txt', 1))).code).toBe('ENOTDIR');
    expect((await failure(files.list('nothing-here', 1))).code).toBe('ENOENT');
    expect((await failure(files.list('tree', 0))).code).toBe('EINVAL');
  });

  it('bounds a listing (ELIMIT) and sends a large one in parts', async () => {
    mkdirSync(path.join(ws, 'many'));
    // Names long enough that the listing needs several frames.
    for (let index = 0; index < 3000; index++) writeFileSync(path.join(ws, 'many', `${'n'.repeat(200)}-${index}`), '');
    expect(await files.list('many', 1)).toHaveLength(3000);
    const bounded = new HostFiles(host.socketPath, { maxListEntries: 100 });
    const error = await failure(bounded.list('many', 1));
    expect(error.code).toBe('ELIMIT');
    expect(error.message).toContain('more than 100 entries');
  });

  it('removes files, links and whole trees; ENOENT for what is not there', async () => {
    mkdirSync(path.join(ws, 'gone/x/y'), { recursive: true });
    writeFileSync(path.join(ws, 'gone/x/y/z'), 'z');
    writeFileSync(path.join(ws, 'kept.txt'), 'kept');
    symlinkSync(path.join(ws, 'kept.txt'), path.join(ws, 'gone-link'));
    await files.remove('gone-link');
    expect(existsSync(path.join(ws, 'kept.txt'))).toBe(true);
    await files.remove('gone');
    expect(existsSync(path.join(ws, 'gone'))).toBe(false);
    expect((await failure(files.remove('gone'))).code).toBe('ENOENT');
  });

  it('reads a file as a stream with its entry; EISDIR and ENOENT before any byte', async () => {
    writeFileSync(path.join(ws, 'read.txt'), 'read me');
    const { entry, stream } = await files.read('read.txt');
    expect(entry).toMatchObject({ name: 'read.txt', size: 7, type: 'file' });
    expect((await readAll(stream)).toString()).toBe('read me');
    expect((await failure(files.read('tree'))).code).toBe('EISDIR');
    expect((await failure(files.read('nope.txt'))).code).toBe('ENOENT');
  });

  it('writes whole files: parents created, an existing file keeps its mode, a link its target', async () => {
    const entry = await files.write('written/new/file.txt', chunks('hello ', 'world'));
    expect(entry).toMatchObject({ name: 'file.txt', path: path.join(ws, 'written/new/file.txt'), size: 11, type: 'file' });
    expect(readFileSync(path.join(ws, 'written/new/file.txt'), 'utf8')).toBe('hello world');

    chmodSync(path.join(ws, 'written/new/file.txt'), 0o751);
    expect(await files.write('written/new/file.txt', chunks('again'))).toMatchObject({ size: 5, mode: 0o751 });
    expect(statSync(path.join(ws, 'written/new/file.txt')).mode & 0o7777).toBe(0o751);

    symlinkSync('file.txt', path.join(ws, 'written/new/alias'));
    expect(await files.write('written/new/alias', chunks('through'))).toMatchObject({ path: path.join(ws, 'written/new/alias'), size: 7 });
    expect(lstatSync(path.join(ws, 'written/new/alias')).isSymbolicLink()).toBe(true);
    expect(readFileSync(path.join(ws, 'written/new/file.txt'), 'utf8')).toBe('through');

    expect(await files.write('written/empty', chunks())).toMatchObject({ size: 0 });
    expect((await failure(files.write('written', chunks('x')))).code).toBe('EISDIR');
    expect((await failure(files.write('written/new/file.txt/below', chunks('x')))).code).toBe('ENOTDIR');
    expect(temporaries(path.join(ws, 'written/new'))).toEqual([]);
  });

  it('round-trips 50 MiB byte for byte', async () => {
    const size = 50 * 1024 * 1024;
    const data = randomBytes(size);
    // Uneven pieces, some above the frame size, so frames are cut and joined.
    async function* pieces(): AsyncGenerator<Uint8Array> {
      for (let offset = 0, step = 1; offset < size; offset += step, step = (step * 7 + 1) % (3 * 1024 * 1024) || 1)
        yield data.subarray(offset, Math.min(size, offset + step));
    }
    const entry = await files.write('big.bin', pieces());
    expect(entry.size).toBe(size);
    expect(
      createHash('sha256')
        .update(readFileSync(path.join(ws, 'big.bin')))
        .digest('hex'),
    ).toBe(createHash('sha256').update(data).digest('hex'));
    const { stream } = await files.read('big.bin');
    const back = await readAll(stream);
    expect(back.length).toBe(size);
    expect(back.equals(data)).toBe(true);
  }, 120_000);

  it('a slow reader holds the host back rather than the whole file in memory', async () => {
    writeFileSync(path.join(ws, 'slow.bin'), randomBytes(16 * 1024 * 1024));
    const { stream } = await files.read('slow.bin');
    // Unread, the stream fills to its high-water mark and no further: the rest waits in the host.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(stream.readableLength).toBeLessThan(2 * 1024 * 1024);
    expect((await readAll(stream)).length).toBe(16 * 1024 * 1024);
  });

  it('an aborted write leaves neither a temporary file nor the target', async () => {
    mkdirSync(path.join(ws, 'aborted'));
    const controller = new AbortController();
    async function* stalls(): AsyncGenerator<Uint8Array> {
      yield randomBytes(2 * 1024 * 1024);
      yield randomBytes(2 * 1024 * 1024);
      // Wait until the host has made its temporary file, then abort.
      await waitFor(() => temporaries(path.join(ws, 'aborted')).length === 1, 'the temporary file');
      controller.abort();
      await new Promise((resolve) => setTimeout(resolve, 60_000));
    }
    const error = await files.write('aborted/target.bin', stalls(), controller.signal).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect((error as Error).name).toBe('AbortError');
    await waitFor(() => temporaries(path.join(ws, 'aborted')).length === 0, 'the temporary file to go');
    expect(existsSync(path.join(ws, 'aborted/target.bin'))).toBe(false);

    // A source that fails is the same: nothing half-written, an existing file untouched.
    writeFileSync(path.join(ws, 'aborted/kept.txt'), 'original');
    async function* breaks(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('partial');
      throw new Error('the upload broke');
    }
    await expect(files.write('aborted/kept.txt', breaks())).rejects.toThrow('the upload broke');
    await waitFor(() => temporaries(path.join(ws, 'aborted')).length === 0, 'the temporary file to go');
    expect(readFileSync(path.join(ws, 'aborted/kept.txt'), 'utf8')).toBe('original');
  });

  it('watches a directory: events in order, and close or the signal ends them', async () => {
    mkdirSync(path.join(ws, 'watched/sub'), { recursive: true });
    const controller = new AbortController();
    const watch = await files.watch('watched', { recursive: true, signal: controller.signal });
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const event of watch.events) seen.push(event);
    })();
    writeFileSync(path.join(ws, 'watched/new.txt'), 'x');
    writeFileSync(path.join(ws, 'watched/sub/deeper.txt'), '');
    await waitFor(() => seen.some((event) => event.name === 'sub/deeper.txt'), 'the events');
    expect(seen).toContainEqual({ type: 'create', name: 'new.txt' });
    expect(seen).toContainEqual({ type: 'create', name: 'sub/deeper.txt' });
    controller.abort();
    await done;

    expect((await failure(files.watch('watched/missing', { recursive: false }))).code).toBe('ENOENT');
    expect((await failure(files.watch('watched/new.txt', { recursive: false }))).code).toBe('ENOTDIR');
  });

  it('ends a watch whose consumer does not read (ELIMIT), in the API and in the host', async () => {
    mkdirSync(path.join(ws, 'flood'));
    const bounded = new HostFiles(host.socketPath, { maxQueuedEvents: 10 });
    const watch = await bounded.watch('flood', { recursive: false });
    for (let index = 0; index < 50; index++) writeFileSync(path.join(ws, 'flood', `f${index}`), '');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const seen: WatchEvent[] = [];
    const error = await (async () => {
      for await (const event of watch.events) seen.push(event);
    })().then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(SandboxFileError);
    expect((error as SandboxFileError).code).toBe('ELIMIT');
    expect(seen).toHaveLength(10);

    // In the host: a connection that is not read fills the socket, and the watch ends there.
    mkdirSync(path.join(ws, 'flood2'));
    const client = await host.connect();
    client.send({ op: 'fs', call: 'watch', path: path.join(ws, 'flood2'), recursive: false });
    await client.until((collected) => collected.events.length > 0);
    client.socket.pause();
    const long = 'w'.repeat(240);
    for (let index = 0; index < 12_000; index++) writeFileSync(path.join(ws, 'flood2', `${long}${index}`), '');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    client.socket.resume();
    const { events } = await client.closed;
    expect(events[0]).toEqual({ ev: 'watch_started' });
    expect(events.at(-1)).toMatchObject({ ev: 'watch_error', code: 'ELIMIT', message: expect.stringContaining('did not keep up') });
  }, 60_000);

  describe('a peer that breaks the protocol is disconnected', () => {
    const refusals: Array<[string, Buffer[]]> = [
      ['an unknown call', [encodeControl({ op: 'fs', call: 'chmod', path: '/tmp' } as never)]],
      ['a path with NUL', [encodeControl({ op: 'fs', call: 'stat', path: '/tmp/\0' })]],
      ['an empty path', [encodeControl({ op: 'fs', call: 'stat', path: '' })]],
      ['a depth of 0', [encodeControl({ op: 'fs', call: 'list', path: '/tmp', depth: 0 })]],
      ['a watch without recursive', [encodeControl({ op: 'fs', call: 'watch', path: '/tmp' } as never)]],
      [
        'data on a stat',
        [encodeControl({ op: 'fs', call: 'stat', path: '/nonexistent/x' }), encodeFrame(FrameKind.data, Buffer.from('x'))],
      ],
      [
        'input on a write',
        [encodeControl({ op: 'fs', call: 'write', path: '/tmp/never' }), encodeFrame(FrameKind.input, Buffer.from('x'))],
      ],
      ['fs after start', [encodeControl({ op: 'ping' }), encodeControl({ op: 'fs', call: 'stat', path: '/tmp' })]],
      [
        'a second fs',
        [
          encodeControl({ op: 'fs', call: 'watch', path: '/tmp', recursive: false }),
          encodeControl({ op: 'fs', call: 'stat', path: '/tmp' }),
        ],
      ],
      ['fs_end before fs', [encodeControl({ op: 'fs_end' })]],
    ];
    for (const [what, frames] of refusals)
      it(what, async () => {
        const client = await host.connect();
        for (const frame of frames) client.socket.write(frame);
        const { events } = await client.closed;
        expect(events.filter((event) => event.ev.startsWith('fs_') && event.ev !== 'fs_error')).toEqual([]);
        expect(host.process!.exitCode).toBeNull();
      });

    it('data after fs_end ends a write, and nothing is left', async () => {
      mkdirSync(path.join(ws, 'broken'));
      const client = await host.connect();
      client.send({ op: 'fs', call: 'write', path: path.join(ws, 'broken/never.txt') });
      // All in one write: the host reads them together, after the write is under way or not.
      client.socket.write(
        Buffer.concat([
          encodeFrame(FrameKind.data, Buffer.from('a')),
          encodeControl({ op: 'fs_end' }),
          encodeFrame(FrameKind.data, Buffer.from('b')),
        ]),
      );
      await client.closed;
      await waitFor(() => temporaries(path.join(ws, 'broken')).length === 0, 'the temporary file to go');
      expect(existsSync(path.join(ws, 'broken/never.txt'))).toBe(false);
    });

    it('a host that sends nonsense fails the call with EIO', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'fake-host-'));
      const socketPath = path.join(dir, 'fake.sock');
      const servers: Server[] = [];
      try {
        const server = createServer((socket) => socket.write(encodeControl({ ev: 'fs_result', entry: { name: 1 } } as never)));
        servers.push(server);
        server.listen(socketPath);
        await once(server, 'listening');
        const error = await failure(new HostFiles(socketPath).stat('/x'));
        expect(error.code).toBe('EIO');
        expect(error.message).toContain('broke the protocol');
      } finally {
        for (const server of servers) server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

/**
 * The same host as an unprivileged user, where the kernel's permission checks apply (root passes
 * them all). Only root can start it as another user, as start-up.sh does.
 */
describe.skipIf(process.getuid?.() !== 0)('sandbox files as an unprivileged user', () => {
  const host = new TestProcessHost();
  let files: HostFiles;
  let shared: string;
  beforeAll(async () => {
    shared = mkdtempSync(path.join(tmpdir(), 'sandbox-files-shared-'));
    chmodSync(shared, 0o777);
    await host.start({ KERNEL_USER: 'nobody', WORKSPACE_DIR: shared });
    files = new HostFiles(host.socketPath);
  });
  afterAll(async () => {
    await host.stop();
    rmSync(shared, { recursive: true, force: true });
  });

  it('sees EACCES where that user may not go, and owns what it writes', async () => {
    mkdirSync(path.join(shared, 'closed'), { mode: 0o000 });
    chmodSync(path.join(shared, 'closed'), 0o000);
    writeFileSync(path.join(shared, 'secret.txt'), 'root only', { mode: 0o600 });
    expect((await failure(files.list('closed', 1))).code).toBe('EACCES');
    expect((await failure(files.stat('closed/x'))).code).toBe('EACCES');
    expect((await failure(files.read('secret.txt'))).code).toBe('EACCES');
    expect((await failure(files.write('closed/new.txt', chunks('x')))).code).toBe('EACCES');
    expect((await failure(files.remove('/etc/hostname'))).code).toMatch(/^E(ACCES|PERM|ROFS|BUSY)$/);
    // The directory would allow replacing it; the file's own rights say no, as envd's in-place write.
    writeFileSync(path.join(shared, 'readonly.txt'), 'root', { mode: 0o644 });
    expect((await failure(files.write('readonly.txt', chunks('x')))).code).toBe('EACCES');
    expect(readFileSync(path.join(shared, 'readonly.txt'), 'utf8')).toBe('root');
    const entry = await files.write('mine.txt', chunks('mine'));
    expect(entry).toMatchObject({ owner: 'nobody', group: 'nogroup' });
  });
});
