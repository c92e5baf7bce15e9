import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkspaceFiles } from '../../server/workspace/files.js';

/**
 * The moment between the check of the staged tree against the target and the moves into place
 * is one a test cannot hit by racing. Every rename still happens for real; this only lets the
 * test change the target, for real, just before a chosen one.
 */
const hook = vi.hoisted(() => ({ beforeRename: undefined as undefined | ((count: number) => Promise<void>), renames: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const rename: typeof actual.rename = async (from, to) => {
    await hook.beforeRename?.(++hook.renames);
    return actual.rename(from, to);
  };
  return { ...actual, rename, default: { ...actual, rename } };
});

let base: string;
let root: string;
let files: WorkspaceFiles;
const at = (...parts: string[]) => path.join(root, ...parts);
const DIRECTORIES = ['d1', 'd2', 'd3', 'd4', 'd5'];

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-extract-concurrency-'));
  root = path.join(base, 'ws');
  await mkdir(root);
  files = new WorkspaceFiles(root);
  hook.renames = 0;
  hook.beforeRename = undefined;
});

afterEach(async () => {
  hook.beforeRename = undefined;
  await rm(base, { recursive: true, force: true });
});

describe('extract while the target changes', () => {
  it('answers 409 and leaves exactly what the README says: earlier moves, whole; nothing staged', async () => {
    const src = path.join(base, 'src');
    for (const name of DIRECTORIES) {
      await mkdir(path.join(src, name), { recursive: true });
      await writeFile(path.join(src, name, 'new.txt'), `new ${name}`);
      await mkdir(at('target', name), { recursive: true });
      await writeFile(at('target', name, 'old.txt'), `old ${name}`);
    }
    const archive = path.join(base, 'dirs.tar');
    execFileSync('tar', ['-cf', archive, '-C', src, ...DIRECTORIES]);

    // Before the third move, code replaces every directory the archive has not reached yet
    // with a file.
    hook.beforeRename = async (count) => {
      if (count !== 3) return;
      for (const name of DIRECTORIES) {
        if (existsSync(at('target', name, 'new.txt'))) continue;
        await rm(at('target', name), { recursive: true });
        await writeFile(at('target', name), 'in the way');
      }
    };
    const { createReadStream } = await import('node:fs');
    const refusal = files.extract('target', createReadStream(archive), {
      format: 'tar',
      maxBytes: 2 ** 30,
      maxEntries: 1000,
      maxExtractBytes: 2 ** 30,
    });
    await expect(refusal).rejects.toMatchObject({
      code: 'ERR_PATH_CHANGED',
      statusCode: 409,
      message: expect.stringMatching(/what was moved before stays/),
    });

    const merged: string[] = [];
    for (const name of DIRECTORIES) {
      if (existsSync(at('target', name, 'new.txt'))) {
        merged.push(name);
        expect((await readdir(at('target', name))).sort()).toEqual(['new.txt', 'old.txt']);
        expect(await readFile(at('target', name, 'new.txt'), 'utf8')).toBe(`new ${name}`);
      } else {
        expect(await readFile(at('target', name), 'utf8')).toBe('in the way');
      }
    }
    expect(merged).toHaveLength(2);
    expect(await readdir(root)).toEqual(['target']);
  });
});
