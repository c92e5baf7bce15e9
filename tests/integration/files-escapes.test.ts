import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { del, dir, get, jsonOf, list, type Listing, put, python, send, useFilesContext } from '../helpers/files.js';

/** The file API against paths and symlinks that try to leave the workspace. */
useFilesContext();

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
    expect(jsonOf(response)).toMatchObject({
      statusCode: 400,
      code: 'ERR_PATH_OUTSIDE_WORKSPACE',
      message: expect.stringMatching(/outside the workspace/),
    });
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

  it.each(['to-sibling/new.txt', 'to-sibling/secret.txt', 'dangling-out', 'relative-out/new.txt'])(
    'refuses to write through %s',
    async (name) => {
      const response = await put(`${dir}/links/${name}`, 'pwned');
      expect(response.status).toBe(400);
      expect(jsonOf(response)).toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    },
  );

  it.each(['to-sibling/secret.txt', 'relative-out/passwd'])('refuses to delete %s', async (name) => {
    const response = await del(`${dir}/links/${name}`);
    expect(response.status).toBe(400);
    expect(jsonOf(response)).toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
  });

  it('left the sibling and its secret as they were', async () => {
    const out = await python(
      `import os\nprint(sorted(os.listdir(${JSON.stringify(sibling)})), open(os.path.join(${JSON.stringify(sibling)}, "secret.txt")).read())`,
    );
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
