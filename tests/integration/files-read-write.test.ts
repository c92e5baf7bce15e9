import { beforeAll, describe, expect, it } from 'vitest';
import { del, dir, files, get, jsonOf, list, type Listing, put, python, send, useFilesContext } from '../helpers/files.js';

/** The file API: upload, download, list and delete, and downloads that resume and revalidate. */
useFilesContext();

describe('files: upload, download, list, delete', () => {
  it('creates a file with its parents (201), overwrites it (200), and serves it back', async () => {
    const created = await put(`${dir}/crud/a/b/hello.txt`, 'hello world');
    expect(created.status).toBe(201);
    expect(jsonOf(created)).toMatchObject({ path: `${dir}/crud/a/b/hello.txt`, size: 11 });
    expect(created.headers.etag).toMatch(/^"/);

    const overwritten = await put(`${dir}/crud/a/b/hello.txt`, 'bye');
    expect(overwritten.status).toBe(200);
    expect(overwritten.headers.etag).not.toBe(created.headers.etag);

    const response = await get(`${dir}/crud/a/b/hello.txt`);
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('bye');
    expect(response.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(response.headers['content-length']).toBe('3');
    expect(response.headers.etag).toBe(overwritten.headers.etag);
    expect(new Date(response.headers['last-modified']!).getTime()).toBeGreaterThan(Date.now() - 120_000);
  });

  it('stores bodies verbatim whatever their Content-Type, JSON and forms included', async () => {
    const bodies: Array<[string, string | undefined, string]> = [
      ['broken.json', 'application/json', '{"not": valid json'],
      ['form.txt', 'application/x-www-form-urlencoded', 'a=1&b=2'],
      ['plain.txt', 'text/plain', 'just text\n'],
      ['multi.bin', 'multipart/form-data; boundary=x', '--x\r\nnot really\r\n--x--'],
      ['none.bin', undefined, 'no content type at all'],
    ];
    for (const [name, type, body] of bodies) {
      const response = await put(`${dir}/types/${name}`, body, type ? { 'content-type': type } : {});
      expect(response.status, name).toBe(201);
      expect((await get(`${dir}/types/${name}`)).body.toString(), name).toBe(body);
    }
  });

  it('round-trips every byte value and an empty file', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 * 4 }, (_, i) => i % 256));
    expect((await put(`${dir}/bin/all.bin`, bytes)).status).toBe(201);
    const back = await get(`${dir}/bin/all.bin`);
    expect(back.headers['content-type']).toBe('application/octet-stream');
    expect(back.body.equals(bytes)).toBe(true);

    expect((await put(`${dir}/bin/empty`, Buffer.alloc(0))).status).toBe(201);
    const empty = await get(`${dir}/bin/empty`);
    expect(empty.status).toBe(200);
    expect(empty.headers['content-length']).toBe('0');
    expect(empty.body.length).toBe(0);
  });

  it('derives Content-Type from the extension', async () => {
    const cases: Array<[string, string]> = [
      ['data.json', 'application/json; charset=utf-8'],
      ['page.html', 'text/html; charset=utf-8'],
      ['chart.png', 'image/png'],
      ['table.csv', 'text/csv; charset=utf-8'],
      ['molecule.xyz', 'chemical/x-xyz'],
      ['unknown.zzqq', 'application/octet-stream'],
      ['.bashrc', 'application/octet-stream'],
    ];
    for (const [name, type] of cases) {
      await put(`${dir}/mime/${name}`, 'x');
      const response = await get(`${dir}/mime/${name}`);
      expect(response.headers['content-type'], name).toBe(type);
      expect(response.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('lists directories first, then files, by name; sizes null for directories; float mtimes', async () => {
    await put(`${dir}/listing/zeta.txt`, '12345');
    await put(`${dir}/listing/Alpha.txt`, '1');
    await put(`${dir}/listing/b-dir/x`, '');
    await put(`${dir}/listing/a-dir/x`, '');
    const response = await list(`${dir}/listing/`);
    expect(response.status).toBe(200);
    const listing = jsonOf<Listing>(response);
    expect(listing.path).toBe(`${dir}/listing`);
    expect(listing.entries.map((entry) => [entry.name, entry.type, entry.size])).toEqual([
      ['a-dir', 'dir', null],
      ['b-dir', 'dir', null],
      ['Alpha.txt', 'file', 1],
      ['zeta.txt', 'file', 5],
    ]);
    for (const entry of listing.entries) {
      expect(typeof entry.modified).toBe('number');
      expect(Math.abs(entry.modified - Date.now() / 1000)).toBeLessThan(600);
    }
  });

  it('lists the workspace root by default', async () => {
    const response = await send('GET', '/files');
    expect(response.status).toBe(200);
    const listing = jsonOf<Listing>(response);
    expect(listing.path).toBe('.');
    expect(listing.entries).toContainEqual(expect.objectContaining({ name: dir, type: 'dir', size: null }));
  });

  it('answers listing a file with 400 and a missing path with 404, in JSON that names the problem', async () => {
    await put(`${dir}/errs/file.txt`, 'x');
    const file = await list(`${dir}/errs/file.txt`);
    expect(file.status).toBe(400);
    expect(jsonOf(file)).toMatchObject({
      statusCode: 400,
      code: 'ERR_NOT_A_DIRECTORY',
      error: 'Bad Request',
      message: expect.stringMatching(/Not a directory/),
    });
    const missing = await list(`${dir}/errs/nope`);
    expect(missing.status).toBe(404);
    expect(jsonOf(missing)).toMatchObject({
      statusCode: 404,
      code: 'ERR_FILE_NOT_FOUND',
      message: expect.stringMatching(/No such file or directory/),
    });
  });

  it('answers downloading a directory with 400 and a missing file with 404', async () => {
    await put(`${dir}/errs2/sub/file.txt`, 'x');
    const directory = await get(`${dir}/errs2/sub`);
    expect(directory.status).toBe(400);
    expect(jsonOf(directory)).toMatchObject({ code: 'ERR_IS_A_DIRECTORY', message: expect.stringMatching(/Is a directory/) });
    const missing = await get(`${dir}/errs2/missing.txt`);
    expect(missing.status).toBe(404);
    expect(jsonOf(missing)).toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    const underFile = await put(`${dir}/errs2/sub/file.txt/child`, 'x');
    expect(underFile.status).toBe(400);
    expect(jsonOf(underFile)).toMatchObject({ code: 'ERR_NOT_A_DIRECTORY' });
    const onDirectory = await put(`${dir}/errs2/sub`, 'x');
    expect(onDirectory.status).toBe(400);
    expect(jsonOf(onDirectory)).toMatchObject({ code: 'ERR_IS_A_DIRECTORY' });
  });

  it('deletes files (204, then 404) and directories recursively', async () => {
    await put(`${dir}/del/tree/a/b/c.txt`, 'x');
    await put(`${dir}/del/one.txt`, 'x');
    expect((await del(`${dir}/del/one.txt`)).status).toBe(204);
    expect((await del(`${dir}/del/one.txt`)).status).toBe(404);
    expect((await del(`${dir}/del/tree`)).status).toBe(204);
    expect((await list(`${dir}/del/tree`)).status).toBe(404);
    expect(jsonOf<Listing>(await list(`${dir}/del`)).entries).toEqual([]);
  });

  it('never deletes the workspace root', async () => {
    for (const rawPath of ['/files/', '/files/.', '/files/./', '/files/%2e']) {
      const response = await send('DELETE', rawPath);
      expect(response.status, rawPath).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_WORKSPACE_ROOT', message: expect.stringMatching(/root cannot be deleted/) });
    }
    expect(jsonOf<Listing>(await list('.')).entries).toContainEqual(expect.objectContaining({ name: dir }));
  });

  it('shares one root with the kernel, both ways', async () => {
    await python(
      `import os\nos.makedirs("${dir}/shared", exist_ok=True)\nopen("${dir}/shared/from-kernel.txt", "w").write("written by python")`,
    );
    expect((await get(`${dir}/shared/from-kernel.txt`)).body.toString()).toBe('written by python');
    expect(jsonOf<Listing>(await list(`${dir}/shared`)).entries.map((entry) => entry.name)).toEqual(['from-kernel.txt']);

    await put(`${dir}/shared/from-api.txt`, 'written over http');
    expect(await python(`print(open("${dir}/shared/from-api.txt").read(), end="")`)).toBe('written over http');
  });
});

describe('files: downloads that resume and revalidate', () => {
  const content = Buffer.from('0123456789abcdefghij');
  let etag: string;

  beforeAll(async () => {
    etag = (await put(`${dir}/range/digits.txt`, content)).headers.etag as string;
  });

  it('answers HEAD with the headers of a GET and no body', async () => {
    const head = await send('HEAD', files(`${dir}/range/digits.txt`));
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('20');
    expect(head.headers['accept-ranges']).toBe('bytes');
    expect(head.headers.etag).toBe(etag);
    expect(head.headers['last-modified']).toBeDefined();
    expect(head.body.length).toBe(0);
  });

  it('serves byte ranges with 206 and Content-Range', async () => {
    const cases: Array<[string, string, string]> = [
      ['bytes=0-3', '0123', 'bytes 0-3/20'],
      ['bytes=15-', 'fghij', 'bytes 15-19/20'],
      ['bytes=-2', 'ij', 'bytes 18-19/20'],
      ['bytes=18-1000', 'ij', 'bytes 18-19/20'],
    ];
    for (const [range, body, contentRange] of cases) {
      const response = await get(`${dir}/range/digits.txt`, { range });
      expect(response.status, range).toBe(206);
      expect(response.body.toString()).toBe(body);
      expect(response.headers['content-range']).toBe(contentRange);
      expect(response.headers['content-length']).toBe(String(body.length));
    }
  });

  it('answers 416 with the size for a range past the end', async () => {
    const response = await get(`${dir}/range/digits.txt`, { range: 'bytes=20-' });
    expect(response.status).toBe(416);
    expect(response.headers['content-range']).toBe('bytes */20');
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_RANGE_NOT_SATISFIABLE' });
  });

  it('answers 304 to If-None-Match with the current ETag, and 200 once the file changed', async () => {
    const notModified = await get(`${dir}/range/digits.txt`, { 'if-none-match': etag });
    expect(notModified.status).toBe(304);
    expect(notModified.body.length).toBe(0);

    await put(`${dir}/range/changing.txt`, 'one');
    const first = await get(`${dir}/range/changing.txt`);
    await put(`${dir}/range/changing.txt`, 'two');
    const changed = await get(`${dir}/range/changing.txt`, { 'if-none-match': first.headers.etag as string });
    expect(changed.status).toBe(200);
    expect(changed.body.toString()).toBe('two');
  });

  it('resumes under If-Range only while the file is unchanged', async () => {
    const same = await get(`${dir}/range/digits.txt`, { range: 'bytes=10-', 'if-range': etag });
    expect(same.status).toBe(206);
    expect(same.body.toString()).toBe('abcdefghij');
    const stale = await get(`${dir}/range/digits.txt`, { range: 'bytes=10-', 'if-range': '"stale"' });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(content)).toBe(true);
  });
});
