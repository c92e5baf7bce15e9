import { describe, expect, it } from 'vitest';
import { kernelsSee } from '../../server/contexts/cwd-access.js';
import { SandboxFileError, type EntryInfo, type EntryType } from '../../server/sandbox-files/types.js';

/** A kernels' filesystem of a few entries, as the process host's stat (lstat) reports them. */
function files(entries: Record<string, { type: EntryType; target?: string } | 'EACCES'>) {
  const asked: string[] = [];
  return {
    asked,
    async stat(path: string): Promise<EntryInfo> {
      asked.push(path);
      const entry = entries[path];
      if (entry === undefined) throw new SandboxFileError('ENOENT', `${path}: no such file`);
      if (entry === 'EACCES') throw new SandboxFileError('EACCES', `${path}: permission denied`);
      const name = path.split('/').at(-1)!;
      return {
        name,
        path,
        type: entry.type,
        size: 0,
        mode: 0o755,
        permissions: '',
        owner: 'user',
        group: 'user',
        modifiedMs: 0,
        symlinkTarget: entry.target,
      };
    },
  };
}

describe("kernelsSee: a cwd outside the workspace, as the kernels' filesystem has it", () => {
  it('finds a directory only the kernels have, through relative and absolute links', async () => {
    const fs = files({
      '/tmp/run': { type: 'directory' },
      '/tmp/link': { type: 'symlink', target: 'hop' },
      '/tmp/hop': { type: 'symlink', target: '/tmp/run' },
    });
    expect(await kernelsSee(fs, '/tmp/run')).toBe('directory');
    expect(await kernelsSee(fs, '/tmp/link')).toBe('directory');
    expect(fs.asked).toEqual(['/tmp/run', '/tmp/link', '/tmp/hop', '/tmp/run']);
  });

  it('tells a file, a missing path, a dangling link and a forbidden one apart', async () => {
    const fs = files({
      '/tmp/file': { type: 'file' },
      '/tmp/dangling': { type: 'symlink', target: '/tmp/gone' },
      '/root/private': 'EACCES',
    });
    expect(await kernelsSee(fs, '/tmp/file')).toBe('other');
    expect(await kernelsSee(fs, '/tmp/missing')).toBe('missing');
    expect(await kernelsSee(fs, '/tmp/dangling')).toBe('missing');
    expect(await kernelsSee(fs, '/root/private')).toBe('forbidden');
  });

  it('gives up on a link loop, and without a host', async () => {
    const fs = files({ '/tmp/a': { type: 'symlink', target: '/tmp/b' }, '/tmp/b': { type: 'symlink', target: '/tmp/a' } });
    expect(await kernelsSee(fs, '/tmp/a')).toBe('missing');
    expect(fs.asked.length).toBe(41);
    expect(await kernelsSee(undefined, '/tmp/a')).toBe('missing');
  });

  it('takes a host that does not answer for one that does not find the path', async () => {
    const down = {
      stat: async (): Promise<EntryInfo> => {
        throw new SandboxFileError('EIO', 'the process host is not running');
      },
    };
    expect(await kernelsSee(down, '/tmp/run')).toBe('missing');
  });
});
