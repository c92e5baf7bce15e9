import { readFileSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { FILE_ERROR_CODES, SandboxFileError, type FileErrorCode, type WatchEvent } from './types.js';

/**
 * The directory watcher behind envd's WatchDir, run in the process host so that it sees what
 * the kernels' user sees. It reports what e2b's envd (fsnotify over inotify) reports: create,
 * write, remove, rename (the old name; the new name gets a create) and chmod, names relative to
 * the watched directory, in the order the changes happened.
 *
 * The engine is Node's own fs.watch, one handle per directory, rather than a watcher library:
 * chokidar and @parcel/watcher both fold inotify's events into add/change/unlink, which loses
 * chmod and rename, the two kinds envd has and they do not; and neither is a dependency here.
 * fs.watch is libuv's inotify binding, which itself folds IN_ATTRIB and IN_MODIFY into 'change'
 * and every create, delete and move into 'rename'. The kinds are recovered by comparing what
 * lstat says now with what was known of each name (device, inode, birth time, mode, size, times):
 * a known inode that left one name and turned up under another in the same batch (or the next,
 * when a kernel read fell between the two halves of a rename) was renamed; a mode that changed is
 * a chmod; a size or mtime that changed is a write. Events are batched per kernel read, and
 * repeated events for one name within a batch fold into one.
 *
 * Recursive watches put one fs.watch on each directory; a directory that appears is watched and
 * what it already holds is reported as created (it may have filled before its watch was in
 * place). Symlinks are entries, never followed; a directory this user cannot read is reported
 * but not watched.
 *
 * What this cannot tell apart, and how it is reported:
 * - a name moved out of the watched tree looks deleted: remove (envd: rename), and a write or
 *   chmod just before such a move is not reported; just before a move within the tree, each
 *   kind is reported once under the old name, whatever number of them there were;
 * - a file that came and went between two batches (a writer's temporary file) is not reported;
 * - a file with content that appears under a name, new or replacing another, is a create then a
 *   write, also when it was renamed there: an atomic writer (a temporary file renamed over the
 *   target) then looks like envd's in-place write, whose create and write e2b's clients wait for.
 * The kernel's queue overflowing (more than fs.inotify.max_queued_events unread, say while this
 * thread was busy) is not visible through fs.watch, which drops the kernel's notice: when one turn
 * of the event loop brings nearly that many events, every watch looks at all its directories
 * again once things calm down and reports the differences, so a burst loses no name, only the
 * detail of what happened in between.
 *
 * The watched directory itself is named '.', as envd names it: its mode changing is `chmod .`;
 * when it is removed or moved away, the watch reports `remove .` and then stays silent until
 * closed, as envd's stream does.
 */

export interface DirectoryWatcherOptions {
  recursive: boolean;
  /** Directories watched at once (the root included); past it the watch fails with ELIMIT. */
  maxDirectories: number;
  onEvent(event: WatchEvent): void;
  /** Called at most once; the watch has then ended and released everything. */
  onError(error: SandboxFileError): void;
  /** Names remembered across the watched directories (default DEFAULT_MAX_ENTRIES). */
  maxEntries?: number;
  /** Changed names waiting to be looked at (default DEFAULT_MAX_PENDING). */
  maxPending?: number;
}

/** About 250 bytes each: the memory one watch may hold for what it knows of its entries. */
export const DEFAULT_MAX_ENTRIES = 200_000;
/** Above the kernel's default queue (16,384 events), so that a burst it delivers fits whole. */
export const DEFAULT_MAX_PENDING = 65_536;
/** How long a name that vanished waits for a new name to show up with its inode (a rename). */
const RENAME_GRACE_MS = 5;
/** lstat calls in flight at once for one watch, so a burst does not fill libuv's thread pool. */
const STAT_CONCURRENCY = 16;

/** Events read in one turn of the event loop past which the kernel's queue may have overflowed. */
function overflowThreshold(): number {
  let queued = 16_384;
  try {
    queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim()) || queued;
  } catch {
    // not Linux, or /proc unreadable: the kernel's default
  }
  return Math.floor(queued * 0.75);
}

/**
 * libuv reads every fs.watch handle of the process from one inotify descriptor, so one queue
 * overflows for all the watches: the count is the process's, and every watch rescans.
 */
const overflow = {
  threshold: 0,
  seen: 0,
  resetting: false,
  rescans: new Set<() => void>(),
  count(): void {
    if (this.threshold === 0) this.threshold = overflowThreshold();
    if (!this.resetting) {
      this.resetting = true;
      // The check phase follows the poll phase that delivered this turn's events.
      setImmediate(() => {
        this.resetting = false;
        this.seen = 0;
      });
    }
    if (++this.seen === this.threshold) for (const rescan of this.rescans) rescan();
  },
};

type Kind = 'file' | 'directory' | 'symlink' | 'other';

/** What is known of one name: enough to tell a changed file from a replaced or renamed one. */
interface Entry {
  dev: number;
  ino: number;
  kind: Kind;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  birthtimeMs: number;
}

function toEntry(stats: Stats): Entry {
  return {
    dev: stats.dev,
    ino: stats.ino,
    kind: stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink' : 'other',
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    mtimeMs: stats.mtimeMs,
    ctimeMs: stats.ctimeMs,
    birthtimeMs: stats.birthtimeMs,
  };
}

/** The same file: inode numbers are reused at once on most filesystems, birth times are not. */
function sameFile(a: Entry, b: Entry): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.kind === b.kind &&
    (a.birthtimeMs === 0 || b.birthtimeMs === 0 || a.birthtimeMs === b.birthtimeMs)
  );
}

/**
 * The same file under a new name. Without birth times, a rename still keeps a file's mtime, which
 * a new file that got a freed inode number almost never has (a directory's mtime follows its
 * entries, so it is no help there).
 */
function renamedFrom(before: Entry, now: Entry): boolean {
  if (!sameFile(before, now)) return false;
  return (before.birthtimeMs !== 0 && now.birthtimeMs !== 0) || now.kind === 'directory' || before.mtimeMs === now.mtimeMs;
}

function fileErrorCode(error: unknown): FileErrorCode {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (FILE_ERROR_CODES as readonly string[]).includes(code ?? '') ? (code as FileErrorCode) : 'EIO';
}

function toFileError(error: unknown, what: string): SandboxFileError {
  if (error instanceof SandboxFileError) return error;
  const code = fileErrorCode(error);
  const reason = code === 'ENOENT' ? 'no such file or directory' : (error as Error).message;
  return new SandboxFileError(code, `${what}: ${reason}`);
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function isUnder(rel: string, dir: string): boolean {
  return rel === dir || (rel.startsWith(dir) && rel[dir.length] === '/');
}

/** Runs `task` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

class Directory {
  private static lastId = 0;
  readonly id = ++Directory.lastId;
  readonly entries = new Map<string, Entry>();
  handle: FSWatcher | null = null;
  /** libuv names the directory's own events (its deletion, its move) after the path it watched. */
  watchedName = '';
  detached = false;
  /**
   * Known names whose write or attribute change was read when they were gone already, their
   * move still to come: when it comes, the moved file tells what that change was.
   */
  readonly changedBeforeGone = new Set<string>();

  constructor(public rel: string) {}
}

/** One changed name, its events folded together until the batch it is in is looked at. */
interface Change {
  key: string;
  dir: Directory;
  name: string;
  /** IN_ATTRIB or IN_MODIFY. */
  change: boolean;
  /** Created, deleted or moved. */
  rename: boolean;
  done: boolean;
  /** Held back once already, waiting for the other half of a rename. */
  waited: boolean;
  /** Made up by a rescan rather than reported by the kernel: no event was seen for it. */
  rescan?: boolean;
  now: Entry | null;
  /** This name's inode now lives at `movedTo` (same batch): a rename. */
  movedTo?: Change;
  movedFrom?: Change;
  /** The directories under a renamed directory, carried over to its new name. */
  movedDirs?: Directory[];
}

export class DirectoryWatcher {
  private readonly dirs = new Map<string, Directory>();
  private pending = new Map<string, Change>();
  /** Changes held back to the next batch (see process()), in the order they happened. */
  private heldBack: Change[] = [];
  private wake: (() => void) | null = null;
  private rescanWanted = false;
  private readonly wantRescan = () => {
    this.rescanWanted = true;
    this.schedule();
  };
  private state: 'starting' | 'running' | 'ended' | 'closed' = 'starting';
  private draining = false;
  private scheduled = false;
  private knownEntries = 0;
  private readonly maxEntries: number;
  private readonly maxPending: number;

  private constructor(
    private readonly rootPath: string,
    private root: Entry,
    private readonly options: DirectoryWatcherOptions,
  ) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  /** Resolves once every directory is watched; ENOENT, ENOTDIR, ELIMIT (too many directories). */
  static async start(root: string, options: DirectoryWatcherOptions): Promise<DirectoryWatcher> {
    for (const key of ['maxDirectories', 'maxEntries', 'maxPending'] as const) {
      const value = options[key];
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
        throw new SandboxFileError('EINVAL', `${key} must be a positive integer, not ${String(value)}`);
      }
    }
    let stats: Stats;
    let rootPath: string;
    try {
      stats = await stat(root);
      if (!stats.isDirectory()) throw new SandboxFileError('ENOTDIR', `${root}: not a directory`);
      rootPath = await realpath(root);
      stats = await lstat(rootPath);
    } catch (error) {
      throw toFileError(error, root);
    }
    const watcher = new DirectoryWatcher(rootPath, toEntry(stats), options);
    try {
      await watcher.addDirectory('', false);
    } catch (error) {
      watcher.release();
      throw toFileError(error, root);
    }
    watcher.state = 'running';
    overflow.rescans.add(watcher.wantRescan);
    watcher.schedule();
    return watcher;
  }

  /** Stops the watch: no event or error is reported after this, and every handle is released. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.release();
  }

  /** The directories watched now (for tests and diagnostics). */
  get watchedDirectories(): number {
    return this.dirs.size;
  }

  private release(): void {
    for (const dir of this.dirs.values()) this.unwatch(dir);
    this.dirs.clear();
    this.pending = new Map();
    this.heldBack = [];
    overflow.rescans.delete(this.wantRescan);
  }

  private unwatch(dir: Directory): void {
    dir.detached = true;
    dir.handle?.close();
    dir.handle = null;
    this.knownEntries -= dir.entries.size;
  }

  private get active(): boolean {
    return this.state === 'starting' || this.state === 'running';
  }

  private fail(error: SandboxFileError): void {
    if (!this.active) return;
    this.state = 'ended';
    this.release();
    this.options.onError(error);
  }

  private emit(type: WatchEvent['type'], name: string): void {
    if (this.state === 'running') this.options.onEvent({ type, name });
  }

  private remember(dir: Directory, name: string, entry: Entry): void {
    if (!dir.entries.has(name)) {
      if (this.knownEntries >= this.maxEntries) {
        throw new SandboxFileError('ELIMIT', `the watch would track more than ${this.maxEntries} entries`);
      }
      this.knownEntries++;
    }
    dir.entries.set(name, entry);
  }

  private forget(dir: Directory, name: string): void {
    if (dir.entries.delete(name)) this.knownEntries--;
    dir.changedBeforeGone.delete(name);
  }

  private onRaw(dir: Directory, eventType: string, filename: string | Buffer | null): void {
    overflow.count();
    if (!this.active || dir.detached || filename === null) return;
    const name = filename.toString();
    const key = `${dir.id}/${name}`;
    let change = this.pending.get(key);
    if (!change) {
      if (this.pending.size >= this.maxPending) {
        this.fail(new SandboxFileError('ELIMIT', `more than ${this.maxPending} changed names waited to be reported at once`));
        return;
      }
      change = { key, dir, name, change: false, rename: false, done: false, waited: false, now: null };
      this.pending.set(key, change);
    }
    if (eventType === 'change') change.change = true;
    else change.rename = true;
    if (this.wake) this.wake();
    else this.schedule();
  }

  private schedule(): void {
    if (this.state !== 'running' || this.draining || this.scheduled) return;
    if (this.pending.size === 0 && !this.rescanWanted) return;
    this.scheduled = true;
    // The events libuv read from the kernel in one go arrive before this runs: one batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.state === 'running' && (this.pending.size > 0 || this.heldBack.length > 0 || this.rescanWanted)) {
        if (this.pending.size === 0 && this.heldBack.length === 0) {
          this.rescanWanted = false;
          await this.process(await this.rescanBatch());
          continue;
        }
        if (this.pending.size === 0) await this.grace();
        if (this.state !== 'running') break;
        const batch = this.heldBack;
        this.heldBack = [];
        const held = new Map(batch.map((change) => [change.key, change]));
        for (const change of this.pending.values()) {
          const earlier = held.get(change.key);
          if (earlier) {
            earlier.change ||= change.change;
            earlier.rename ||= change.rename;
          } else batch.push(change);
        }
        this.pending = new Map();
        await this.process(batch);
      }
    } catch (error) {
      this.fail(toFileError(error, 'watching'));
    } finally {
      this.draining = false;
    }
    this.schedule();
  }

  /**
   * Waits for more events, or RENAME_GRACE_MS. Either way it resumes from setImmediate, after
   * libuv's poll phase, so that whatever the kernel had queued by then has been read and the
   * events of one read are never split.
   */
  private grace(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        setImmediate(resolve);
      };
      const timer = setTimeout(done, RENAME_GRACE_MS);
      this.wake = done;
    });
  }

  /** Every name known or present in every watched directory, to be looked at afresh. */
  private async rescanBatch(): Promise<Change[]> {
    const batch: Change[] = [];
    for (const dir of [...this.dirs.values()]) {
      const present = await readdir(this.absolute(dir.rel)).catch(() => [] as string[]);
      for (const name of new Set([...dir.entries.keys(), ...present])) {
        if (batch.length >= this.maxEntries + this.maxPending) {
          throw new SandboxFileError('ELIMIT', `more than ${this.maxEntries + this.maxPending} names to look at again after a burst`);
        }
        // Waited already: every name is in this batch, so both halves of a rename are too.
        batch.push({ key: `${dir.id}/${name}`, dir, name, change: true, rename: true, done: false, waited: true, rescan: true, now: null });
      }
    }
    return batch;
  }

  private absolute(rel: string): string {
    return rel === '' ? this.rootPath : join(this.rootPath, rel);
  }

  private async process(batch: Change[]): Promise<void> {
    const changes = batch.filter((change) => !change.dir.detached);
    const [rootNow] = await Promise.all([
      lstat(this.rootPath).then(toEntry, () => null),
      eachLimited(changes, STAT_CONCURRENCY, async (change) => {
        change.now = await lstat(join(this.absolute(change.dir.rel), change.name)).then(toEntry, () => null);
      }),
    ]);
    this.pairRenames(changes);
    for (let i = 0; i < changes.length; i++) {
      if (this.state !== 'running') return;
      const change = changes[i]!;
      if (!change.done && !change.waited && this.mayBeHalfARename(change)) {
        // rename(2) queues IN_MOVED_FROM and IN_MOVED_TO one after the other, and a read can
        // fall between them: the new name may be in the next read. Hold this name, and what
        // followed it, back to the next batch, once.
        this.heldBack = changes.slice(i).filter((later) => !later.done);
        for (const later of this.heldBack) {
          later.waited = true;
          later.now = null;
          delete later.movedTo;
          delete later.movedFrom;
        }
        return;
      }
      await this.classify(change, changes);
    }
    if (this.state !== 'running') return;
    if (rootNow === null || !sameFile(rootNow, this.root)) {
      this.emit('remove', '.');
      this.state = 'ended';
      this.release();
    } else if (rootNow.mode !== this.root.mode || rootNow.uid !== this.root.uid || rootNow.gid !== this.root.gid) {
      this.emit('chmod', '.');
      this.root = rootNow;
    }
  }

  private mayBeHalfARename(change: Change): boolean {
    return change.rename && change.now === null && !change.movedTo && change.dir.entries.has(change.name);
  }

  /** A known inode that left its name and shows up under a new one in the same batch was moved. */
  private pairRenames(changes: Change[]): void {
    const gone = new Map<string, Change>();
    for (const change of changes) {
      const before = change.dir.entries.get(change.name);
      if (before && (change.now === null || !sameFile(before, change.now))) gone.set(`${before.dev}:${before.ino}`, change);
    }
    if (gone.size === 0) return;
    for (const change of changes) {
      const now = change.now;
      if (now === null) continue;
      const before = change.dir.entries.get(change.name);
      if (before && sameFile(before, now)) continue;
      const source = gone.get(`${now.dev}:${now.ino}`);
      if (!source || source === change || source.movedTo) continue;
      const sourceBefore = source.dir.entries.get(source.name)!;
      if (!renamedFrom(sourceBefore, now)) continue;
      source.movedTo = change;
      change.movedFrom = source;
    }
  }

  private async classify(change: Change, batch: Change[]): Promise<void> {
    if (change.done) return;
    change.done = true;
    const { dir, name, now } = change;
    if (dir.detached) return;
    const rel = join2(dir.rel, name);
    const before = dir.entries.get(name);
    const changedEarlier = dir.changedBeforeGone.delete(name);

    if (now === null) {
      // Gone by the time it was looked at, but its deletion or move is still to come (an
      // attribute change or write read before it): that event reports it.
      if (!before || !change.rename) {
        if (before && change.change) dir.changedBeforeGone.add(name);
        return;
      }
      this.forget(dir, name);
      if (change.movedTo) {
        // A write or chmod just before the move (`chmod 600 a && mv a b`) happened under the
        // old name, as inotify reports it: the moved file's attributes say which it was.
        const moved = change.movedTo.now;
        if ((change.change || changedEarlier) && moved !== null) {
          if (before.kind === 'file' && (before.size !== moved.size || before.mtimeMs !== moved.mtimeMs)) this.emit('write', rel);
          if (before.mode !== moved.mode || before.uid !== moved.uid || before.gid !== moved.gid) this.emit('chmod', rel);
        }
        if (before.kind === 'directory') change.movedDirs = this.takeSubtree(rel);
        this.emit('rename', rel);
        return;
      }
      if (before.kind === 'directory') {
        // A tree removed with rm -r: what was deleted inside it is reported before it.
        for (const inner of batch) if (!inner.done && isUnder(join2(inner.dir.rel, inner.name), rel)) await this.classify(inner, batch);
        for (const gone of this.takeSubtree(rel)) this.unwatch(gone);
      }
      this.emit('remove', rel);
      return;
    }

    if (before && sameFile(before, now)) {
      this.remember(dir, name, now);
      const chmod = before.mode !== now.mode || before.uid !== now.uid || before.gid !== now.gid;
      // A directory's mtime follows its entries, which inotify reports on their own: not a write.
      let write = now.kind !== 'directory' && (before.size !== now.size || before.mtimeMs !== now.mtimeMs);
      let attributes = chmod;
      if (!write && !chmod && change.change && !change.rescan && name !== dir.watchedName) {
        // Nothing visible changed: a write within the clock's granularity, or an attribute
        // change (a touch to the same time, an xattr) that only moved ctime.
        if (before.ctimeMs !== now.ctimeMs && now.kind !== 'file') attributes = true;
        else if (now.kind === 'file') write = true;
      }
      if (write) this.emit('write', rel);
      if (attributes) this.emit('chmod', rel);
      return;
    }

    // A new name, or a known name whose file was replaced.
    if (before?.kind === 'directory') for (const gone of this.takeSubtree(rel)) this.unwatch(gone);
    const source = change.movedFrom;
    if (source) {
      await this.classify(source, batch);
      this.remember(dir, name, now);
      this.emit('create', rel);
      if (now.kind === 'file' && now.size > 0) this.emit('write', rel);
      if (source.movedDirs) this.carry(source.movedDirs, join2(source.dir.rel, source.name), rel);
      else if (now.kind === 'directory' && this.options.recursive) await this.addDirectory(rel, true);
      return;
    }
    this.remember(dir, name, now);
    this.emit('create', rel);
    if (now.kind === 'file' && now.size > 0) this.emit('write', rel);
    if (now.kind === 'directory' && this.options.recursive) await this.addDirectory(rel, true);
  }

  /** Takes the watched directory `rel` and those under it out of the map. */
  private takeSubtree(rel: string): Directory[] {
    const taken: Directory[] = [];
    for (const [key, dir] of this.dirs) {
      if (isUnder(key, rel)) {
        taken.push(dir);
        this.dirs.delete(key);
      }
    }
    return taken;
  }

  /** A renamed directory keeps its inotify watches (they follow the inode): only names change. */
  private carry(dirs: Directory[], from: string, to: string): void {
    for (const dir of dirs) {
      dir.rel = to + dir.rel.slice(from.length);
      const replaced = this.dirs.get(dir.rel);
      if (replaced) this.unwatch(replaced);
      this.dirs.set(dir.rel, dir);
    }
  }

  /**
   * Watches the directory `rel` and learns its entries (reporting each as created when
   * `announce`), then, when recursive, those below it. The watch goes in before the listing, so
   * that nothing created in between is missed; a name both listed and reported is known by then
   * and reported once.
   */
  private async addDirectory(rel: string, announce: boolean): Promise<void> {
    if (this.dirs.size >= this.options.maxDirectories) {
      throw new SandboxFileError('ELIMIT', `the watch would cover more than ${this.options.maxDirectories} directories (maxDirectories)`);
    }
    const path = this.absolute(rel);
    const dir = new Directory(rel);
    try {
      dir.handle = watch(path, (eventType, filename) => this.onRaw(dir, eventType, filename));
    } catch (error) {
      const code = fileErrorCode(error);
      if (code === 'ENOSPC') {
        throw new SandboxFileError('ELIMIT', 'the system limit on watched directories (fs.inotify.max_user_watches) was reached');
      }
      // A directory below the root that this user may not read, or that is gone already: it
      // cannot be watched, and its own creation or removal is still reported by its parent.
      if (rel !== '' && (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'ENOTDIR')) return;
      throw error;
    }
    dir.watchedName = basename(path);
    dir.handle.on('error', (error) => this.fail(toFileError(error, 'watching')));
    this.dirs.set(rel, dir);

    let names: string[];
    try {
      names = await readdir(path);
    } catch (error) {
      if (rel === '') throw error;
      return;
    }
    const found: Array<[string, Entry | null]> = names.map((name) => [name, null]);
    await eachLimited(found, STAT_CONCURRENCY, async (item) => {
      item[1] = await lstat(join(path, item[0])).then(toEntry, () => null);
    });
    for (const [name, entry] of found) {
      if (dir.detached || !this.active) return;
      if (entry === null || dir.entries.has(name)) continue;
      this.remember(dir, name, entry);
      if (announce) this.emit('create', join2(rel, name));
    }
    if (!this.options.recursive) return;
    for (const [name, entry] of found) {
      if (dir.detached || !this.active) return;
      if (entry?.kind === 'directory' && !this.dirs.has(join2(rel, name))) await this.addDirectory(join2(rel, name), announce);
    }
  }
}
