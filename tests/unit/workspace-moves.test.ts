import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WorkspaceFiles } from '../../server/workspace/files.js';
import { snapshot } from '../helpers/tree.js';

let base: string;
let root: string;
let outside: string;
let files: WorkspaceFiles;

const at = (...parts: string[]) => path.join(root, ...parts);
beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-moves-'));
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

describe('mkdir', () => {
  it('makes a directory with its parents, and says when it existed already', async () => {
    expect(await files.mkdir('a/b/c')).toEqual({ path: 'a/b/c', created: true });
    expect((await stat(at('a/b/c'))).isDirectory()).toBe(true);
    expect(await files.mkdir('a/b/c/')).toEqual({ path: 'a/b/c', created: false });
  });

  it('answers 409 when a file is in the way, at the end or on the way', async () => {
    await writeFile(at('file'), 'x');
    await expect(files.mkdir('file')).rejects.toMatchObject({ code: 'ERR_ALREADY_EXISTS', statusCode: 409 });
    await expect(files.mkdir('file/sub')).rejects.toMatchObject({ code: 'ERR_ALREADY_EXISTS', statusCode: 409 });
    expect(await readFile(at('file'), 'utf8')).toBe('x');
  });

  it('never makes anything through a link out of the workspace', async () => {
    await symlink(outside, at('out'));
    await expect(files.mkdir('out/new')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    expect(await readdir(outside)).toEqual(['secret.txt']);
  });
});

describe('move', () => {
  it('renames a file and a directory with everything in it, creating the destination parents', async () => {
    await mkdir(at('dir/sub'), { recursive: true });
    await writeFile(at('dir/sub/f.bin'), randomBytes(1000));
    const before = await snapshot(at('dir'));
    await writeFile(at('one.txt'), '1');
    expect(await files.move('one.txt', 'x/y/two.txt')).toEqual({ path: 'x/y/two.txt', created: true });
    expect(await files.move('dir', 'x/moved')).toEqual({ path: 'x/moved', created: true });
    expect(await readFile(at('x/y/two.txt'), 'utf8')).toBe('1');
    expect(await snapshot(at('x/moved'))).toEqual(before);
    expect((await readdir(root)).sort()).toEqual(['x']);
  });

  it('answers 409 for an existing destination unless overwrite, which replaces it whole', async () => {
    await writeFile(at('a.txt'), 'A');
    await writeFile(at('b.txt'), 'B');
    await mkdir(at('d1'));
    await writeFile(at('d1/new'), 'new');
    await mkdir(at('d2'));
    await writeFile(at('d2/old'), 'old');
    await expect(files.move('a.txt', 'b.txt')).rejects.toMatchObject({ code: 'ERR_ALREADY_EXISTS', statusCode: 409 });
    await expect(files.move('d1', 'd2')).rejects.toMatchObject({ code: 'ERR_ALREADY_EXISTS' });
    expect(await readFile(at('b.txt'), 'utf8')).toBe('B');
    expect(await files.move('a.txt', 'b.txt', { overwrite: true })).toEqual({ path: 'b.txt', created: false });
    expect(await files.move('d1', 'd2', { overwrite: true })).toEqual({ path: 'd2', created: false });
    expect(await readFile(at('b.txt'), 'utf8')).toBe('A');
    expect(await readdir(at('d2'))).toEqual(['new']);
    expect((await readdir(root)).sort()).toEqual(['b.txt', 'd2']);
  });

  it('refuses the root, a directory into itself, and replacing a directory that holds the source', async () => {
    await mkdir(at('d/sub'), { recursive: true });
    await expect(files.move('.', 'elsewhere')).rejects.toMatchObject({ code: 'ERR_WORKSPACE_ROOT', statusCode: 400 });
    await expect(files.move('d', 'd/sub/d')).rejects.toMatchObject({ code: 'ERR_INVALID_PATH', statusCode: 400 });
    await expect(files.move('d', 'd')).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
    await expect(files.move('d/sub', 'd', { overwrite: true })).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
    await expect(files.move('d', '.', { overwrite: true })).rejects.toMatchObject({ code: 'ERR_WORKSPACE_ROOT' });
    expect(await snapshot(root)).toEqual(['d/', 'd/sub/']);
  });

  it('moves a link as a link, wherever it points, and never moves anything to or from outside', async () => {
    await symlink(outside, at('out'));
    await symlink('missing', at('dangling'));
    await files.move('out', 'moved-out');
    await files.move('dangling', 'moved-dangling');
    expect(await readlink(at('moved-out'))).toBe(outside);
    await writeFile(at('f'), 'x');
    await expect(files.move('f', 'moved-out/f')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    await expect(files.move('moved-out/secret.txt', 'stolen')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    await expect(files.move('missing', 'x')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND', statusCode: 404 });
    expect(await readdir(outside)).toEqual(['secret.txt']);
  });
});

describe('links re-anchored by a move or copy', () => {
  it.each(['move', 'copy'] as const)('%s: refuses to make a relative link lead out, leaving everything as it was', async (action) => {
    const act = (from: string, to: string) => (action === 'move' ? files.move(from, to) : files.copy(from, to));
    // `../..` leads to the workspace root from a/b; from the root it leads out.
    await mkdir(at('a/b'), { recursive: true });
    await symlink('../..', at('a/b/up'));
    // Inside where it stands only through its own tree's link: d -> . makes d/d/../../.. climb
    // three levels from p/q/s, to the root; from a copy at the root, out of it.
    await mkdir(at('p/q/s'), { recursive: true });
    await symlink('.', at('p/q/s/d'));
    await symlink('d/d/../../..', at('p/q/s/e'));
    const before = await snapshot(root);
    for (const [from, to] of [
      ['a/b/up', 'up'],
      ['a/b', 'b'],
      ['p/q/s', 's'],
    ]) {
      await expect(act(from!, to!)).rejects.toMatchObject({
        code: 'ERR_INVALID_PATH',
        statusCode: 400,
        message: expect.stringMatching(/would lead outside the workspace/),
      });
    }
    expect(await snapshot(root)).toEqual(before);
    // Where they still lead inside, and links that led out already (a venv's python), go as they are.
    await symlink(outside, at('a/b/python'));
    await mkdir(at('x/y/z'), { recursive: true });
    await act('a/b', 'x/y/z/b');
    expect(await readlink(at('x/y/z/b/up'))).toBe('../..');
    expect(await readlink(at('x/y/z/b/python'))).toBe(outside);
  });
});

describe('copy', () => {
  async function tree(): Promise<void> {
    await mkdir(at('src/empty'), { recursive: true });
    await mkdir(at('src/nested/deeper'), { recursive: true });
    await writeFile(at('src/bin.dat'), randomBytes(3 * 1024 * 1024 + 7));
    await writeFile(at('src/nested/deeper/\u00e9t\u00e9 \u6587\u5b57.txt'), 'unicode');
    await writeFile(at('src/run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    await symlink('bin.dat', at('src/link-inside'));
    await symlink(outside, at('src/link-out'));
    execFileSync('mkfifo', [at('src/fifo')]);
  }

  it('copies a directory recursively: contents, modes, empty directories, links as links; FIFOs left out', async () => {
    await tree();
    expect(await files.copy('src', 'dst/copy')).toEqual({ path: 'dst/copy', created: true });
    const original = (await snapshot(at('src'))).filter((entry) => !entry.startsWith('fifo'));
    expect(await snapshot(at('dst/copy'))).toEqual(original);
    expect(await readdir(outside)).toEqual(['secret.txt']);
    expect(await snapshot(at('src'))).toContain('fifo (special)');
  });

  it('copies a file and a link (as a link); 409 for an existing destination unless overwrite', async () => {
    await writeFile(at('a.txt'), 'A');
    await writeFile(at('b.txt'), 'B');
    await symlink('a.txt', at('alias'));
    expect(await files.copy('a.txt', 'c.txt')).toEqual({ path: 'c.txt', created: true });
    expect(await files.copy('alias', 'alias2')).toEqual({ path: 'alias2', created: true });
    expect(await readlink(at('alias2'))).toBe('a.txt');
    await expect(files.copy('a.txt', 'b.txt')).rejects.toMatchObject({ code: 'ERR_ALREADY_EXISTS', statusCode: 409 });
    expect(await files.copy('a.txt', 'b.txt', { overwrite: true })).toEqual({ path: 'b.txt', created: false });
    expect(await readFile(at('b.txt'), 'utf8')).toBe('A');
    expect(await readFile(at('a.txt'), 'utf8')).toBe('A');
  });

  it('refuses a directory into itself and leaves no half-made copy behind', async () => {
    await tree();
    await expect(files.copy('src', 'src/nested/again')).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' });
    expect((await readdir(at('src/nested'))).sort()).toEqual(['deeper']);
    expect((await readdir(root)).filter((name) => name.startsWith('.copy-'))).toEqual([]);
  });

  it("leaves the server's work in progress out of a copy", async () => {
    await mkdir(at('src'));
    await writeFile(at('src/kept.txt'), 'kept');
    await writeFile(at('src/.upload-0123456789abcdef01234567.part'), 'half an upload');
    await mkdir(at('src/.copy-0123456789abcdef01234567'));
    await files.copy('src', 'dst');
    expect(await readdir(at('dst'))).toEqual(['kept.txt']);
  });

  it('never copies from outside through a link', async () => {
    await symlink(outside, at('out'));
    await expect(files.copy('out/secret.txt', 'stolen.txt')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
    // Copying the link itself copies the link, not what is behind it.
    await files.copy('out', 'out-copy');
    expect((await lstat(at('out-copy'))).isSymbolicLink()).toBe(true);
  });
});
