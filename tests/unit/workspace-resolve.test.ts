import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Workspace } from '../../server/workspace/workspace.js';

/**
 * A workspace next to a sibling that shares its name as a prefix (ws, ws2) and an unrelated
 * directory, with symlinks of every kind: inside, chained, looping, dangling, and escaping
 * by relative and absolute targets.
 */
let base: string;
let root: string;
let workspace: Workspace;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-resolve-'));
  root = path.join(base, 'ws');
  const sibling = path.join(base, 'ws2');
  const outside = path.join(base, 'outside');
  await mkdir(path.join(root, 'dir', 'nested'), { recursive: true });
  await mkdir(sibling);
  await mkdir(outside);
  await writeFile(path.join(root, 'dir', 'file.txt'), 'inside');
  await writeFile(path.join(root, 'dir', 'nested', 'deep.txt'), 'deep');
  await writeFile(path.join(sibling, 'secret.txt'), 'sibling secret');
  await writeFile(path.join(outside, 'secret.txt'), 'outside secret');

  const links: Array<[string, string]> = [
    ['to-sibling', '../ws2'],
    ['to-sibling-abs', sibling],
    ['passwd', '/etc/passwd'],
    ['to-root', '.'],
    ['to-dir', 'dir'],
    ['dir/up', '..'],
    ['dir/escape-up', '../..'],
    ['dir/inner-escape', '../../outside'],
    ['chain1', 'chain2'],
    ['chain2', 'dir/file.txt'],
    ['loop1', 'loop2'],
    ['loop2', 'loop1'],
    ['dangling-in', 'dir/missing.txt'],
    ['dangling-out', path.join(outside, 'missing.txt')],
    ['via-outside', path.join(outside, 'back-in')],
  ];
  for (const [name, target] of links) await symlink(target, path.join(root, name));
  await symlink(path.join(root, 'dir'), path.join(outside, 'back-in'));
  await symlink(root, path.join(base, 'ws-link'));
  workspace = new Workspace(root);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('Workspace.resolve', () => {
  it.each([
    ['dir/file.txt', ['dir', 'file.txt']],
    ['to-dir/file.txt', ['dir', 'file.txt']],
    ['chain1', ['dir', 'file.txt']],
    ['dir/up/dir/file.txt', ['dir', 'file.txt']],
    ['to-root/to-root/dir/nested/deep.txt', ['dir', 'nested', 'deep.txt']],
    // Leaves the workspace on the way but ends inside it: the real path is what counts.
    ['via-outside/file.txt', ['dir', 'file.txt']],
  ])('resolves %j inside the workspace to %j', async (raw, segments) => {
    const resolved = await workspace.resolve(raw);
    expect(resolved.segments).toEqual(segments);
    expect(resolved.real).toBe(path.join(root, ...segments));
    expect(resolved.stats?.isFile()).toBe(true);
  });

  it.each([
    'to-sibling',
    'to-sibling/secret.txt',
    'to-sibling-abs/secret.txt',
    'passwd',
    'dir/escape-up',
    'dir/escape-up/ws2/secret.txt',
    'dir/inner-escape/secret.txt',
    'dir/inner-escape/new-file.txt',
    'dangling-out',
    'dangling-out/new/file.txt',
    'to-root/../ws2',
  ])('refuses %j, which leads out of the workspace', async (raw) => {
    await expect(workspace.resolve(raw)).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE', statusCode: 400 });
  });

  it('says nothing about what lies outside: a file out there used as a directory is still "outside"', async () => {
    await expect(workspace.resolve('passwd/x')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
  });

  it('resolves the root as [] and a link to the root as the root', async () => {
    for (const raw of ['', '.', 'to-root', 'dir/up']) {
      const resolved = await workspace.resolve(raw);
      expect(resolved.segments).toEqual([]);
      expect(resolved.stats?.isDirectory()).toBe(true);
    }
  });

  it('reports a missing path with no stats, parents and all', async () => {
    const resolved = await workspace.resolve('nope/a/b.txt');
    expect(resolved.stats).toBeUndefined();
    expect(resolved.segments).toEqual(['nope', 'a', 'b.txt']);
  });

  it('judges a dangling link by where it points', async () => {
    const resolved = await workspace.resolve('dangling-in');
    expect(resolved.stats).toBeUndefined();
    expect(resolved.segments).toEqual(['dir', 'missing.txt']);
  });

  it('stops at the last link when asked to (delete removes the link itself)', async () => {
    const resolved = await workspace.resolve('passwd', { followLastLink: false });
    expect(resolved.segments).toEqual(['passwd']);
    expect(resolved.stats?.isSymbolicLink()).toBe(true);
    // ...but links before the last are followed, and checked, as always.
    await expect(workspace.resolve('to-sibling/secret.txt', { followLastLink: false })).rejects.toMatchObject({
      code: 'ERR_PATH_OUTSIDE_WORKSPACE',
    });
  });

  it('refuses symlink loops with a message instead of hanging', async () => {
    await expect(workspace.resolve('loop1')).rejects.toMatchObject({
      code: 'ERR_INVALID_PATH',
      message: expect.stringMatching(/symbolic links/),
    });
  });

  it('says which segment is a file where a directory is needed', async () => {
    await expect(workspace.resolve('dir/file.txt/x')).rejects.toMatchObject({
      code: 'ERR_NOT_A_DIRECTORY',
      message: expect.stringContaining('dir/file.txt'),
    });
  });

  it('works when the configured root is itself a symlink', async () => {
    const linked = new Workspace(path.join(base, 'ws-link'));
    expect((await linked.resolve('to-dir/file.txt')).segments).toEqual(['dir', 'file.txt']);
    await expect(linked.resolve('to-sibling/secret.txt')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE' });
  });

  it('answers 404 for everything when the root is missing', async () => {
    await expect(new Workspace(path.join(base, 'absent')).resolve('x')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
  });
});

describe('Workspace.openDirectory', () => {
  it('creates missing directories on the way when asked to', async () => {
    const directory = await workspace.openDirectory(['made', 'on', 'demand'], true);
    await directory.close();
    expect((await workspace.resolve('made/on/demand')).stats?.isDirectory()).toBe(true);
  });

  it('fails, rather than follows, a directory swapped for a symlink after it was resolved', async () => {
    await mkdir(path.join(root, 'swap'));
    const resolved = await workspace.resolve('swap');
    // Between the check and the use, "swap" becomes a link out of the workspace.
    await rename(path.join(root, 'swap'), path.join(root, 'swapped-away'));
    await symlink(path.join(base, 'outside'), path.join(root, 'swap'));
    await expect(workspace.openDirectory(resolved.segments)).rejects.toMatchObject({ code: 'ERR_PATH_CHANGED', statusCode: 409 });
    await expect(workspace.openDirectory([...resolved.segments, 'sub'], true)).rejects.toMatchObject({ code: 'ERR_PATH_CHANGED' });
  });

  it('names a file met where a directory should be', async () => {
    await expect(workspace.openDirectory(['dir', 'file.txt', 'x'], true)).rejects.toMatchObject({ code: 'ERR_NOT_A_DIRECTORY' });
  });
});
