import { chmod, chown, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelsMayEnter, parseKernelIds } from '../../server/contexts/cwd-access.js';
import { loadConfig } from '../../server/config.js';

/**
 * Which directories the kernels' user may start in, judged from mode bits for another user's
 * ids: a tree of directories with the modes a hostile or careless setup has.
 */
describe('kernelsMayEnter', () => {
  let root: string;
  const kernel = { uid: 4242, gids: [4242, 5151] };

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cwd-access-'));
    await chmod(root, 0o755);
    const made: Array<[string, number, number, number]> = [
      ['open', 0o755, 0, 0],
      ['closed', 0o700, 0, 0],
      ['closed/inner', 0o777, 0, 0],
      ['owned', 0o700, 4242, 0],
      ['group', 0o750, 0, 5151],
      ['other-group', 0o750, 0, 6161],
      ['search-only', 0o711, 0, 0],
    ];
    for (const [name, mode, uid, gid] of made) {
      await mkdir(path.join(root, name));
      await chown(path.join(root, name), uid, gid);
      await chmod(path.join(root, name), mode);
    }
    await symlink(path.join(root, 'closed', 'inner'), path.join(root, 'link-into-closed'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it.each([
    ['open', true],
    ['closed', false],
    ['closed/inner', false],
    ['owned', true],
    ['group', true],
    ['other-group', false],
    ['search-only', true],
    ['link-into-closed', false],
  ])('%s: %s', async (name, expected) => {
    expect(await kernelsMayEnter(path.join(root, name), kernel)).toBe(expected);
  });

  it('lets root in anywhere, and asks the system when the kernels run as this process', async () => {
    expect(await kernelsMayEnter(path.join(root, 'closed'), { uid: 0, gids: [0] })).toBe(true);
    // This process is the kernels' user here (the tests run as root on CI).
    expect(await kernelsMayEnter(path.join(root, 'open'), undefined)).toBe(true);
  });

  it('reads KERNEL_IDS as id -u and id -G print them, and refuses anything else at boot', () => {
    expect(parseKernelIds('1000:1000,27,999')).toEqual({ uid: 1000, gids: [1000, 27, 999] });
    expect(parseKernelIds('1000')).toBeUndefined();
    expect(parseKernelIds('user:1000')).toBeUndefined();
    expect(loadConfig({ KERNEL_IDS: '1000:1000,999' }).contexts.kernelIdentity).toEqual({ uid: 1000, gids: [1000, 999] });
    expect(loadConfig({}).contexts.kernelIdentity).toBeUndefined();
    expect(() => loadConfig({ KERNEL_IDS: '1000 1000' })).toThrow(/KERNEL_IDS must be uid:gid/);
  });
});
