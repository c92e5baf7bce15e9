import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * Every entry under `dir`, sorted: `path/` for directories, `path -> target` for links,
 * `path sha256 mode` for files, `path (special)` for the rest. Two trees are the same when
 * their snapshots are equal.
 */
export async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(relative: string): Promise<void> {
    for (const name of (await readdir(path.join(dir, relative))).sort()) {
      const entry = path.join(relative, name);
      const full = path.join(dir, entry);
      const stats = await lstat(full);
      if (stats.isSymbolicLink()) out.push(`${entry} -> ${await readlink(full)}`);
      else if (stats.isDirectory()) {
        out.push(`${entry}/`);
        await walk(entry);
      } else if (stats.isFile()) out.push(`${entry} ${sha256(await readFile(full))} ${(stats.mode & 0o777).toString(8)}`);
      else out.push(`${entry} (special)`);
    }
  }
  await walk('');
  return out;
}
