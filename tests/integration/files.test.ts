import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, baseUrl, createContext, deleteContext, errorsOf, execute, stdoutOf } from '../helpers/api.js';

/** Everything this file creates lives under one directory of the shared workspace. */
const dir = `files-test-${randomBytes(4).toString('hex')}`;
const target = new URL(baseUrl);

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A request whose path goes out byte for byte: fetch and URL would resolve `..` and `%2e%2e`
 * before sending, and hostile paths are exactly what must reach the server.
 */
function send(method: string, rawPath: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: target.hostname, port: target.port, method, path: rawPath, headers: authHeaders(headers) },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const files = (p: string) => `/files/${p.split('/').map(encodeURIComponent).join('/')}`;
const put = (p: string, body: Buffer | string, headers: Record<string, string> = {}) => send('PUT', files(p), body, headers);
const get = (p: string, headers: Record<string, string> = {}) => send('GET', files(p), undefined, headers);
const del = (p: string) => send('DELETE', files(p));
const list = (p: string) => send('GET', `/files?path=${encodeURIComponent(p)}`);
const jsonOf = <T = Record<string, unknown>>(response: RawResponse) => JSON.parse(response.body.toString('utf8')) as T;

interface Listing {
  path: string;
  entries: Array<{ name: string; type: 'file' | 'dir'; size: number | null; modified: number }>;
}

let contextId: string;

/** Runs Python in this file's own context, whose cwd is the workspace root; returns stdout. */
async function python(code: string): Promise<string> {
  const events = await execute({ context_id: contextId, code });
  const errors = errorsOf(events);
  if (errors.length > 0) throw new Error(`Python failed: ${JSON.stringify(errors)}`);
  return stdoutOf(events);
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  contextId = (await createContext()).id;
});

afterAll(async () => {
  await del(dir);
  await deleteContext(contextId);
});

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
    expect(jsonOf(file)).toMatchObject({ statusCode: 400, code: 'ERR_NOT_A_DIRECTORY', error: 'Bad Request', message: expect.stringMatching(/Not a directory/) });
    const missing = await list(`${dir}/errs/nope`);
    expect(missing.status).toBe(404);
    expect(jsonOf(missing)).toMatchObject({ statusCode: 404, code: 'ERR_FILE_NOT_FOUND', message: expect.stringMatching(/No such file or directory/) });
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
    await python(`import os\nos.makedirs("${dir}/shared", exist_ok=True)\nopen("${dir}/shared/from-kernel.txt", "w").write("written by python")`);
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

describe('files: paths that try to leave the workspace', () => {
  const outside = [
    'GET /files/../../../../etc/passwd',
    'GET /files/..%2f..%2f..%2f..%2fetc%2fpasswd',
    'GET /files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    'GET /files/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd',
    'GET /files//etc/passwd',
    'GET /files/%2Fetc%2Fpasswd',
    'GET /files?path=..',
    'GET /files?path=../..',
    'GET /files?path=%2e%2e',
    'GET /files?path=/etc',
    'GET /files?path=%2Fetc',
    'PUT /files/../escaped.txt',
    'PUT /files/%2e%2e%2fescaped.txt',
    'PUT /files//tmp/escaped.txt',
    'DELETE /files/..',
    'DELETE /files/%2e%2e',
    'DELETE /files/..%2f..%2ftmp',
  ];
  it.each(outside)('%s is 400 outside the workspace', async (line) => {
    const [method, rawPath] = line.split(' ') as [string, string];
    const response = await send(method, rawPath, method === 'PUT' ? 'pwned' : undefined);
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ statusCode: 400, code: 'ERR_PATH_OUTSIDE_WORKSPACE', message: expect.stringMatching(/outside the workspace/) });
    expect(response.body.toString()).not.toMatch(/root:.*:0:0:/);
  });

  const malformed = [
    'GET /files/..%5c..%5c..%5cetc%5cpasswd',
    'GET /files/a%5cb',
    'GET /files/%252e%252e/%252e%252e/etc/passwd',
    'GET /files/..%252f..%252fetc%252fpasswd',
    'GET /files/file.txt%00.png',
    'GET /files?path=a%00b',
    'GET /files?path=..%5c..',
    'PUT /files/a%5c..%5cescaped.txt',
    'PUT /files/x%00y',
    'DELETE /files/%252e%252e',
  ];
  it.each(malformed)('%s is 400 invalid', async (line) => {
    const [method, rawPath] = line.split(' ') as [string, string];
    const response = await send(method, rawPath, method === 'PUT' ? 'pwned' : undefined);
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_INVALID_PATH' });
  });

  it('answers over-long paths with a 4xx, never a 500', async () => {
    const longSegment = 'a'.repeat(300);
    const deep = 'abcdefgh/'.repeat(600);
    for (const rawPath of [`/files/${longSegment}`, `/files/${deep}x`, `/files?path=${deep}`, `/files/${'x'.repeat(15_000)}`]) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const response = await send(method, rawPath, method === 'PUT' ? 'x' : undefined);
        expect(response.status, `${method} ${rawPath.slice(0, 40)}`).toBeGreaterThanOrEqual(400);
        expect(response.status, `${method} ${rawPath.slice(0, 40)}`).toBeLessThan(500);
      }
    }
    const response = await get(`${'abcdefgh/'.repeat(600)}x`);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_INVALID_PATH', message: expect.stringMatching(/longer than/) });
  });

  it('wrote nothing outside the workspace', async () => {
    const out = await python(
      'import os\nparent = os.path.dirname(os.getcwd())\n' +
        'print(sorted(p for p in [os.path.join(parent, "escaped.txt"), "/tmp/escaped.txt", "/escaped.txt"] if os.path.exists(p)))',
    );
    expect(out.trim()).toBe('[]');
  });
});

describe('files: symlinks', () => {
  /** The sibling shares the root's name as a prefix (/home/user and /home/user2) when it can be created. */
  let sibling: string;

  beforeAll(async () => {
    sibling = (
      await python(
        [
          'import os, tempfile',
          'root = os.getcwd()',
          'sibling = root.rstrip("/") + "2"',
          'try:',
          '    os.makedirs(sibling, exist_ok=True)',
          'except OSError:',
          '    sibling = tempfile.mkdtemp()',
          // Readable by the API when it runs under a uid of its own (the image): the refusal must
          // come from containment, not from a permission the attacker could have granted.
          'os.chmod(sibling, 0o755)',
          'open(os.path.join(sibling, "secret.txt"), "w").write("SIBLING-SECRET")',
          `d = "${dir}/links"`,
          'os.makedirs(d + "/inside", exist_ok=True)',
          'open(d + "/inside/real.txt", "w").write("real content")',
          'os.symlink(sibling, d + "/to-sibling")',
          'os.symlink("/etc/passwd", d + "/passwd")',
          'os.symlink("inside", d + "/to-inside")',
          'os.symlink("inside/real.txt", d + "/alias.txt")',
          'os.symlink(os.path.join(sibling, "created-through-link.txt"), d + "/dangling-out")',
          'os.symlink("../" * 10 + "etc", d + "/relative-out")',
          'print(sibling)',
        ].join('\n'),
      )
    ).trim();
  });

  afterAll(async () => {
    await python(`import shutil\nshutil.rmtree(${JSON.stringify(sibling)}, ignore_errors=True)`);
  });

  const escaping = ['to-sibling', 'to-sibling/secret.txt', 'passwd', 'dangling-out', 'relative-out', 'relative-out/passwd'];

  it.each(escaping)('refuses to read or list %s', async (name) => {
    for (const response of [await get(`${dir}/links/${name}`), await list(`${dir}/links/${name}`)]) {
      expect(response.status).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
      expect(response.body.toString()).not.toMatch(/SIBLING-SECRET|root:.*:0:0:/);
    }
  });

  it.each(['to-sibling/new.txt', 'to-sibling/secret.txt', 'dangling-out', 'relative-out/new.txt'])('refuses to write through %s', async (name) => {
    const response = await put(`${dir}/links/${name}`, 'pwned');
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
  });

  it.each(['to-sibling/secret.txt', 'relative-out/passwd'])('refuses to delete %s', async (name) => {
    const response = await del(`${dir}/links/${name}`);
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
  });

  it('left the sibling and its secret as they were', async () => {
    const out = await python(`import os\nprint(sorted(os.listdir(${JSON.stringify(sibling)})), open(os.path.join(${JSON.stringify(sibling)}, "secret.txt")).read())`);
    expect(out.trim()).toBe("['secret.txt'] SIBLING-SECRET");
  });

  it('lists only the links it can serve, as what they point to', async () => {
    const listing = jsonOf<Listing>(await list(`${dir}/links`));
    expect(listing.entries.map((entry) => [entry.name, entry.type])).toEqual([
      ['inside', 'dir'],
      ['to-inside', 'dir'],
      ['alias.txt', 'file'],
    ]);
  });

  it('follows links that stay inside, and deletes the link, never its target', async () => {
    expect((await get(`${dir}/links/to-inside/real.txt`)).body.toString()).toBe('real content');
    expect((await get(`${dir}/links/alias.txt`)).body.toString()).toBe('real content');
    expect((await del(`${dir}/links/to-inside`)).status).toBe(204);
    expect((await del(`${dir}/links/alias.txt`)).status).toBe(204);
    expect((await get(`${dir}/links/inside/real.txt`)).body.toString()).toBe('real content');
    const out = await python(`import os\nprint(os.path.lexists("${dir}/links/to-inside"), os.path.lexists("${dir}/links/alias.txt"))`);
    expect(out.trim()).toBe('False False');
  });

  it('deletes links that lead out or loop: the links, never what they point to', async () => {
    await python(`import os\nos.symlink("loop-b", "${dir}/links/loop-a")\nos.symlink("loop-a", "${dir}/links/loop-b")`);
    for (const name of ['to-sibling', 'passwd', 'dangling-out', 'relative-out', 'loop-a', 'loop-b']) {
      expect((await del(`${dir}/links/${name}`)).status).toBe(204);
    }
    const out = await python(
      [
        'import os',
        `print(sorted(os.listdir("${dir}/links")), open(os.path.join(${JSON.stringify(sibling)}, "secret.txt")).read(), os.path.exists("/etc/passwd"))`,
      ].join('\n'),
    );
    expect(out.trim()).toBe("['inside'] SIBLING-SECRET True");
  });
});

describe('files: names, trailing slashes, pages', () => {
  it('refuses PUT to a path ending in "/" instead of creating a file named like the directory', async () => {
    for (const raw of [`/files/${dir}/newdir/`, `/files/${dir}/newdir/.`]) {
      const response = await send('PUT', raw, 'x');
      expect(response.status).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_INVALID_PATH', message: expect.stringMatching(/mkdir/) });
    }
    expect((await get(`${dir}/newdir`)).status).toBe(404);
  });

  it('refuses names with control characters, and lists neither those nor names that are not UTF-8', async () => {
    const response = await send('PUT', `/files/${dir}/names/tab%09name`, 'x');
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_INVALID_PATH', message: expect.stringMatching(/control characters/) });
    await python(
      [
        'import os',
        `d = b"${dir}/names"`,
        'os.makedirs(d, exist_ok=True)',
        'for name in [b"caf\\xe9", b"new\\nline", b"esc\\x1b[31m", "fin\u00e9.txt".encode()]: open(d + b"/" + name, "w").close()',
      ].join('\n'),
    );
    const listing = jsonOf<Listing & { omitted: number }>(await list(`${dir}/names`));
    expect(listing.entries.map((entry) => entry.name)).toEqual(['fin\u00e9.txt']);
    expect(listing.omitted).toBe(3);
    expect((await del(`${dir}/names`)).status).toBe(204);
  });

  it('pages a listing with limit and cursor', async () => {
    await python(`import os\nos.makedirs("${dir}/many")\nfor i in range(120): open(f"${dir}/many/{i:03}", "w").close()`);
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query = `path=${encodeURIComponent(`${dir}/many`)}&limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const response = await send('GET', `/files?${query}`);
      expect(response.status, response.body.toString()).toBe(200);
      const page = jsonOf<Listing & { next_cursor: string | null }>(response);
      names.push(...page.entries.map((entry) => entry.name));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names).toEqual(Array.from({ length: 120 }, (_, i) => String(i).padStart(3, '0')));
    for (const query of ['limit=0', 'limit=10001', 'limit=x', 'cursor=bogus']) {
      const response = await send('GET', `/files?path=${encodeURIComponent(`${dir}/many`)}&${query}`);
      expect(response.status).toBe(400);
    }
  });
});

describe('files: move, copy, mkdir', () => {
  const action = (p: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    send('POST', files(p), typeof body === 'string' ? body : JSON.stringify(body), headers);

  it('makes directories with their parents (201, then 200), 409 when a file is in the way', async () => {
    const made = await action(`${dir}/ops/made/deep/er`, { action: 'mkdir' });
    expect(made.status).toBe(201);
    expect(jsonOf(made)).toEqual({ path: `${dir}/ops/made/deep/er` });
    expect((await action(`${dir}/ops/made/deep/er`, { action: 'mkdir' })).status).toBe(200);
    await put(`${dir}/ops/file`, 'x');
    for (const p of [`${dir}/ops/file`, `${dir}/ops/file/sub`]) {
      const response = await action(p, { action: 'mkdir' });
      expect(response.status).toBe(409);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_ALREADY_EXISTS' });
    }
    const out = await python(`import os\nprint(os.path.isdir("${dir}/ops/made/deep/er"))`);
    expect(out.trim()).toBe('True');
  });

  it('moves and copies trees; 409 on an existing destination unless overwrite', async () => {
    const payload = randomBytes(100_000);
    await put(`${dir}/ops/src/a/bin.dat`, payload);
    await put(`${dir}/ops/src/b.txt`, 'b');
    // curl -d sends form-urlencoded: the body is read as JSON whatever the type says.
    const copied = await action(`${dir}/ops/src`, JSON.stringify({ action: 'copy', to: `${dir}/ops/copy` }), {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(copied.status).toBe(201);
    expect(sha256((await get(`${dir}/ops/copy/a/bin.dat`)).body)).toBe(sha256(payload));
    const conflict = await action(`${dir}/ops/src/b.txt`, { action: 'move', to: `${dir}/ops/copy/b.txt` });
    expect(conflict.status).toBe(409);
    expect(jsonOf(conflict)).toMatchObject({ code: 'ERR_ALREADY_EXISTS', message: expect.stringMatching(/overwrite/) });
    const replaced = await action(`${dir}/ops/src/b.txt`, { action: 'move', to: `${dir}/ops/copy/b.txt`, overwrite: true });
    expect(replaced.status).toBe(200);
    const moved = await action(`${dir}/ops/copy`, { action: 'move', to: `${dir}/ops/renamed` });
    expect(moved.status).toBe(201);
    expect(jsonOf(moved)).toEqual({ path: `${dir}/ops/renamed` });
    expect(jsonOf<Listing>(await list(`${dir}/ops/renamed`)).entries.map((entry) => entry.name)).toEqual(['a', 'b.txt']);
    expect(jsonOf<Listing>(await list(`${dir}/ops/src`)).entries.map((entry) => entry.name)).toEqual(['a']);
  });

  it('refuses the root, a directory into itself, and destinations outside', async () => {
    await action(`${dir}/ops/self`, { action: 'mkdir' });
    const cases: Array<[string, unknown, string]> = [
      ['.', { action: 'move', to: 'elsewhere' }, 'ERR_WORKSPACE_ROOT'],
      [`${dir}/ops/self`, { action: 'move', to: `${dir}/ops/self/inner` }, 'ERR_INVALID_PATH'],
      [`${dir}/ops/self`, { action: 'copy', to: `${dir}/ops/self/inner` }, 'ERR_INVALID_PATH'],
      [`${dir}/ops/self`, { action: 'copy', to: '../escaped' }, 'ERR_PATH_OUTSIDE_WORKSPACE'],
      [`${dir}/ops/self`, { action: 'move', to: '/tmp/escaped' }, 'ERR_PATH_OUTSIDE_WORKSPACE'],
    ];
    for (const [p, body, code] of cases) {
      const response = await action(p, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code });
    }
  });

  it('answers bodies that are not an action with 400 and a message that says why', async () => {
    const cases: Array<[unknown, RegExp]> = [
      ['{not json', /not valid JSON/],
      [{ action: 'explode' }, /action/],
      [{ action: 'move' }, /needs "to"/],
      [{ action: 'mkdir', to: 'x' }, /neither/],
      [{ action: 'copy', to: 'x', extra: 1 }, /additional/],
    ];
    for (const [body, message] of cases) {
      const response = await action(`${dir}/ops/src`, body);
      expect(response.status, String(body).slice(0, 40)).toBe(400);
      expect(jsonOf<{ message: string }>(response).message).toMatch(message);
    }
    const large = await action(`${dir}/ops/src`, 'x'.repeat(70_000));
    expect(large.status).toBe(413);
    expect(jsonOf(large)).toMatchObject({ code: 'ERR_BODY_TOO_LARGE' });
  });
});

/** Python that prints `{relative path: sha256 or "-> target" or "dir"}` for a tree, as the kernel sees it. */
const treeDigest = (tree: string) =>
  [
    'import hashlib, json, os',
    `top = ${JSON.stringify(tree)}`,
    'out = {}',
    'for here, dirs, names in os.walk(top):',
    '    for name in dirs + names:',
    '        full = os.path.join(here, name); rel = os.path.relpath(full, top)',
    '        if os.path.islink(full): out[rel] = "-> " + os.readlink(full)',
    '        elif os.path.isdir(full): out[rel] = "dir"',
    '        elif os.path.isfile(full): out[rel] = hashlib.sha256(open(full, "rb").read()).hexdigest()',
    'print(json.dumps(out, sort_keys=True))',
  ].join('\n');

/** The same digest for a local directory (what tar extracted). */
async function localDigest(top: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const { lstat, readdir, readFile, readlink } = await import('node:fs/promises');
  async function walk(relative: string): Promise<void> {
    for (const name of await readdir(path.join(top, relative))) {
      const rel = relative ? `${relative}/${name}` : name;
      const stats = await lstat(path.join(top, rel));
      if (stats.isSymbolicLink()) out[rel] = `-> ${await readlink(path.join(top, rel))}`;
      else if (stats.isDirectory()) {
        out[rel] = 'dir';
        await walk(rel);
      } else out[rel] = sha256(await readFile(path.join(top, rel)));
    }
  }
  await walk('');
  return out;
}

describe('files: directories as archives', () => {
  let scratch: string;
  let expected: Record<string, string>;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'files-archive-'));
    await python(
      [
        'import os',
        `t = "${dir}/tree"`,
        'os.makedirs(t + "/empty/nested-empty")',
        'os.makedirs(t + "/data/deep")',
        'open(t + "/data/blob.bin", "wb").write(os.urandom(5 * 1024 * 1024 + 3))',
        'open(t + "/data/deep/all-bytes.bin", "wb").write(bytes(range(256)) * 1000)',
        'open(t + "/data/empty.txt", "w").close()',
        'open(t + "/\u00e9t\u00e9 \u6587\u5b57 \u{1F680}.txt", "w").write("unicode")',
        'os.symlink("data/blob.bin", t + "/link-to-blob")',
        'os.symlink("data", t + "/link-to-dir")',
        'os.mkfifo(t + "/fifo")',
        'os.symlink("/etc", t + "/link-out")',
      ].join('\n'),
    );
    expected = JSON.parse(await python(treeDigest(`${dir}/tree`))) as Record<string, string>;
    delete expected['link-out'];
  });

  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  async function downloadAndExtract(rawPath: string, flags: string): Promise<Record<string, string>> {
    const response = await send('GET', rawPath);
    expect(response.status, response.body.toString().slice(0, 200)).toBe(200);
    const name = randomBytes(4).toString('hex');
    const file = path.join(scratch, `${name}.archive`);
    const into = path.join(scratch, name);
    const { mkdir, writeFile } = await import('node:fs/promises');
    await writeFile(file, response.body);
    await mkdir(into);
    execFileSync('tar', [flags, file, '-C', into]);
    return localDigest(into);
  }

  it('streams a directory as tar that GNU tar unpacks to the same tree (sha256 of every file, links, empty dirs)', async () => {
    const response = await send('HEAD', `${files(`${dir}/tree`)}?format=tar`);
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/x-tar');
    expect(response.headers['content-disposition']).toBe('attachment; filename="tree.tar"; filename*=UTF-8\'\'tree.tar');
    expect(await downloadAndExtract(`${files(`${dir}/tree`)}?format=tar`, '-xf')).toEqual(expected);
  });

  it('streams tar.gz, and the same through the listing route', async () => {
    const viaFile = await downloadAndExtract(`${files(`${dir}/tree`)}?format=tar.gz`, '-xzf');
    expect(viaFile).toEqual(expected);
    const viaListing = await downloadAndExtract(`/files?path=${encodeURIComponent(`${dir}/tree`)}&format=tar.gz`, '-xzf');
    expect(viaListing).toEqual(expected);
  });

  it('round-trips: the downloaded tar.gz uploaded with ?extract=tar.gz unpacks to the same tree', async () => {
    const archive = await send('GET', `${files(`${dir}/tree`)}?format=tar.gz`);
    expect(archive.status).toBe(200);
    const upload = await send('PUT', `${files(`${dir}/round-trip/copy`)}?extract=tar.gz`, archive.body);
    expect(upload.status, upload.body.toString()).toBe(200);
    const fileCount = Object.values(expected).filter((value) => value !== 'dir' && !value.startsWith('->')).length;
    expect(jsonOf(upload)).toMatchObject({ path: `${dir}/round-trip/copy`, entries: Object.keys(expected).length });
    expect(fileCount).toBeGreaterThan(3);
    const roundTripped = JSON.parse(await python(treeDigest(`${dir}/round-trip/copy`))) as Record<string, string>;
    expect(roundTripped).toEqual(expected);
  });

  it('unpacks what GNU tar made, and refuses a hostile one whole, with nothing written', async () => {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const src = path.join(scratch, 'gnu-src');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'sub', 'a.txt'), 'from GNU tar');
    const good = path.join(scratch, 'good.tar');
    execFileSync('tar', ['-cf', good, '-C', src, '.']);
    const { readFile } = await import('node:fs/promises');
    const accepted = await send('PUT', `${files(`${dir}/gnu`)}?extract=tar`, await readFile(good));
    expect(accepted.status).toBe(200);
    expect((await get(`${dir}/gnu/sub/a.txt`)).body.toString()).toBe('from GNU tar');

    const evil = path.join(scratch, 'evil.tar');
    await writeFile(path.join(src, 'sub', 'b.txt'), 'second');
    execFileSync('tar', ['-P', '-cf', evil, '-C', src, 'sub/b.txt', '--transform', 's,^sub/a.txt$,../../escaped.txt,', 'sub/a.txt']);
    const refused = await send('PUT', `${files(`${dir}/gnu`)}?extract=tar`, await readFile(evil));
    expect(refused.status).toBe(400);
    expect(jsonOf(refused)).toMatchObject({ code: 'ERR_UNSAFE_ARCHIVE_ENTRY', message: expect.stringContaining('../../escaped.txt') });
    expect((await get(`${dir}/gnu/sub/b.txt`)).status).toBe(404);
    const leftovers = await python(`import os\nprint(sorted(n for n in os.listdir(".") if n.startswith(".extract-")), os.path.exists("../escaped.txt"))`);
    expect(leftovers.trim()).toBe('[] False');

    // Cut right after the header of its file: the upload once hung here until the idle timeout
    // dropped the connection (120 s, no answer), leaving .extract-* behind.
    const whole = await readFile(good);
    const started = performance.now();
    const cut = await send('PUT', `${files(`${dir}/cut`)}?extract=tar`, whole.subarray(0, 3 * 512));
    console.log(`a plain tar cut after ${3 * 512} bytes: ${cut.status} after ${((performance.now() - started) / 1000).toFixed(3)} s`);
    expect(cut.status).toBe(400);
    expect(jsonOf(cut)).toMatchObject({ code: 'ERR_INVALID_ARCHIVE' });
    const afterCut = await python(`import os\nprint(sorted(n for n in os.listdir(".") if n.startswith(".extract-")))`);
    expect(afterCut.trim()).toBe('[]');
  });

  it('answers a file, a missing directory and an unknown format with a 4xx', async () => {
    expect((await send('PUT', `${files(`${dir}/tree`)}?extract=zip`, 'x')).status).toBe(400);
    expect((await send('PUT', `${files(`${dir}/tree/data/empty.txt`)}?extract=tar`, Buffer.alloc(1024))).status).toBe(400);
    expect((await send('GET', `${files(`${dir}/tree/data/empty.txt`)}?format=tar`)).status).toBe(400);
    expect((await send('GET', `${files(`${dir}/no-such-dir`)}?format=tar`)).status).toBe(404);
    expect((await send('GET', `${files(`${dir}/tree`)}?format=zip`)).status).toBe(400);
    const directory = await get(`${dir}/tree`);
    expect(directory.status).toBe(400);
    expect(jsonOf<{ message: string }>(directory).message).toMatch(/format=tar/);
  });
});

describe('files: deleting while code swaps a directory for a link to outside', () => {
  it('never deletes anything outside the workspace', { timeout: 180_000 }, async () => {
    // The kernel exchanges a directory with a symlink to an outside directory as fast as it can
    // (renameat2 RENAME_EXCHANGE in a thread) while DELETE runs. Several rounds: a delete that
    // walks path strings escapes in about half of them (in the others it happens to unlink the
    // link first, which ends the race).
    await python(
      [
        'import ctypes, os, shutil, tempfile, threading',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'outside = tempfile.mkdtemp()',
        'race = {}',
        'def start_race(tree, files=500):',
        '    for i in range(files): open(os.path.join(outside, f"f{i}"), "w").close()',
        '    os.makedirs(tree + "/d")',
        '    for i in range(files): open(os.path.join(tree, "d", f"f{i}"), "w").close()',
        '    os.symlink(outside, tree + "/l")',
        '    race["stop"] = stop = threading.Event()',
        '    a, b = os.path.abspath(tree + "/d").encode(), os.path.abspath(tree + "/l").encode()',
        '    def swap():',
        '        while not stop.is_set(): libc.renameat2(-100, a, -100, b, 2)',
        '    race["thread"] = threading.Thread(target=swap, daemon=True)',
        '    race["thread"].start()',
        'def stop_race():',
        '    race["stop"].set()',
        '    race["thread"].join()',
        '    return len(os.listdir(outside))',
      ].join('\n'),
    );
    try {
      for (let round = 0; round < 8; round++) {
        const tree = `${dir}/race-${round}`;
        await python(`start_race(${JSON.stringify(tree)})`);
        const statuses: number[] = [];
        for (let attempt = 0; attempt < 20; attempt++) {
          const response = await del(tree);
          statuses.push(response.status);
          if (response.status === 204) break;
        }
        expect((await python('print(stop_race())')).trim()).toBe('500');
        // A 409 (the path changed under the delete) is a fair answer under this race; a 500 is not.
        expect(statuses.every((status) => status === 204 || status === 409)).toBe(true);
      }
    } finally {
      await python('shutil.rmtree(outside)');
    }
  });
});

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
        { host: target.hostname, port: target.port, method: 'PUT', path: files(`${dir}/big/stream.bin`), headers: authHeaders({ 'content-length': String(size) }) },
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

describe('files: archives over small MAX_EXTRACT_ENTRIES and MAX_EXTRACT_BYTES', () => {
  // A server of its own, built in this process with small limits.
  let server: { close(): Promise<void> };
  let url: URL;
  let workspace: string;

  beforeAll(async () => {
    const { buildApp } = await import('../../server/app.js');
    const { loadConfig } = await import('../../server/config.js');
    workspace = await mkdtemp(path.join(tmpdir(), 'files-extract-limit-'));
    const app = await buildApp(
      loadConfig({ WORKSPACE_DIR: workspace, MAX_EXTRACT_ENTRIES: '100', MAX_EXTRACT_BYTES: '1MiB', JUPYTER_URL: 'http://127.0.0.1:9' }),
    );
    url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    server = app;
  });

  afterAll(async () => {
    await server.close();
    await rm(workspace, { recursive: true, force: true });
  });

  async function putArchive(target: string, body: Buffer, format: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(new URL(`/files/${target}?extract=${format}`, url), { method: 'PUT', body });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('answers 413 for too many entries and for a gzip bomb, with nothing written', async () => {
    const { mkdir, readdir, readFile, writeFile } = await import('node:fs/promises');
    const src = await mkdtemp(path.join(tmpdir(), 'files-extract-src-'));
    try {
      await mkdir(path.join(src, 'many'));
      for (let i = 0; i < 150; i++) await writeFile(path.join(src, 'many', `f${i}`), '');
      execFileSync('tar', ['-cf', path.join(src, 'many.tar'), '-C', path.join(src, 'many'), '.']);
      await mkdir(path.join(src, 'bomb'));
      execFileSync('truncate', ['-s', '64M', path.join(src, 'bomb', 'zeros')]);
      execFileSync('tar', ['-czf', path.join(src, 'bomb.tar.gz'), '-C', path.join(src, 'bomb'), '.']);

      const many = await putArchive('many', await readFile(path.join(src, 'many.tar')), 'tar');
      expect(many.status).toBe(413);
      expect(many.body).toMatchObject({ code: 'ERR_EXTRACT_TOO_LARGE', message: expect.stringMatching(/100 entries/) });
      const bomb = await putArchive('bomb', await readFile(path.join(src, 'bomb.tar.gz')), 'tar.gz');
      expect(bomb.status).toBe(413);
      expect(bomb.body).toMatchObject({ code: 'ERR_EXTRACT_TOO_LARGE', message: expect.stringMatching(/MAX_EXTRACT_BYTES/) });
      expect(await readdir(workspace)).toEqual([]);
    } finally {
      await rm(src, { recursive: true, force: true });
    }
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
      request.on('error', (error) => (error as NodeJS.ErrnoException).code === 'EPIPE' || (error as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(error));
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
    expect(JSON.parse(response.body.toString())).toMatchObject({ code: 'ERR_UPLOAD_TOO_LARGE', message: expect.stringMatching(/1048576 bytes/) });
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
