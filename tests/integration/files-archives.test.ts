import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dir, files, get, jsonOf, localDigest, python, send, treeDigest, useFilesContext } from '../helpers/files.js';

/** The file API: directories downloaded as archives, archives unpacked, and the limits on unpacking. */
useFilesContext();

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
    const leftovers = await python(
      `import os\nprint(sorted(n for n in os.listdir(".") if n.startswith(".extract-")), os.path.exists("../escaped.txt"))`,
    );
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
