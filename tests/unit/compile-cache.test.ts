import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheDirectoryProblem } from '../../server/compile-cache.js';

let scratch: string;
beforeEach(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'compile-cache-'));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('the compile cache directory', () => {
  it('is created for this user alone when missing', async () => {
    const directory = path.join(scratch, 'cache');
    expect(cacheDirectoryProblem(directory)).toBeUndefined();
    const info = await stat(directory);
    expect(info.isDirectory()).toBe(true);
    expect(info.mode & 0o777).toBe(0o700);
  });

  it('is used again when it is already there and private', async () => {
    const directory = path.join(scratch, 'cache');
    await mkdir(directory, { mode: 0o700 });
    expect(cacheDirectoryProblem(directory)).toBeUndefined();
  });

  it('is refused when others may write to it: code planted there would run as the API', async () => {
    const directory = path.join(scratch, 'cache');
    await mkdir(directory);
    await chmod(directory, 0o777);
    expect(cacheDirectoryProblem(directory)).toBe('can be written by other users');
    await chmod(directory, 0o770);
    expect(cacheDirectoryProblem(directory)).toBe('can be written by other users');
  });

  it('is refused when it is a symbolic link, even to a private directory', async () => {
    const target = path.join(scratch, 'elsewhere');
    await mkdir(target, { mode: 0o700 });
    await symlink(target, path.join(scratch, 'cache'));
    expect(cacheDirectoryProblem(path.join(scratch, 'cache'))).toBe('is not a directory');
  });

  it('is refused, without throwing, when it cannot be created', async () => {
    await writeFile(path.join(scratch, 'a-file'), 'x');
    expect(cacheDirectoryProblem(path.join(scratch, 'a-file', 'cache'))).toMatch(/^cannot be created: .*ENOTDIR/);
    expect(cacheDirectoryProblem(path.join(scratch, 'a-file'))).toBe('is not a directory');
  });
});
