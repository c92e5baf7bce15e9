import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Code, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { getSignature } from 'e2b';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildEnvdApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { LocalFiles } from '../../server/process-host/files.js';
import type { SandboxFiles, Watch, WatchEvent } from '../../server/sandbox-files/types.js';
import { Filesystem } from '../../server/transports/connect/gen/envd/filesystem/filesystem_pb.js';
import type { WatchersOptions } from '../../server/transports/connect/watchers.js';
import { startOffline } from '../helpers/offline-app.js';

/** A watch the test drives: events are pushed by hand, and it records whether it was closed. */
class ScriptedWatch implements Watch {
  readonly #queue: WatchEvent[] = [];
  #wake: (() => void) | undefined;
  closed = false;

  push(event: WatchEvent): void {
    this.#queue.push(event);
    this.#wake?.();
  }

  close(): void {
    this.closed = true;
    this.#wake?.();
  }

  readonly events: AsyncIterable<WatchEvent> = {
    [Symbol.asyncIterator]: async function* (this: ScriptedWatch) {
      for (;;) {
        const next = this.#queue.shift();
        if (next) yield next;
        else if (this.closed) return;
        else await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    }.bind(this),
  };
}

/**
 * The envd file doors over SandboxFiles in this process (LocalFiles on a temporary directory),
 * with reads and watches the test can hold: the bounds, the error answers, and how watches end.
 */
describe('filesystem.Filesystem and /files on the envd listener', () => {
  let dir: string;
  let envd: FastifyInstance;
  let baseUrl: string;
  let fs: Client<typeof Filesystem>;
  let watches: ScriptedWatch[];
  /** The main application the envd listener shares access control with. */
  let main: FastifyInstance;
  /** When set, reads wait for it before they answer. */
  let readGate: Promise<void> | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'envd-files-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    readGate = undefined;
    await envd?.close();
  });

  const start = async (env: Record<string, string> = {}, watchers: Partial<WatchersOptions> = {}) => {
    watches = [];
    const local = new LocalFiles({ workspace: dir });
    const files: SandboxFiles = {
      stat: (target) => local.stat(target),
      makeDir: (target) => local.makeDir(target),
      move: (source, destination) => local.move(source, destination),
      list: (target, depth, signal) => local.list(target, depth, signal),
      remove: (target) => local.remove(target),
      read: async (target, signal) => {
        if (readGate) await readGate;
        return local.read(target, signal);
      },
      write: (target, source, signal) => local.write(target, source, signal),
      watch: async (target, options) => {
        await local.stat(target);
        const watch = new ScriptedWatch();
        options.signal?.addEventListener('abort', () => watch.close(), { once: true });
        watches.push(watch);
        return watch;
      },
    };
    const { app } = await startOffline(env);
    main = app;
    envd = await buildEnvdApp(loadConfig({ JUPYTER_URL: 'http://127.0.0.1:1', WORKSPACE_DIR: dir, ...env }), {
      access: app.access,
      metrics: app.metrics,
      services: () => undefined,
      files,
      watchers,
    });
    await envd.listen({ host: '127.0.0.1', port: 0 });
    baseUrl = `http://127.0.0.1:${(envd.server.address() as AddressInfo).port}`;
    fs = createClient(Filesystem, createConnectTransport({ baseUrl, httpVersion: '1.1' }));
  };

  describe('MAX_FILE_OPERATIONS', () => {
    it('refuses one more operation than allowed at once, over HTTP and Connect, and frees the slot after', async () => {
      await start({ MAX_FILE_OPERATIONS: '1' });
      let open!: () => void;
      readGate = new Promise((resolve) => (open = resolve));
      const file = path.join(dir, 'held.txt');
      await (
        await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`, {
          method: 'POST',
          body: new Blob(['x']),
          headers: { 'content-type': 'application/octet-stream' },
        })
      ).body?.cancel();
      const held = fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ code: 429, message: expect.stringContaining('MAX_FILE_OPERATIONS=1') });
      await expect(fs.stat({ path: file })).rejects.toMatchObject({ code: Code.ResourceExhausted });
      open();
      expect(await (await held).text()).toBe('x');
      expect((await fs.stat({ path: file })).entry?.name).toBe('held.txt');
    });
  });

  it('frees the slot of a download whose client went away mid-file', async () => {
    await start({ MAX_FILE_OPERATIONS: '1' });
    const file = path.join(dir, 'abandoned.bin');
    await writeFile(file, Buffer.alloc(32 * 1024 * 1024));
    const controller = new AbortController();
    const response = await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`, { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    await expect(fs.stat({ path: file })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    controller.abort();
    await expect
      .poll(
        async () =>
          await fs.stat({ path: file }).then(
            () => 'served',
            () => 'refused',
          ),
        { timeout: 2_000 },
      )
      .toBe('served');
  });

  describe('POST and GET /files', () => {
    it('answers envd-shaped errors for what it cannot take', async () => {
      await start();
      const post = (query: string, init: RequestInit) => fetch(`${baseUrl}/files${query}`, { method: 'POST', ...init });
      const cases: [Response, number, RegExp][] = [
        [await post(`?path=${dir}/a`, { body: 'x', headers: { 'content-type': 'text/plain' } }), 400, /unsupported content type/],
        [await post('', { body: 'x', headers: { 'content-type': 'application/octet-stream' } }), 400, /path query parameter is required/],
        [await post(`?path=${dir}/b`, { body: new FormData() }), 400, /no part named "file"/],
        [
          await post(`?path=${dir}/c`, { body: 'x', headers: { 'content-type': 'application/octet-stream', 'x-metadata-k': 'v' } }),
          400,
          /metadata/,
        ],
        [await post(`?path=${dir}/d&username=root`, { body: 'x', headers: { 'content-type': 'application/octet-stream' } }), 401, /'root'/],
        [await fetch(`${baseUrl}/files`), 400, /path/],
        [await fetch(`${baseUrl}/files?path=${dir}`), 400, /directory/],
        [await fetch(`${baseUrl}/files?path=${dir}/missing`), 404, /missing/],
      ];
      for (const [response, status, message] of cases) {
        expect(response.status).toBe(status);
        const body = (await response.json()) as { code: number; message: string };
        expect(body.code).toBe(status);
        expect(body.message).toMatch(message);
      }
    });

    it('answers a refused upload on a kept-alive connection, whatever its body', async () => {
      await start();
      // Refusals between accepted uploads, over the connections fetch keeps: each refusal is
      // answered (the rest of its body read and dropped), and the next upload still goes through.
      for (let i = 0; i < 10; i++) {
        const accepted = new FormData();
        accepted.append('file', new Blob(['ok']), `${dir}/kept.txt`);
        expect((await fetch(`${baseUrl}/files`, { method: 'POST', body: accepted })).status).toBe(200);
        const refused = new FormData();
        refused.append('file', new Blob([new Uint8Array(i % 2 === 0 ? 1 : 256 * 1024)]), `${dir}/refused.bin`);
        const response = await fetch(`${baseUrl}/files`, { method: 'POST', body: refused, headers: { 'x-metadata-k': 'v' } });
        expect(response.status).toBe(400);
        expect(await response.json()).toMatchObject({ code: 400 });
      }
    });

    it('refuses an upload larger than MAX_UPLOAD_BYTES with 413, writing nothing', async () => {
      await start({ MAX_UPLOAD_BYTES: '1KiB' });
      const file = path.join(dir, 'too-big.bin');
      for (const body of [
        new Blob([new Uint8Array(4096)]),
        (() => {
          const form = new FormData();
          form.append('file', new Blob([new Uint8Array(4096)]), file);
          return form;
        })(),
      ]) {
        const response = await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`, {
          method: 'POST',
          body,
          headers: body instanceof Blob ? { 'content-type': 'application/octet-stream' } : {},
        });
        expect(response.status).toBe(413);
        expect(await response.json()).toMatchObject({ code: 413, message: expect.stringContaining('MAX_UPLOAD_BYTES') });
      }
      await expect(readFile(file)).rejects.toThrow(/ENOENT/);
    });

    it('takes a gzip-encoded raw body', async () => {
      await start();
      const file = path.join(dir, 'gz.txt');
      const response = await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`, {
        method: 'POST',
        body: gzipSync('unzipped on arrival'),
        headers: { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' },
      });
      expect(await response.json()).toEqual([{ name: 'gz.txt', type: 'file', path: file }]);
      expect(await readFile(file, 'utf8')).toBe('unzipped on arrival');
      const broken = await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`, {
        method: 'POST',
        body: 'not gzip at all',
        headers: { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' },
      });
      expect(broken.status).toBe(400);
      expect(await broken.json()).toMatchObject({ message: expect.stringContaining('not valid gzip') });
      expect(await readFile(file, 'utf8')).toBe('unzipped on arrival');
    });

    it('writes every file part of one form to its own filename, and refuses two to one path', async () => {
      await start();
      const form = new FormData();
      form.append('file', new Blob(['1']), `${dir}/m/one.txt`);
      form.append('other', 'ignored');
      form.append('file', new Blob(['2']), `${dir}/m/two.txt`);
      const response = await fetch(`${baseUrl}/files`, { method: 'POST', body: form });
      expect((await response.json()) as unknown[]).toHaveLength(2);
      expect(await readFile(`${dir}/m/two.txt`, 'utf8')).toBe('2');
      const twice = new FormData();
      twice.append('file', new Blob(['1']), 'ignored');
      twice.append('file', new Blob(['2']), 'ignored');
      const refused = await fetch(`${baseUrl}/files?path=${dir}/m/same.txt`, { method: 'POST', body: twice });
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { message: string }).message).toMatch(/multiple files to the same path/);
      // The first one is kept, not replaced by the refused second.
      expect(await readFile(`${dir}/m/same.txt`, 'utf8')).toBe('1');
    });
  });

  describe('signed URLs (token mode)', () => {
    const TOKEN = 'a-token-of-sufficient-length-0123';

    it('open /files to a URL signed as e2b signs it, for its operation, until it expires', async () => {
      await start({ ACCESS_TOKEN: TOKEN });
      const file = path.join(dir, 'signed.txt');
      await writeFile(file, 'signed content');
      const url = async (operation: 'read' | 'write', user: string | undefined, expirationInSeconds?: number) => {
        const { signature, expiration } = await getSignature({ path: file, operation, user, expirationInSeconds, envdAccessToken: TOKEN });
        const query = new URLSearchParams({ path: file, signature });
        if (user !== undefined) query.set('username', user);
        if (expiration !== null) query.set('signature_expiration', String(expiration));
        return `${baseUrl}/files?${query.toString()}`;
      };
      expect(await (await fetch(await url('read', undefined))).text()).toBe('signed content');
      expect(await (await fetch(await url('read', 'user', 60))).text()).toBe('signed content');
      const expired = await fetch(await url('read', undefined, -10));
      expect(expired.status).toBe(401);
      expect((await fetch(await url('write', undefined))).status).toBe(401);
      expect((await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}&signature=v1_forged`)).status).toBe(401);
      expect((await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`)).status).toBe(401);
      const form = new FormData();
      form.append('file', new Blob(['uploaded with a signature']), 'ignored');
      const uploaded = await fetch(await url('write', undefined), { method: 'POST', body: form });
      expect(uploaded.status).toBe(200);
      expect(await readFile(file, 'utf8')).toBe('uploaded with a signature');
      // The signature covers the path: another path with the same signature is refused.
      const moved = (await url('read', undefined)).replace(encodeURIComponent(file), encodeURIComponent(`${dir}/other`));
      expect((await fetch(moved)).status).toBe(401);
    });
  });

  it('refuses signed URLs in claim mode, where the token is kept as a digest only', async () => {
    await start({ AUTH_MODE: 'claim' });
    const claimed = await main.inject({ method: 'POST', url: '/claim' });
    const token = claimed.json<{ token: string }>().token;
    const file = path.join(dir, 'claimed.txt');
    await writeFile(file, 'x');
    const { signature } = await getSignature({ path: file, operation: 'read', user: undefined, envdAccessToken: token });
    const refused = await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}&signature=${encodeURIComponent(signature)}`);
    expect(refused.status).toBe(401);
    expect(await refused.text()).toContain('AUTH_MODE=token');
    expect(await (await fetch(`${baseUrl}/files?path=${encodeURIComponent(file)}`, { headers: { 'x-access-token': token } })).text()).toBe(
      'x',
    );
  });

  describe('watches', () => {
    it('streams the start event first, keepalives while quiet, events, and ends when the server closes', async () => {
      await start();
      const controller = new AbortController();
      const stream = fs.watchDir(
        { path: dir, recursive: false },
        { headers: { 'keepalive-ping-interval': '1' }, signal: controller.signal },
      );
      const seen: string[] = [];
      const reading = (async () => {
        try {
          for await (const response of stream) {
            const event = response.event;
            seen.push(event.case === 'filesystem' ? `${event.value.name}` : String(event.case));
            if (event.case === 'start') setTimeout(() => watches[0]!.push({ type: 'create', name: 'new.txt' }), 10);
          }
          return 'ended';
        } catch (error) {
          return (error as { code?: Code }).code;
        }
      })();
      await expect.poll(() => seen, { timeout: 3_000 }).toContain('keepalive');
      expect(seen.slice(0, 2)).toEqual(['start', 'new.txt']);
      const closedAt = Date.now();
      await envd.close();
      expect(await reading).toBe(Code.Unavailable);
      expect(Date.now() - closedAt).toBeLessThan(2_000);
      expect(watches[0]!.closed).toBe(true);
    });

    it('bounds the watches, streamed and polled together', async () => {
      await start({}, { maxWatches: 2 });
      await fs.createWatcher({ path: dir });
      const controller = new AbortController();
      const stream = fs.watchDir({ path: dir }, { signal: controller.signal })[Symbol.asyncIterator]();
      await stream.next();
      await expect(fs.createWatcher({ path: dir })).rejects.toMatchObject({ code: Code.ResourceExhausted });
      controller.abort();
      await expect
        .poll(
          async () =>
            await fs.createWatcher({ path: dir }).then(
              () => 'created',
              () => 'refused',
            ),
          { timeout: 2_000 },
        )
        .toBe('created');
    });

    it('ends a polled watcher that holds too many events, and tells the next poll', async () => {
      await start({}, { maxBufferedEvents: 3 });
      const { watcherId } = await fs.createWatcher({ path: dir });
      for (let i = 0; i < 5; i++) watches[0]!.push({ type: 'create', name: `f${i}` });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await fs.getWatcherEvents({ watcherId })).events.map((event) => event.name)).toEqual(['f0', 'f1', 'f2']);
      await expect(fs.getWatcherEvents({ watcherId })).rejects.toMatchObject({ code: Code.ResourceExhausted });
      await expect(fs.getWatcherEvents({ watcherId })).rejects.toMatchObject({ code: Code.NotFound });
      expect(watches[0]!.closed).toBe(true);
    });

    it('removes a watcher nobody polls', async () => {
      await start({}, { idleMs: 200 });
      const { watcherId } = await fs.createWatcher({ path: dir });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await expect(fs.getWatcherEvents({ watcherId })).rejects.toMatchObject({ code: Code.NotFound });
      expect(watches[0]!.closed).toBe(true);
    });

    it('maps the host errors to envd codes', async () => {
      await start();
      await expect(fs.stat({ path: `${dir}/missing` })).rejects.toMatchObject({ code: Code.NotFound });
      await expect(fs.makeDir({ path: dir })).rejects.toMatchObject({ code: Code.AlreadyExists });
      await expect(fs.listDir({ path: '' })).rejects.toMatchObject({ code: Code.InvalidArgument });
      await expect(fs.createWatcher({ path: `${dir}/missing` })).rejects.toMatchObject({ code: Code.NotFound });
    });
  });
});
