import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile, appendFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DirectoryWatcher } from '../../server/sandbox-files/watcher.js';
import { SandboxFileError, type WatchEvent } from '../../server/sandbox-files/types.js';

// Real inotify on real temporary directories: each test waits for the events it expects (with a
// timeout), never for a fixed time.

let root: string;
const open: DirectoryWatcher[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'watcher-test-'));
});

afterEach(async () => {
  for (const watcher of open.splice(0)) watcher.close();
  await rm(root, { recursive: true, force: true });
});

interface Started {
  watcher: DirectoryWatcher;
  events: WatchEvent[];
  errors: SandboxFileError[];
}

async function watchRoot(options: { recursive?: boolean; maxDirectories?: number; maxPending?: number } = {}) {
  const events: WatchEvent[] = [];
  const errors: SandboxFileError[] = [];
  const watcher = await DirectoryWatcher.start(root, {
    recursive: options.recursive ?? false,
    maxDirectories: options.maxDirectories ?? 100,
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
    onEvent: (event) => events.push(event),
    onError: (error) => errors.push(error),
  });
  open.push(watcher);
  return { watcher, events, errors } satisfies Started;
}

const show = (events: WatchEvent[]) => events.map((event) => `${event.type} ${event.name}`);

/** The events with repeats in a row folded: one write can reach inotify as several. */
const folded = (events: WatchEvent[]) => show(events).filter((line, i, all) => i === 0 || all[i - 1] !== line);

async function until(check: () => void, timeout = 5_000): Promise<void> {
  await vi.waitFor(check, { timeout, interval: 10 });
}

async function waitForEvent(started: Started, line: string): Promise<void> {
  await until(() => expect(show(started.events)).toContain(line));
}

const watchHandles = () => process.getActiveResourcesInfo().filter((name) => name === 'FSEventWrap').length;

describe('DirectoryWatcher', () => {
  it('reports create, write, chmod, rename and remove, in the order they happened', async () => {
    const started = await watchRoot();
    let step = 0;
    // A marker created after each step is reported after every event of that step.
    const settle = async () => {
      await writeFile(join(root, `.step${++step}`), '');
      await waitForEvent(started, `create .step${step}`);
    };
    await writeFile(join(root, 'a.txt'), 'hello');
    await settle();
    await chmod(join(root, 'a.txt'), 0o600);
    await settle();
    await appendFile(join(root, 'a.txt'), ' world');
    await settle();
    await rename(join(root, 'a.txt'), join(root, 'b.txt'));
    await settle();
    await rm(join(root, 'b.txt'));
    await settle();
    expect(folded(started.events.filter((event) => !event.name.startsWith('.step')))).toEqual([
      'create a.txt',
      'write a.txt',
      'chmod a.txt',
      'write a.txt',
      'rename a.txt',
      'create b.txt',
      'write b.txt',
      'remove b.txt',
    ]);
    expect(started.errors).toEqual([]);
  });

  it('reports a chmod or write made just before a rename, under the old name, before the rename', async () => {
    await writeFile(join(root, 'a.txt'), 'hello');
    await writeFile(join(root, 'c.txt'), 'hello');
    const started = await watchRoot();
    // Back to back, as `chmod 600 a.txt && mv a.txt b.txt` does: the old name is gone before it
    // is looked at, and the moved inode tells what changed.
    chmodSync(join(root, 'a.txt'), 0o600);
    renameSync(join(root, 'a.txt'), join(root, 'b.txt'));
    appendFileSync(join(root, 'c.txt'), ' world');
    renameSync(join(root, 'c.txt'), join(root, 'd.txt'));
    await waitForEvent(started, 'create d.txt');
    expect(folded(started.events)).toEqual([
      'chmod a.txt',
      'rename a.txt',
      'create b.txt',
      'write b.txt',
      'write c.txt',
      'rename c.txt',
      'create d.txt',
      'write d.txt',
    ]);
  });

  it('keeps the order of changes to several names made at once', async () => {
    const started = await watchRoot();
    for (const name of ['one', 'two', 'three']) await mkdir(join(root, name));
    await rm(join(root, 'two'), { recursive: true });
    await waitForEvent(started, 'remove two');
    expect(show(started.events)).toEqual(['create one', 'create two', 'create three', 'remove two']);
  });

  it('reports a file replaced by a rename over it as created and written, not removed', async () => {
    await writeFile(join(root, 'data.json'), '{}');
    const started = await watchRoot();
    // What an atomic writer does: a temporary file beside the target, renamed over it.
    await writeFile(join(root, '.data.json.tmp'), '{"a":1}');
    await rename(join(root, '.data.json.tmp'), join(root, 'data.json'));
    await waitForEvent(started, 'write data.json');
    expect(show(started.events)).not.toContain('remove data.json');
    expect(show(started.events)).toContain('create data.json');
  });

  it('reports a symlink as an entry of its own and does not follow it', async () => {
    await mkdir(join(root, 'target'));
    const started = await watchRoot({ recursive: true });
    await symlink(join(root, 'target'), join(root, 'link'));
    await waitForEvent(started, 'create link');
    await writeFile(join(root, 'target', 'f'), 'x');
    await waitForEvent(started, 'create target/f');
    expect(show(started.events).some((line) => line.includes('link/'))).toBe(false);
  });

  it('reports a change two levels down only when recursive', async () => {
    await mkdir(join(root, 'a', 'b'), { recursive: true });
    await writeFile(join(root, 'a', 'b', 'deep.txt'), 'one');
    const flat = await watchRoot();
    const deep = await watchRoot({ recursive: true });
    await writeFile(join(root, 'a', 'b', 'deep.txt'), 'two!');
    await writeFile(join(root, 'top.txt'), 'marker');
    await waitForEvent(deep, 'write a/b/deep.txt');
    await waitForEvent(flat, 'create top.txt');
    await waitForEvent(deep, 'create top.txt');
    expect(show(flat.events).filter((line) => line.includes('deep'))).toEqual([]);
    expect(flat.watcher.watchedDirectories).toBe(1);
    expect(deep.watcher.watchedDirectories).toBe(3);
  });

  it('picks up a new subdirectory, reporting what it already holds, and renames within the tree', async () => {
    const started = await watchRoot({ recursive: true });
    await mkdir(join(root, 'sub'));
    await waitForEvent(started, 'create sub');
    await writeFile(join(root, 'sub', 'f.txt'), 'x');
    await waitForEvent(started, 'write sub/f.txt');

    // Created faster than a watch can be put on each level: the listing reports them.
    const outside = await mkdtemp(join(tmpdir(), 'watcher-outside-'));
    await mkdir(join(outside, 'x', 'y', 'z'), { recursive: true });
    await writeFile(join(outside, 'x', 'y', 'z', 'g.txt'), 'g');
    await rename(join(outside, 'x'), join(root, 'x'));
    await rm(outside, { recursive: true });
    for (const line of ['create x', 'create x/y', 'create x/y/z', 'create x/y/z/g.txt']) {
      await waitForEvent(started, line);
    }
    await writeFile(join(root, 'x', 'y', 'z', 'h.txt'), 'h');
    await waitForEvent(started, 'create x/y/z/h.txt');

    await rename(join(root, 'sub'), join(root, 'moved'));
    await waitForEvent(started, 'create moved');
    expect(show(started.events)).toContain('rename sub');
    await writeFile(join(root, 'moved', 'f.txt'), 'changed');
    await waitForEvent(started, 'write moved/f.txt');
    expect(started.watcher.watchedDirectories).toBe(5);

    await rm(join(root, 'x'), { recursive: true });
    await waitForEvent(started, 'remove x');
    const removals = show(started.events).filter((line) => line.startsWith('remove'));
    // What is inside a directory goes before it; the files' order is rm's.
    expect(removals.slice(0, 2).sort()).toEqual(['remove x/y/z/g.txt', 'remove x/y/z/h.txt']);
    expect(removals.slice(2)).toEqual(['remove x/y/z', 'remove x/y', 'remove x']);
    expect(started.watcher.watchedDirectories).toBe(2);
    expect(started.errors).toEqual([]);
  });

  it('follows a file moved between directories when recursive; one moved out is removed', async () => {
    await mkdir(join(root, 'sub'));
    await writeFile(join(root, 'a.txt'), 'a');
    await writeFile(join(root, 'b.txt'), 'b');
    const deep = await watchRoot({ recursive: true });
    const flat = await watchRoot();
    await rename(join(root, 'a.txt'), join(root, 'sub', 'a.txt'));
    await waitForEvent(deep, 'create sub/a.txt');
    await waitForEvent(flat, 'remove a.txt');
    expect(show(deep.events)).toEqual(['rename a.txt', 'create sub/a.txt', 'write sub/a.txt']);

    const outside = await mkdtemp(join(tmpdir(), 'watcher-outside-'));
    await rename(join(root, 'sub'), join(outside, 'sub'));
    await waitForEvent(deep, 'remove sub');
    expect(deep.watcher.watchedDirectories).toBe(1);
    // The moved directory is no longer watched: a change in it says nothing.
    await writeFile(join(outside, 'sub', 'later.txt'), 'x');
    await writeFile(join(root, 'marker'), '');
    await waitForEvent(deep, 'create marker');
    expect(show(deep.events).some((line) => line.includes('later'))).toBe(false);
    await rm(outside, { recursive: true });
  });

  it('stops with ELIMIT when it would remember more entries than maxEntries', async () => {
    for (let i = 0; i < 5; i++) await writeFile(join(root, `f${i}`), 'x');
    const options = { recursive: false, maxDirectories: 10, onEvent: () => {}, onError: () => {} };
    await expect(DirectoryWatcher.start(root, { ...options, maxEntries: 4 })).rejects.toMatchObject({
      code: 'ELIMIT',
      message: expect.stringContaining('more than 4 entries'),
    });
    const errors: SandboxFileError[] = [];
    const watcher = await DirectoryWatcher.start(root, { ...options, maxEntries: 6, onError: (error) => errors.push(error) });
    open.push(watcher);
    await writeFile(join(root, 'f5'), 'x');
    await writeFile(join(root, 'f6'), 'x');
    await until(() => expect(errors.map((error) => error.code)).toEqual(['ELIMIT']));
    expect(watcher.watchedDirectories).toBe(0);
  });

  it('stops with ELIMIT when the tree grows past maxDirectories', async () => {
    await mkdir(join(root, 'one'));
    const before = watchHandles();
    const started = await watchRoot({ recursive: true, maxDirectories: 3 });
    await mkdir(join(root, 'two'));
    await waitForEvent(started, 'create two');
    await mkdir(join(root, 'three'));
    await until(() => expect(started.errors).toHaveLength(1));
    expect(started.errors[0]).toBeInstanceOf(SandboxFileError);
    expect(started.errors[0]!.code).toBe('ELIMIT');
    expect(started.errors[0]!.message).toContain('more than 3 directories');
    expect(started.watcher.watchedDirectories).toBe(0);
    await until(() => expect(watchHandles()).toBe(before));
    await writeFile(join(root, 'after.txt'), 'x');
    const count = started.events.length;
    const barrier = await watchRoot();
    await writeFile(join(root, 'after2.txt'), 'x');
    await waitForEvent(barrier, 'create after2.txt');
    expect(started.events).toHaveLength(count);
  });

  it('refuses to start on a tree already past maxDirectories, leaving nothing open', async () => {
    await mkdir(join(root, 'a', 'b', 'c'), { recursive: true });
    const before = watchHandles();
    const error = await DirectoryWatcher.start(root, {
      recursive: true,
      maxDirectories: 2,
      onEvent: () => {},
      onError: () => {},
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SandboxFileError);
    expect((error as SandboxFileError).code).toBe('ELIMIT');
    await until(() => expect(watchHandles()).toBe(before));
    // Not recursive, the same tree is one directory.
    await expect(watchRoot({ maxDirectories: 1 })).resolves.toBeDefined();
  });

  it('reports 10,000 files created in a burst without losing any or growing without bound', async () => {
    const started = await watchRoot();
    const heapBefore = process.memoryUsage().heapUsed;
    const creator = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); for (let i = 0; i < 10000; i++) fs.writeFileSync(${JSON.stringify(root)} + '/f' + i, 'x');`,
    ]);
    await new Promise((resolve) => creator.on('exit', resolve));
    const created = () => new Set(started.events.filter((e) => e.type === 'create').map((e) => e.name)).size;
    await until(() => expect(created()).toBe(10_000), 30_000);
    expect(started.errors).toEqual([]);
    // Each event is reported once per kind: a create and a write per file, at most a few more.
    expect(started.events.length).toBeLessThan(25_000);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200 * 1024 * 1024);
  }, 60_000);

  it('loses no name when the kernel queue overflows while the thread is busy', async () => {
    await writeFile(join(root, 'kept.txt'), 'x');
    await writeFile(join(root, 'changed.txt'), 'x');
    await writeFile(join(root, 'removed.txt'), 'x');
    const started = await watchRoot();
    // Far more events than fs.inotify.max_queued_events (16,384 by default) while nothing reads
    // them: the kernel drops the rest, and fs.watch says nothing of it.
    for (let i = 0; i < 12_000; i++) writeFileSync(join(root, `f${i}`), 'x');
    writeFileSync(join(root, 'changed.txt'), 'longer');
    rmSync(join(root, 'removed.txt'));
    const created = () => new Set(started.events.filter((e) => e.type === 'create').map((e) => e.name));
    await until(() => expect(created().size).toBe(12_000), 30_000);
    await waitForEvent(started, 'write changed.txt');
    await waitForEvent(started, 'remove removed.txt');
    expect(show(started.events).filter((line) => line.endsWith('kept.txt'))).toEqual([]);
    expect(started.errors).toEqual([]);
  }, 60_000);

  it('fails with ELIMIT, and does not crash, when more names wait than maxPending allows', async () => {
    const started = await watchRoot({ maxPending: 50 });
    // Written while this thread is busy, so that the kernel hands them over in one read.
    for (let i = 0; i < 500; i++) writeFileSync(join(root, `f${i}`), 'x');
    await until(() => expect(started.errors.map((error) => error.code)).toEqual(['ELIMIT']));
    expect(started.errors[0]!.message).toContain('more than 50');
    expect(started.watcher.watchedDirectories).toBe(0);
  });

  it('reports nothing after close() and releases every watch handle', async () => {
    await mkdir(join(root, 'a', 'b'), { recursive: true });
    const before = watchHandles();
    const started = await watchRoot({ recursive: true });
    expect(watchHandles()).toBe(before + 3);
    await writeFile(join(root, 'a', 'one.txt'), 'x');
    await waitForEvent(started, 'create a/one.txt');
    started.watcher.close();
    await until(() => expect(watchHandles()).toBe(before));
    const count = started.events.length;
    const barrier = await watchRoot({ recursive: true });
    await writeFile(join(root, 'a', 'two.txt'), 'x');
    await writeFile(join(root, 'a', 'b', 'three.txt'), 'x');
    await waitForEvent(barrier, 'create a/b/three.txt');
    expect(started.events).toHaveLength(count);
    expect(started.errors).toEqual([]);
  });

  it('reports the watched directory removed as ".", then stays silent', async () => {
    await writeFile(join(root, 'inside.txt'), 'x');
    const before = watchHandles();
    const started = await watchRoot({ recursive: true });
    await chmod(root, 0o750);
    await waitForEvent(started, 'chmod .');
    started.events.length = 0;
    await rm(root, { recursive: true });
    await waitForEvent(started, 'remove .');
    expect(show(started.events)).toEqual(['remove inside.txt', 'remove .']);
    expect(started.errors).toEqual([]);
    await until(() => expect(watchHandles()).toBe(before));
  });

  it('rejects a path that is not a directory with ENOTDIR, and a missing one with ENOENT', async () => {
    const options = { recursive: false, maxDirectories: 10, onEvent: () => {}, onError: () => {} };
    await writeFile(join(root, 'file.txt'), 'x');
    await expect(DirectoryWatcher.start(join(root, 'file.txt'), options)).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(DirectoryWatcher.start(join(root, 'missing'), options)).rejects.toMatchObject({
      code: 'ENOENT',
      message: expect.stringContaining('missing'),
    });
    await expect(DirectoryWatcher.start(root, { ...options, maxDirectories: 0 })).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('maxDirectories'),
    });
  });
});
