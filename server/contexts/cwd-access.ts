import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { SandboxFileError, type SandboxFiles } from '../sandbox-files/types.js';

/** Who the kernels run as, when that is not this process's user (the image: start-up.sh says). */
export interface KernelIdentity {
  uid: number;
  /** The primary group and every supplementary one. */
  gids: readonly number[];
}

/**
 * Whether the kernels' user may enter `directory`: search permission on it and on every
 * directory above it. Asked before a kernel starts there, because Jupyter's own refusal (a
 * PermissionError from Popen) reaches the API as a bare 500 on Jupyter Server 2.
 *
 * Without an identity the API runs as the kernels' user, and access(2) answers. With one, the
 * mode bits decide, as the kernel would see them (ACLs are not read: a directory opened to the
 * kernels' user by an ACL alone is refused here, and one closed by an ACL alone fails later, at
 * the kernel's start). Undefined when this process cannot look (it may see less than the kernels'
 * user): then the kernel's start decides.
 */
export async function kernelsMayEnter(directory: string, identity: KernelIdentity | undefined): Promise<boolean | undefined> {
  if (!identity) {
    try {
      await access(directory, constants.X_OK);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EACCES' ? false : undefined;
    }
  }
  if (identity.uid === 0) return true;
  let real: string;
  try {
    real = await realpath(directory);
  } catch {
    return undefined;
  }
  for (let current = real; ; current = path.dirname(current)) {
    let stats;
    try {
      stats = await stat(current);
    } catch {
      return undefined;
    }
    const bits = stats.uid === identity.uid ? 0o100 : identity.gids.includes(stats.gid) ? 0o010 : 0o001;
    if ((stats.mode & bits) === 0) return false;
    if (current === path.dirname(current)) return true;
  }
}

/** Parses KERNEL_IDS, `uid:gid,gid,...` (start-up.sh: `id -u` and `id -G` of KERNEL_USER). */
export function parseKernelIds(raw: string): KernelIdentity | undefined {
  const match = /^(\d+):(\d+(?:,\d+)*)$/.exec(raw.trim());
  if (!match) return undefined;
  return { uid: Number(match[1]), gids: match[2]!.split(',').map(Number) };
}

/**
 * What `absolute` is for the kernels' user, asked of their filesystem (the process host), links
 * followed (the host's stat does not follow the last one). 'missing' too without a host or when
 * it does not answer: then the caller's own view stands.
 */
export async function kernelsSee(
  files: Pick<SandboxFiles, 'stat'> | undefined,
  absolute: string,
): Promise<'directory' | 'other' | 'missing' | 'forbidden'> {
  if (!files) return 'missing';
  let current = absolute;
  // As many links as Linux follows in one path (MAXSYMLINKS).
  for (let hops = 0; hops <= 40; hops++) {
    let entry;
    try {
      entry = await files.stat(current);
    } catch (error) {
      const code = error instanceof SandboxFileError ? error.code : undefined;
      return code === 'EACCES' || code === 'EPERM' ? 'forbidden' : 'missing';
    }
    if (entry.type !== 'symlink') return entry.type === 'directory' ? 'directory' : 'other';
    if (entry.symlinkTarget === undefined) return 'missing';
    current = path.resolve(path.dirname(current), entry.symlinkTarget);
  }
  return 'missing';
}
