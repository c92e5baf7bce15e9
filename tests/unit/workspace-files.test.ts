import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFile as writeFileTool } from '../../server/transports/mcp/file-tools.js';
import { WorkspaceFiles } from '../../server/workspace/files.js';
import { startSwapRace } from '../helpers/swap-race.js';

let base: string;
let root: string;
let outside: string;
let files: WorkspaceFiles;

const MiB = 2 ** 20;
const write = (raw: string, body: Readable | string, maxBytes = 64 * MiB, signal?: AbortSignal) =>
  files.write(raw, typeof body === 'string' ? Readable.from([Buffer.from(body)]) : body, { maxBytes, signal });

/** A body that sends `bytes` and then fails, as a connection reset mid-upload does. */
function failingBody(bytes: number): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(Buffer.alloc(bytes, 120));
      } else {
        this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
      }
    },
  });
}

async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.includes('.upload-'));
}

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-files-'));
  root = path.join(base, 'ws');
  outside = path.join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret.txt'), 'outside secret');
  files = new WorkspaceFiles(root);
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('write', () => {
  it('creates the file and its parents (created), then overwrites it (not created)', async () => {
    const first = await write('a/b/c.txt', 'one');
    expect(first).toMatchObject({ path: 'a/b/c.txt', created: true, size: 3 });
    const second = await write('a/b/c.txt', 'second');
    expect(second).toMatchObject({ created: false, size: 6 });
    expect(second.etag).not.toBe(first.etag);
    expect(await readFile(path.join(root, 'a/b/c.txt'), 'utf8')).toBe('second');
    expect(await leftovers(path.join(root, 'a/b'))).toEqual([]);
  });

  it('leaves the previous content and no temporary file when the body fails midway', async () => {
    await write('keep.txt', 'previous content');
    await expect(write('keep.txt', failingBody(MiB))).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(await readFile(path.join(root, 'keep.txt'), 'utf8')).toBe('previous content');
    expect(await leftovers(root)).toEqual([]);
  });

  it('creates nothing when a new file fails midway', async () => {
    await expect(write('new/never.txt', failingBody(1000))).rejects.toThrow();
    await expect(stat(path.join(root, 'new/never.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await leftovers(path.join(root, 'new'))).toEqual([]);
  });

  it('stops at the size limit, writes nothing and cleans up', async () => {
    await write('limited.bin', 'old');
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 10; i++) yield Buffer.alloc(1000, 1);
      })(),
    );
    await expect(write('limited.bin', body, 4096)).rejects.toMatchObject({ code: 'ERR_UPLOAD_TOO_LARGE', statusCode: 413 });
    expect(await readFile(path.join(root, 'limited.bin'), 'utf8')).toBe('old');
    expect(await leftovers(root)).toEqual([]);
    // Exactly at the limit is fine.
    await write('limited.bin', Readable.from([Buffer.alloc(4096)]), 4096);
    expect((await stat(path.join(root, 'limited.bin'))).size).toBe(4096);
  });

  it('stops when aborted and keeps the old content', async () => {
    await write('abort.txt', 'old');
    const controller = new AbortController();
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(1000));
    const pending = write('abort.txt', body, MiB, controller.signal);
    setTimeout(() => controller.abort(new Error('idle')), 50);
    await expect(pending).rejects.toThrow();
    expect(await readFile(path.join(root, 'abort.txt'), 'utf8')).toBe('old');
    expect(await leftovers(root)).toEqual([]);
  });

  it('never interleaves two uploads to one path: one of them wins, whole', async () => {
    const chunks = (byte: number) =>
      Readable.from(
        (async function* () {
          for (let i = 0; i < 64; i++) {
            yield Buffer.alloc(16 * 1024, byte);
            await new Promise((resolve) => setImmediate(resolve));
          }
        })(),
      );
    const results = await Promise.all([write('race.bin', chunks(65)), write('race.bin', chunks(66))]);
    expect(results.filter((result) => result.created)).toHaveLength(1);
    const content = await readFile(path.join(root, 'race.bin'));
    expect(content.length).toBe(64 * 16 * 1024);
    expect(content.every((byte) => byte === content[0])).toBe(true);
    expect(await leftovers(root)).toEqual([]);
  });

  it('keeps the permissions of the file it replaces', async () => {
    await writeFile(path.join(root, 'run.sh'), 'echo old');
    await chmod(path.join(root, 'run.sh'), 0o750);
    await write('run.sh', 'echo new');
    expect((await stat(path.join(root, 'run.sh'))).mode & 0o777).toBe(0o750);
  });

  it('writes through a symlink that stays inside, to its target', async () => {
    await write('real.txt', 'old');
    await symlink('real.txt', path.join(root, 'alias.txt'));
    expect(await write('alias.txt', 'new')).toMatchObject({ created: false });
    expect(await readFile(path.join(root, 'real.txt'), 'utf8')).toBe('new');
    expect((await lstat(path.join(root, 'alias.txt'))).isSymbolicLink()).toBe(true);
  });

  it('refuses to write through links that leave the workspace, touching nothing out there', async () => {
    await symlink(outside, path.join(root, 'out-dir'));
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'out-file'));
    await symlink(path.join(outside, 'created-by-upload.txt'), path.join(root, 'out-dangling'));
    for (const raw of ['out-dir/secret.txt', 'out-dir/new.txt', 'out-file', 'out-dangling', 'out-dir/sub/new.txt']) {
      await expect(write(raw, 'pwned')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    }
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside secret');
    expect((await readdir(outside)).sort()).toEqual(['secret.txt']);
  });

  it('refuses a path ending in "/" instead of creating a file under the directory\'s name', async () => {
    for (const raw of ['newdir/', 'newdir/.', 'a/b/']) {
      await expect(write(raw, 'x')).rejects.toMatchObject({
        code: 'ERR_INVALID_PATH',
        statusCode: 400,
        message: expect.stringMatching(/mkdir/),
      });
    }
    expect(await readdir(root)).toEqual([]);
  });

  it("refuses the server's own work-in-progress names, named directly, through a link or over MCP", async () => {
    const reserved = ['.upload-0123456789abcdef01234567.part', 'sub/.extract-0123456789abcdef01234567', '.copy-0123456789abcdef01234567/f'];
    for (const raw of reserved) {
      await expect(write(raw, 'x')).rejects.toMatchObject({
        code: 'ERR_INVALID_PATH',
        statusCode: 400,
        message: expect.stringMatching(/reserved/),
      });
      await expect(writeFileTool(files, raw, 'x', 'utf8', MiB)).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
      await expect(files.mkdir(raw)).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
    }
    await symlink('.extract-0123456789abcdef01234567', path.join(root, 'alias'));
    await expect(write('alias', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_PATH', message: expect.stringMatching(/reserved/) });
    await expect(files.copy('alias', 'alias-copy')).resolves.toMatchObject({ created: true });
    expect((await readdir(root)).sort()).toEqual(['alias', 'alias-copy']);
  });

  it('refuses a directory or the root as a target', async () => {
    await mkdir(path.join(root, 'dir'));
    await expect(write('dir', 'x')).rejects.toMatchObject({ code: 'ERR_IS_A_DIRECTORY' });
    await expect(write('.', 'x')).rejects.toMatchObject({ code: 'ERR_WORKSPACE_ROOT' });
    await expect(write('', 'x')).rejects.toMatchObject({ code: 'ERR_WORKSPACE_ROOT' });
  });
});

describe('list', () => {
  it('lists directories first, then files, each by name, with sizes and float mtimes', async () => {
    await mkdir(path.join(root, 'b-dir'));
    await mkdir(path.join(root, 'a-dir'));
    await writeFile(path.join(root, 'z.txt'), '12345');
    await writeFile(path.join(root, 'A.txt'), '');
    await writeFile(path.join(root, '.hidden'), 'h');
    const listing = await files.list('.');
    expect(listing.path).toBe('.');
    expect(listing.entries.map((entry) => [entry.name, entry.type, entry.size])).toEqual([
      ['a-dir', 'dir', null],
      ['b-dir', 'dir', null],
      ['.hidden', 'file', 1],
      ['A.txt', 'file', 0],
      ['z.txt', 'file', 5],
    ]);
    const modified = listing.entries[0]!.modified;
    expect(modified).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(modified).toBeLessThan(Date.now() / 1000 + 60);
  });

  it('shows links that stay inside as what they point to, and leaves out the others', async () => {
    await mkdir(path.join(root, 'dir'));
    await writeFile(path.join(root, 'dir', 'f.txt'), 'abc');
    await symlink('dir', path.join(root, 'dir-link'));
    await symlink('dir/f.txt', path.join(root, 'file-link'));
    await symlink(outside, path.join(root, 'out-dir'));
    await symlink('/etc/passwd', path.join(root, 'passwd'));
    await symlink('missing', path.join(root, 'dangling'));
    const listing = await files.list('');
    expect(listing.entries.map((entry) => [entry.name, entry.type, entry.size])).toEqual([
      ['dir', 'dir', null],
      ['dir-link', 'dir', null],
      ['file-link', 'file', 3],
    ]);
    expect((await files.list('dir-link/')).entries.map((entry) => entry.name)).toEqual(['f.txt']);
  });

  it('leaves unfinished uploads out', async () => {
    await writeFile(path.join(root, '.upload-0123456789abcdef01234567.part'), 'partial');
    await writeFile(path.join(root, 'done.txt'), '');
    expect((await files.list('.')).entries.map((entry) => entry.name)).toEqual(['done.txt']);
  });

  it('pages through a directory with limit and cursor: every entry once, in order', async () => {
    for (let i = 0; i < 25; i++) await writeFile(path.join(root, `f${String(i).padStart(2, '0')}`), '');
    for (let i = 0; i < 5; i++) await mkdir(path.join(root, `d${i}`));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await files.list('.', { limit: 7, cursor });
      expect(page.entries.length).toBeLessThanOrEqual(7);
      seen.push(...page.entries.map((entry) => entry.name));
      cursor = page.next_cursor ?? undefined;
      pages++;
      // Changes between pages neither repeat nor skip the entries that stay.
      if (pages === 2) await writeFile(path.join(root, 'a-new-file-sorted-before-the-cursor'), '');
    } while (cursor);
    expect(pages).toBe(5);
    const expected = [
      ...Array.from({ length: 5 }, (_, i) => `d${i}`),
      ...Array.from({ length: 25 }, (_, i) => `f${String(i).padStart(2, '0')}`),
    ];
    expect(seen).toEqual(expected);
    expect((await files.list('.', { limit: 100 })).next_cursor).toBeNull();
    expect((await files.list('.')).entries).toHaveLength(31);
  });

  it('refuses a cursor it did not make', async () => {
    await expect(files.list('.', { cursor: 'not-a-cursor' })).rejects.toMatchObject({ code: 'ERR_INVALID_REQUEST', statusCode: 400 });
  });

  it('leaves out names that are not UTF-8 or hold control characters, and counts them', async () => {
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x6c, 0xe9, 0x74, 0xe9])]), 'latin-1');
    await writeFile(path.join(root, 'tab\there'), '');
    await writeFile(path.join(root, 'new\nline'), '');
    await writeFile(path.join(root, 'ok-\u00e9t\u00e9-\ufffd.txt'), '');
    const listing = await files.list('.');
    expect(listing.entries.map((entry) => entry.name)).toEqual(['ok-\u00e9t\u00e9-\ufffd.txt']);
    expect(listing.omitted).toBe(3);
    await expect(files.openFile('tab\there')).rejects.toMatchObject({
      code: 'ERR_INVALID_PATH',
      message: expect.stringMatching(/control characters/),
    });
    await expect(write('new\nfile', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
  });

  it('refuses a file (400), a missing path (404) and links out of the workspace (400)', async () => {
    await writeFile(path.join(root, 'f.txt'), '');
    await symlink(outside, path.join(root, 'out-dir'));
    await expect(files.list('f.txt')).rejects.toMatchObject({ code: 'ERR_NOT_A_DIRECTORY', statusCode: 400 });
    await expect(files.list('missing')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND', statusCode: 404 });
    await expect(files.list('out-dir')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE', statusCode: 400 });
  });
});

describe('openFile', () => {
  it('streams the requested bytes', async () => {
    await writeFile(path.join(root, 'digits.txt'), '0123456789');
    const file = await files.openFile('digits.txt');
    expect(file).toMatchObject({ size: 10, name: 'digits.txt', display: 'digits.txt' });
    expect(await text(file.stream(2, 5))).toBe('2345');
  });

  it('keeps serving the version it opened when an upload replaces the file meanwhile', async () => {
    await writeFile(path.join(root, 'v.txt'), 'version one');
    const file = await files.openFile('v.txt');
    await write('v.txt', 'version two, longer');
    expect(await text(file.stream(0, file.size - 1))).toBe('version one');
  });

  it('refuses directories, missing files, FIFOs (without blocking) and escaping links', async () => {
    await mkdir(path.join(root, 'dir'));
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    await symlink('/etc/passwd', path.join(root, 'passwd'));
    await expect(files.openFile('dir')).rejects.toMatchObject({ code: 'ERR_IS_A_DIRECTORY' });
    await expect(files.openFile('.')).rejects.toMatchObject({ code: 'ERR_IS_A_DIRECTORY' });
    await expect(files.openFile('nope.txt')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND', statusCode: 404 });
    await expect(files.openFile('pipe')).rejects.toMatchObject({
      code: 'ERR_INVALID_PATH',
      message: expect.stringMatching(/regular file/),
    });
    await expect(files.openFile('passwd')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
  });
});

describe('remove', () => {
  it('deletes a file, and a directory with everything in it', async () => {
    await mkdir(path.join(root, 'tree/sub'), { recursive: true });
    await writeFile(path.join(root, 'tree/sub/f.txt'), 'x');
    await writeFile(path.join(root, 'f.txt'), 'x');
    await files.remove('f.txt');
    await files.remove('tree');
    expect(await readdir(root)).toEqual([]);
    await expect(files.remove('tree')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND', statusCode: 404 });
  });

  it('removes a symlink, never its target', async () => {
    await mkdir(path.join(root, 'dir'));
    await writeFile(path.join(root, 'dir/f.txt'), 'kept');
    await symlink('dir', path.join(root, 'dir-link'));
    await symlink('.', path.join(root, 'root-link'));
    await files.remove('dir-link');
    await files.remove('root-link/');
    expect((await readdir(root)).sort()).toEqual(['dir']);
    expect(await readFile(path.join(root, 'dir/f.txt'), 'utf8')).toBe('kept');
  });

  it('deletes a directory holding a link out of the workspace without following it', async () => {
    await mkdir(path.join(root, 'tree'));
    await symlink(outside, path.join(root, 'tree/out'));
    await files.remove('tree');
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside secret');
  });

  it('refuses the workspace root, however it is named', async () => {
    await symlink('.', path.join(root, 'self'));
    for (const raw of ['', '.', './', '//']) {
      await expect(files.remove(raw)).rejects.toMatchObject({ code: raw === '//' ? 'ERR_PATH_OUTSIDE_WORKSPACE' : 'ERR_WORKSPACE_ROOT' });
    }
    await expect(files.remove('self/.')).resolves.toBeUndefined();
    expect((await stat(root)).isDirectory()).toBe(true);
  });

  it('refuses paths through links out of the workspace, and leaves what is out there be', async () => {
    await symlink(outside, path.join(root, 'out-dir'));
    await expect(files.remove('out-dir/secret.txt')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside secret');
  });

  it('deletes links that lead out, nowhere or round in a loop: the links, never a target', async () => {
    await symlink(outside, path.join(root, 'out-dir'));
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'out-file'));
    await symlink('missing', path.join(root, 'dangling'));
    await symlink('loop-b', path.join(root, 'loop-a'));
    await symlink('loop-a', path.join(root, 'loop-b'));
    for (const name of ['out-dir', 'out-file', 'dangling', 'loop-a', 'loop-b']) await files.remove(name);
    expect(await readdir(root)).toEqual([]);
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside secret');
  });

  it('deletes entries whose names are not UTF-8', async () => {
    await mkdir(path.join(root, 'tree'));
    await writeFile(Buffer.concat([Buffer.from(`${root}/tree/`), Buffer.from([0x66, 0xff, 0xfe])]), 'x');
    await files.remove('tree');
    expect(await readdir(root)).toEqual([]);
  });

  it('never leaves the workspace while a directory is swapped for a link to outside in a loop', { timeout: 60_000 }, async () => {
    // The attack: code in the workspace exchanges a directory with a symlink to an outside
    // directory (renameat2 RENAME_EXCHANGE) as fast as it can while the tree is deleted. A
    // delete that walks path strings lists and unlinks the outside directory's files.
    const victims = 500;
    await mkdir(path.join(outside, 'victim'));
    for (let i = 0; i < victims; i++) await writeFile(path.join(outside, 'victim', `f${i}`), 'outside');
    for (let round = 0; round < 5; round++) {
      const tree = path.join(root, 'x');
      await mkdir(path.join(tree, 'd'), { recursive: true });
      for (let i = 0; i < victims; i++) await writeFile(path.join(tree, 'd', `f${i}`), 'inside');
      await symlink(path.join(outside, 'victim'), path.join(tree, 'l'));
      const racer = await startSwapRace(path.join(tree, 'd'), path.join(tree, 'l'));
      const errors: unknown[] = [];
      try {
        for (let attempt = 0; attempt < 20; attempt++) {
          try {
            await files.remove('x');
            break;
          } catch (error) {
            errors.push(error);
          }
        }
      } finally {
        racer.kill('SIGKILL');
      }
      expect(await readdir(path.join(outside, 'victim'))).toHaveLength(victims);
      // A 409 ("changed while it was being deleted") is a fair answer under this race.
      for (const error of errors) expect(error).toMatchObject({ code: 'ERR_PATH_CHANGED' });
      await rm(tree, { recursive: true, force: true });
    }
    expect(await readdir(outside)).toEqual(['secret.txt', 'victim']);
  });
});
