import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ArchiveFormat } from '../../server/workspace/archive.js';
import { readersInUse } from '../../server/workspace/archive-reader.js';
import { WorkspaceFiles } from '../../server/workspace/files.js';
import { startSwapRace } from '../helpers/swap-race.js';
import { snapshot } from '../helpers/tree.js';

let base: string;
let root: string;
let outside: string;
let files: WorkspaceFiles;

const at = (...parts: string[]) => path.join(root, ...parts);

/** Downloads `raw` as an archive to a file and lists it with GNU tar. */
async function download(raw: string, format: ArchiveFormat): Promise<string> {
  const archive = await files.archive(raw, format);
  const file = path.join(base, `download-${randomBytes(4).toString('hex')}.${format}`);
  await pipeline(archive.stream, createWriteStream(file));
  return file;
}

const tarList = (file: string) => execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();

async function extractWithTar(file: string): Promise<string> {
  const into = await mkdtemp(path.join(base, 'extracted-'));
  execFileSync('tar', ['-xf', file, '-C', into]);
  return into;
}

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-archive-'));
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

async function tree(): Promise<void> {
  await mkdir(at('proj/empty/also-empty'), { recursive: true });
  await mkdir(at('proj/data'), { recursive: true });
  await writeFile(at('proj/data/blob.bin'), randomBytes(2 * 1024 * 1024 + 13));
  await writeFile(at('proj/data/zero.bin'), '');
  await writeFile(at('proj/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await writeFile(at('proj/\u00e9t\u00e9 \u6587\u5b57 \ud83d\ude80.txt'), 'unicode');
  const long = `${'n'.repeat(200)}.txt`;
  await mkdir(at('proj', 'd'.repeat(120)));
  await writeFile(at('proj', 'd'.repeat(120), long), 'long path');
  await symlink('data/blob.bin', at('proj/link-to-blob'));
  await symlink('../proj/data', at('proj/link-to-dir'));
  await symlink('missing-but-inside', at('proj/dangling-inside'));
}

describe('archive', () => {
  it.each(['tar', 'tar.gz'] as const)(
    'round-trips a tree through GNU tar (%s): bytes, modes, empty dirs, links, long and Unicode names',
    async (format) => {
      await tree();
      const file = await download('proj', format);
      const extracted = await extractWithTar(file);
      expect(await snapshot(extracted)).toEqual(await snapshot(at('proj')));
    },
  );

  it('leaves out FIFOs, links that lead out, names that are not UTF-8 or hold control characters, and uploads in progress', async () => {
    await mkdir(at('proj'));
    await writeFile(at('proj/kept.txt'), 'kept');
    execFileSync('mkfifo', [at('proj/fifo')]);
    await symlink(outside, at('proj/out-dir'));
    await symlink('../../outside/secret.txt', at('proj/out-relative'));
    await symlink('/etc/passwd', at('proj/passwd'));
    await writeFile(Buffer.concat([Buffer.from(`${at('proj')}/`), Buffer.from([0x63, 0x61, 0x66, 0xe9])]), 'latin-1');
    await writeFile(at('proj/tab\there'), '');
    await writeFile(at('proj/.upload-0123456789abcdef01234567.part'), 'partial');
    expect(tarList(await download('proj', 'tar'))).toEqual(['kept.txt']);
  });

  it('judges links by where they resolve: one that climbs out through another link stays out', async () => {
    await mkdir(at('proj'));
    await symlink('.', at('proj/d'));
    const out = `${'d/'.repeat(8)}${'../'.repeat(8)}etc`;
    await symlink(out, at('proj/etc'));
    await mkdir(at('proj/real/d/d/d/d/d/d/d/d'), { recursive: true });
    await symlink(out, at('proj/real/etc'));
    const names = tarList(await download('proj', 'tar'));
    expect(names).toContain('d');
    expect(names).toContain('real/etc');
    expect(names).not.toContain('etc');
  });

  it('archives the workspace root, and refuses files, missing paths and links out', async () => {
    await writeFile(at('top.txt'), 'top');
    expect(tarList(await download('.', 'tar.gz'))).toEqual(['top.txt']);
    await symlink(outside, at('out'));
    await expect(files.archive('top.txt', 'tar')).rejects.toMatchObject({ code: 'ERR_NOT_A_DIRECTORY', statusCode: 400 });
    await expect(files.archive('missing', 'tar')).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND', statusCode: 404 });
    await expect(files.archive('out', 'tar')).rejects.toMatchObject({ code: 'ERR_PATH_OUTSIDE_WORKSPACE', statusCode: 400 });
  });

  it('reads runs of files in a thread of its own, and archives the same bytes when no thread is free', { timeout: 60_000 }, async () => {
    // Directories of many small files (the thread's jobs), files past the inline size (handed
    // back open), a link with a target too long for ustar (a pax record), an empty file.
    for (let d = 0; d < 3; d++) {
      await mkdir(at('many', `d${d}`), { recursive: true });
      for (let f = 0; f < 150; f++) await writeFile(at('many', `d${d}`, `f${f}.txt`), randomBytes((d * 150 + f) * 37));
    }
    await writeFile(at('many/d1/large.bin'), randomBytes(3 * 1024 * 1024 + 7));
    await writeFile(at('many/d1/empty'), '');
    await symlink(`${'./'.repeat(80)}d0/f1.txt`, at('many/d2/long-link'));
    const idle = readersInUse();

    const threadedFile = await download('many', 'tar');
    const threaded = await readFile(threadedFile);
    expect(readersInUse()).toBe(idle);
    const into = await extractWithTar(threadedFile);
    expect(await snapshot(into)).toEqual(await snapshot(at('many')));

    // Two archives left unread hold both threads: a third reads in the main thread's way.
    const held = [await files.archive('many', 'tar'), await files.archive('many', 'tar')];
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(readersInUse()).toBe(idle + 2);
    const fallback = await readFile(await download('many', 'tar'));
    expect(fallback.equals(threaded)).toBe(true);
    for (const archive of held) archive.stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(readersInUse()).toBe(idle);
  });

  it('stops reading the tree when the reader goes away', async () => {
    await mkdir(at('big'));
    for (let i = 0; i < 20; i++) await writeFile(at('big', `f${i}`), randomBytes(1024 * 1024));
    const archive = await files.archive('big', 'tar');
    let received = 0;
    for await (const chunk of archive.stream) {
      received += (chunk as Buffer).length;
      if (received > 2 * 1024 * 1024) break;
    }
    expect(archive.stream.destroyed).toBe(true);
    // The tree can be deleted at once: no descriptor is left holding it up, nothing hangs.
    await files.remove('big');
  });

  it('never archives what is outside while a directory is swapped for a link to outside', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 200; i++) await writeFile(path.join(outside, `OUTSIDE-${i}`), 'outside');
    await mkdir(at('proj/d'), { recursive: true });
    for (let i = 0; i < 200; i++) await writeFile(at('proj/d', `inside-${i}`), 'inside');
    await symlink(outside, at('proj/l'));
    const racer = await startSwapRace(at('proj/d'), at('proj/l'));
    try {
      for (let round = 0; round < 30; round++) {
        const names = tarList(await download('proj', 'tar'));
        expect(names.filter((name) => name.includes('OUTSIDE') || name.includes('secret'))).toEqual([]);
      }
    } finally {
      racer.kill('SIGKILL');
    }
  });
});
