import { constants } from 'node:fs';
import { chmod, open, readdir, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { PathChangedError } from '../errors.js';
import { quote } from './paths.js';
import { childOf, isErrno, pathOfHandle } from './workspace.js';

/** How many times a directory is emptied again when something keeps appearing in it. */
const MAX_REFILLS = 3;
/** Entries of one directory unlinked at a time: enough to keep the thread pool busy. */
const UNLINK_CONCURRENCY = 16;

/**
 * Deletes `name` inside the directory at `directory` (a path that names an open descriptor, see
 * {@link pathOfHandle}) and, for a directory, everything under it, the way `rm -rf` does it with
 * `openat`: every directory is opened with O_NOFOLLOW and emptied through its own descriptor,
 * and every unlink and rmdir names an entry inside a held descriptor. A directory swapped for a
 * symlink halfway through is then never entered: the link itself is removed, its target left
 * alone. Node's `rm({ recursive: true })` walks path strings and follows such a swap out of the
 * workspace.
 *
 * Names are handled as bytes, so entries whose names are not UTF-8 go too.
 */
export async function removeEntry(directory: string, name: Buffer | string, display: string): Promise<void> {
  const child = childOf(directory, name);
  for (let attempt = 0; ; attempt++) {
    try {
      await unlink(child);
      return;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return;
      // Linux answers EISDIR for a directory; other systems EPERM.
      if (!isErrno(error, 'EISDIR') && !isErrno(error, 'EPERM')) throw error;
    }
    let handle: FileHandle;
    try {
      handle = await open(child, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return;
      // No longer a directory (a symlink now, or a file): unlink it on the next round. Swapped
      // back and forth every round: the entry keeps changing under the delete, which is a 409,
      // not the "not a directory" that the last open happened to see.
      if (isErrno(error, 'ENOTDIR') || isErrno(error, 'ELOOP')) {
        if (attempt < MAX_REFILLS) continue;
        throw new PathChangedError(quote(display));
      }
      // A directory we may not read (mode 000): open it to ourselves first, when it is ours.
      if (isErrno(error, 'EACCES') && attempt < MAX_REFILLS && (await openToOwner(child))) continue;
      throw error;
    }
    try {
      await makeWritable(handle);
      await emptyDirectory(pathOfHandle(handle, child.toString()), display);
    } finally {
      await handle.close();
    }
    try {
      await rmdir(child);
      return;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return;
      // Refilled meanwhile, or swapped for something else: look again, a few times.
      if (!isErrno(error, 'ENOTEMPTY') && !isErrno(error, 'EEXIST') && !isErrno(error, 'ENOTDIR')) throw error;
      if (attempt >= MAX_REFILLS) throw new PathChangedError(quote(display));
    }
  }
}

async function emptyDirectory(directory: string, display: string): Promise<void> {
  const names = await readdir(directory, { encoding: 'buffer' });
  for (let i = 0; i < names.length; i += UNLINK_CONCURRENCY) {
    // Files in parallel, then directories one at a time: a deep tree holds one descriptor per
    // level, not one per entry.
    const batch = names.slice(i, i + UNLINK_CONCURRENCY);
    const directories = (
      await Promise.all(
        batch.map((name) =>
          unlink(childOf(directory, name)).then(
            () => undefined,
            (error: unknown) => {
              if (isErrno(error, 'ENOENT')) return undefined;
              if (isErrno(error, 'EISDIR') || isErrno(error, 'EPERM')) return name;
              throw error;
            },
          ),
        ),
      )
    ).filter((name) => name !== undefined);
    for (const name of directories) if (name) await removeEntry(directory, name, display);
  }
}

/** The owner's read, write and search bits: what emptying a directory takes. */
const OWNER_ALL = 0o700;

/**
 * A read-only directory (0555, as archives and `chmod -w` leave them) cannot be emptied even by
 * its owner: like `rm -rf` asked to, the remover gives the owner write access first. It works
 * on the descriptor it holds, never a path. Not the owner: the unlinks below say so (403).
 */
async function makeWritable(handle: FileHandle): Promise<void> {
  const { mode } = await handle.stat();
  if ((mode & OWNER_ALL) === OWNER_ALL) return;
  await handle.chmod((mode & 0o7777) | OWNER_ALL).catch(() => undefined);
}

/**
 * Linux's O_PATH: a descriptor that names a file without the right to read it, which a
 * directory of mode 000 still grants its owner. Its /proc entry then lets chmod reach exactly
 * that directory, never whatever a path leads to by then.
 */
const O_PATH = 0o10000000;

/** Gives the owner access to the directory `child` (a path inside a held descriptor); false when it cannot. */
async function openToOwner(child: Buffer | string): Promise<boolean> {
  if (process.platform !== 'linux') return false;
  let handle: FileHandle;
  try {
    handle = await open(child, O_PATH | constants.O_NOFOLLOW | constants.O_DIRECTORY);
  } catch {
    return false;
  }
  try {
    const stats = await stat(pathOfHandle(handle, ''));
    if (!stats.isDirectory() || stats.uid !== process.getuid?.()) return false;
    await chmod(pathOfHandle(handle, ''), (stats.mode & 0o7777) | OWNER_ALL);
    return true;
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}
