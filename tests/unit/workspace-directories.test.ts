import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryInWorkspace } from '../../server/workspace/directories.js';
import { Workspace } from '../../server/workspace/workspace.js';

/** A workspace `ws` beside a sibling `ws2` that shares its name as a prefix, and a link out. */
let base: string;
let root: string;
let workspace: Workspace;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-directories-'));
  root = path.join(base, 'ws');
  await mkdir(path.join(root, 'dir'), { recursive: true });
  await mkdir(path.join(base, 'ws2'));
  await writeFile(path.join(root, 'file.txt'), 'x');
  await symlink(path.join(base, 'ws2'), path.join(root, 'out'));
  workspace = new Workspace(root);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('directoryInWorkspace', () => {
  it('takes names that begin with two dots for the names they are, inside the workspace', async () => {
    for (const name of ['..data', '...']) {
      const resolved = await directoryInWorkspace(workspace, path.join(root, name));
      expect({ name, segments: resolved?.segments, directory: resolved?.stats?.isDirectory() }).toEqual({
        name,
        segments: [name],
        directory: true,
      });
      expect(existsSync(path.join(root, name))).toBe(true);
    }
  });

  it('creates a missing directory, and its parents, inside the workspace', async () => {
    const resolved = await directoryInWorkspace(workspace, path.join(root, 'made', '..deeper'));
    expect(resolved?.segments).toEqual(['made', '..deeper']);
    expect(resolved?.stats?.isDirectory()).toBe(true);
  });

  it('answers the root itself, and what is there for a file', async () => {
    expect((await directoryInWorkspace(workspace, root))?.segments).toEqual([]);
    const file = await directoryInWorkspace(workspace, path.join(root, 'file.txt'));
    expect(file?.stats?.isDirectory()).toBe(false);
  });

  it('has nothing to say about what lies outside, by name or through a link, and creates nothing there', async () => {
    for (const outside of [
      base,
      path.dirname(base),
      path.join(base, 'ws2'),
      path.join(base, 'ws2', 'new'),
      path.join(root, 'out'),
      path.join(root, 'out', 'new'),
      '/tmp',
    ]) {
      expect({ outside, resolved: await directoryInWorkspace(workspace, outside) }).toEqual({ outside, resolved: undefined });
    }
    expect(existsSync(path.join(base, 'ws2', 'new'))).toBe(false);
  });

  it('refuses names the file API refuses', async () => {
    await expect(directoryInWorkspace(workspace, path.join(root, '.upload-0123456789abcdef01234567.part'))).rejects.toMatchObject({
      code: 'ERR_INVALID_PATH',
    });
  });
});
