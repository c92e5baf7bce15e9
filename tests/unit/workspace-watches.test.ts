import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PathOutsideWorkspaceError, ShuttingDownError, TooManyWatchesError, WatchLimitError } from '../../server/errors.js';
import { WatchQueue } from '../../server/sandbox-files/watch-queue.js';
import type { WatchEvent } from '../../server/sandbox-files/types.js';
import { WorkspaceWatches, type WorkspaceWatch } from '../../server/workspace/watches.js';
import { Workspace } from '../../server/workspace/workspace.js';

async function collect(watch: WorkspaceWatch, until: (events: WatchEvent[]) => boolean): Promise<WatchEvent[]> {
  const events: WatchEvent[] = [];
  for await (const event of watch.events) {
    events.push(event);
    if (until(events)) break;
  }
  return events;
}

describe('WatchQueue', () => {
  it('ends with ELIMIT past its bound, after handing over what it holds, and releases its source once', async () => {
    let ended = 0;
    const queue = new WatchQueue(3, () => ended++);
    for (let index = 0; index < 10; index++) queue.push({ type: 'create', name: `f${index}` });
    expect(queue.waiting).toBe(3);
    expect(ended).toBe(1);
    const read: string[] = [];
    await expect(
      (async () => {
        for await (const event of queue.events) read.push(event.name);
      })(),
    ).rejects.toMatchObject({ code: 'ELIMIT' });
    expect(read).toEqual(['f0', 'f1', 'f2']);
    queue.close();
    expect(ended).toBe(1);
    expect(queue.push({ type: 'create', name: 'late' })).toBe(false);
  });

  it('coalesces a burst of writes to one name', () => {
    const queue = new WatchQueue(2, () => undefined);
    for (let index = 0; index < 10_000; index++) queue.push({ type: 'write', name: 'hot.log' });
    queue.push({ type: 'remove', name: 'hot.log' });
    expect(queue.waiting).toBe(2);
  });

  it('ends when its reader stops reading', async () => {
    let ended = 0;
    const queue = new WatchQueue(10, () => ended++);
    queue.push({ type: 'create', name: 'a' });
    queue.push({ type: 'create', name: 'b' });
    for await (const event of queue.events) {
      expect(event.name).toBe('a');
      break;
    }
    expect(ended).toBe(1);
  });
});

describe('WorkspaceWatches', () => {
  let root: string;
  let outside: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'watches-'));
    outside = await mkdtemp(path.join(tmpdir(), 'watches-outside-'));
    await mkdir(path.join(root, 'dir', 'a', 'b'), { recursive: true });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('holds at most MAX_WATCHES at once and gives a slot back when one ends', async () => {
    const watches = new WorkspaceWatches(new Workspace(root), { maxWatches: 2, maxDirectories: 100, maxQueuedEvents: 100 });
    const first = await watches.watch('dir', false);
    const second = await watches.watch('.', true);
    await expect(watches.watch('dir', false)).rejects.toBeInstanceOf(TooManyWatchesError);
    first.close();
    expect(watches.size).toBe(1);
    const third = await watches.watch('dir', false);
    second.close();
    third.close();
    expect(watches.size).toBe(0);
  });

  it('refuses a tree with more directories than the bound', async () => {
    const watches = new WorkspaceWatches(new Workspace(root), { maxWatches: 4, maxDirectories: 2, maxQueuedEvents: 100 });
    await expect(watches.watch('dir', true)).rejects.toBeInstanceOf(WatchLimitError);
    expect(watches.size).toBe(0);
    (await watches.watch('dir', false)).close();
  });

  it('refuses a link that leads outside, and never watches through one inside the tree', async () => {
    await symlink(outside, path.join(root, 'dir', 'out'));
    const watches = new WorkspaceWatches(new Workspace(root), { maxWatches: 4, maxDirectories: 100, maxQueuedEvents: 100 });
    await expect(watches.watch('dir/out', false)).rejects.toBeInstanceOf(PathOutsideWorkspaceError);
    const watch = await watches.watch('dir', true);
    await writeFile(path.join(outside, 'secret.txt'), 's');
    await writeFile(path.join(root, 'dir', 'a', 'inside.txt'), 'i');
    const events = await collect(watch, (seen) => seen.some((event) => event.name === 'a/inside.txt'));
    expect(events.some((event) => event.name.includes('secret'))).toBe(false);
    watch.close();
  });

  it('ends every watch at shutdown and refuses new ones', async () => {
    const watches = new WorkspaceWatches(new Workspace(root), { maxWatches: 4, maxDirectories: 100, maxQueuedEvents: 100 });
    const watch = await watches.watch('dir', true);
    const reading = collect(watch, () => false);
    watches.closeAll();
    await expect(reading).rejects.toBeInstanceOf(ShuttingDownError);
    expect(watches.size).toBe(0);
    await expect(watches.watch('dir', false)).rejects.toBeInstanceOf(ShuttingDownError);
  });
});
