import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, baseUrl } from '../helpers/api.js';
import {
  del,
  dir,
  files,
  get,
  jsonOf,
  list,
  type Listing,
  put,
  python,
  type RawResponse,
  sha256,
  target,
  useFilesContext,
} from '../helpers/files.js';

/** The file API: big, broken and concurrent uploads, and MAX_UPLOAD_BYTES. */
useFilesContext();

describe('files: big and broken uploads', () => {
  it('keeps the old content and no temporary file when an upload is cut off', async () => {
    await put(`${dir}/abort/target.bin`, 'old content');
    await new Promise<void>((resolve, reject) => {
      const request = http.request({
        host: target.hostname,
        port: target.port,
        method: 'PUT',
        path: files(`${dir}/abort/target.bin`),
        headers: authHeaders({ 'content-length': String(64 * 2 ** 20) }),
      });
      request.on('error', () => resolve());
      request.on('response', () => reject(new Error('the server answered an upload that never finished')));
      request.write(Buffer.alloc(4 * 2 ** 20, 120), () => {
        // Give the server time to start writing the temporary file, then drop the connection.
        setTimeout(() => {
          request.destroy();
          resolve();
        }, 300);
      });
    });

    const deadline = Date.now() + 10_000;
    let names: string[] = [];
    for (;;) {
      // Straight from the filesystem: the API's own listing hides unfinished uploads anyway.
      names = JSON.parse(await python(`import os, json\nprint(json.dumps(sorted(os.listdir("${dir}/abort"))))`)) as string[];
      if (names.length === 1 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(names).toEqual(['target.bin']);
    expect((await get(`${dir}/abort/target.bin`)).body.toString()).toBe('old content');
  });

  it('refuses a declared Content-Length over MAX_UPLOAD_BYTES before reading the body', async () => {
    const response = await new Promise<RawResponse>((resolve, reject) => {
      const request = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: 'PUT',
          path: files(`${dir}/too-big.bin`),
          // 1 PiB: no default limit reaches that far.
          headers: authHeaders({ 'content-length': String(2 ** 50) }),
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => resolve({ status: answer.statusCode!, headers: answer.headers, body: Buffer.concat(chunks) }));
        },
      );
      request.on('error', reject);
      // Headers only: the answer must come without a byte of body.
      request.flushHeaders();
    });
    expect(response.status).toBe(413);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_UPLOAD_TOO_LARGE' });
    expect(response.headers.connection).toBe('close');
    expect((await get(`${dir}/too-big.bin`)).status).toBe(404);
  });

  it('never interleaves two uploads to one path', async () => {
    const a = Buffer.alloc(8 * 2 ** 20, 97);
    const b = Buffer.alloc(8 * 2 ** 20, 98);
    const [first, second] = await Promise.all([put(`${dir}/race/same.bin`, a), put(`${dir}/race/same.bin`, b)]);
    expect([first.status, second.status].sort()).toEqual([200, 201]);
    const body = (await get(`${dir}/race/same.bin`)).body;
    expect([sha256(a), sha256(b)]).toContain(sha256(body));
  });

  it('streams 256 MiB up and back down intact', { timeout: 300_000 }, async () => {
    const size = 256 * 2 ** 20;
    const chunk = 2 ** 20;
    const sent = createHash('sha256');
    const body = Readable.from(
      (function* () {
        for (let offset = 0; offset < size; offset += chunk) {
          const bytes = randomBytes(chunk);
          sent.update(bytes);
          yield bytes;
        }
      })(),
    );
    const status = await new Promise<number>((resolve, reject) => {
      const request = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: 'PUT',
          path: files(`${dir}/big/stream.bin`),
          headers: authHeaders({ 'content-length': String(size) }),
        },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode!));
        },
      );
      pipeline(body, request).catch(reject);
    });
    expect(status).toBe(201);

    const listing = jsonOf<Listing>(await list(`${dir}/big`));
    expect(listing.entries).toEqual([expect.objectContaining({ name: 'stream.bin', size })]);

    const response = await fetch(`${baseUrl}${files(`${dir}/big/stream.bin`)}`, { headers: authHeaders() });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(size));
    const received = createHash('sha256');
    let length = 0;
    for await (const part of response.body as unknown as AsyncIterable<Uint8Array>) {
      received.update(part);
      length += part.length;
    }
    expect(length).toBe(size);
    expect(received.digest('hex')).toBe(sent.digest('hex'));
    expect((await del(`${dir}/big`)).status).toBe(204);
  });
});

describe('files: uploads over a small MAX_UPLOAD_BYTES', () => {
  // A server of its own, built in this process with a 1 MiB limit: the shared one allows 4 GiB.
  let server: { close(): Promise<void> };
  let url: URL;
  let workspace: string;

  beforeAll(async () => {
    const { buildApp } = await import('../../server/app.js');
    const { loadConfig } = await import('../../server/config.js');
    workspace = await mkdtemp(path.join(tmpdir(), 'files-limit-'));
    const app = await buildApp(loadConfig({ WORKSPACE_DIR: workspace, MAX_UPLOAD_BYTES: '1MiB', JUPYTER_URL: 'http://127.0.0.1:9' }));
    url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    server = app;
  });

  afterAll(async () => {
    await server.close();
    await rm(workspace, { recursive: true, force: true });
  });

  function upload(name: string, size: number, chunked: boolean): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: url.hostname,
          port: url.port,
          method: 'PUT',
          path: `/files/${name}`,
          headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(size) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (part: Buffer) => chunks.push(part));
          response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
        },
      );
      // The server may close early on a refusal; its answer is what counts.
      request.on('error', (error) =>
        (error as NodeJS.ErrnoException).code === 'EPIPE' || (error as NodeJS.ErrnoException).code === 'ECONNRESET'
          ? undefined
          : reject(error),
      );
      void pipeline(
        Readable.from(
          (function* () {
            for (let sent = 0; sent < size; sent += 64 * 1024) yield Buffer.alloc(Math.min(64 * 1024, size - sent), 7);
          })(),
        ),
        request,
      ).catch(() => undefined);
    });
  }

  it('accepts an upload of exactly the limit', async () => {
    expect((await upload('exact.bin', 2 ** 20, false)).status).toBe(201);
    expect((await upload('exact-chunked.bin', 2 ** 20, true)).status).toBe(201);
  });

  it('refuses a chunked upload that crosses the limit with 413, keeping the old content', async () => {
    await upload('kept.bin', 10, false);
    const response = await upload('kept.bin', 3 * 2 ** 20, true);
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body.toString())).toMatchObject({
      code: 'ERR_UPLOAD_TOO_LARGE',
      message: expect.stringMatching(/1048576 bytes/),
    });
    const listing = await fetch(new URL('/files?path=.', url)).then((answer) => answer.json() as Promise<Listing>);
    expect(listing.entries.find((entry) => entry.name === 'kept.bin')?.size).toBe(10);
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(workspace)).filter((name) => name.startsWith('.upload-'))).toEqual([]);
  });

  it('refuses a declared Content-Length over the limit', async () => {
    const response = await upload('declared.bin', 2 ** 20 + 1, false);
    expect(response.status).toBe(413);
    expect((await fetch(new URL('/files/declared.bin', url))).status).toBe(404);
  });
});
