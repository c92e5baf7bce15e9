import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const copy = mkdtempSync(path.join(tmpdir(), 'setup-test-'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

/** Runs scripts/setup.sh in a copy of the repository without node_modules, as a user who is not root. */
function runSetup(env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? ['runuser', '-u', 'nobody', '--', 'bash', 'scripts/setup.sh'] : ['bash', 'scripts/setup.sh'];
  const result = spawnSync(command[0]!, command.slice(1), { cwd: copy, env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

describe('scripts/setup.sh (npm start, npm test)', () => {
  for (const file of ['package.json', 'package-lock.json', 'image/debian-packages.txt', 'scripts']) {
    cpSync(path.join(root, file), path.join(copy, file), { recursive: true });
  }
  chmodSync(copy, 0o755);

  it('as a user who is not root, names the missing Debian packages, prints the exact command and stops before npm', () => {
    writeFileSync(
      path.join(copy, 'image/debian-packages.txt'),
      '# a comment\npython3-ipykernel   # installed\nno-such-package-for-setup-test\n\n',
    );
    const { status, stderr } = runSetup();
    expect(status).toBe(1);
    expect(stderr).toContain('missing Debian packages: no-such-package-for-setup-test\n');
    expect(stderr).toContain('\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends no-such-package-for-setup-test\n');
    expect(existsSync(path.join(copy, 'node_modules'))).toBe(false);
  });

  it('checks the development-only list too (scripts/dev-debian-packages.txt), which the image does not install', () => {
    writeFileSync(path.join(copy, 'image/debian-packages.txt'), 'python3-ipykernel\n');
    writeFileSync(path.join(copy, 'scripts/dev-debian-packages.txt'), '# dev only\nno-such-dev-package-for-setup-test\n');
    const { status, stderr } = runSetup();
    expect(status).toBe(1);
    expect(stderr).toContain('missing Debian packages: no-such-dev-package-for-setup-test\n');
    expect(existsSync(path.join(copy, 'node_modules'))).toBe(false);
    const dockerfile = spawnSync('grep', ['-c', 'dev-debian-packages', 'Dockerfile'], { cwd: root, encoding: 'utf8' });
    expect(dockerfile.stdout.trim()).toBe('0');
  });

  it('reads the package list that .ci/run and the README point to', () => {
    const list = spawnSync('grep', ['-rl', 'debian-packages.txt', 'README.md', '.ci/run', 'scripts/setup.sh'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(list.stdout.trim().split('\n').sort()).toEqual(['.ci/run', 'README.md', 'scripts/setup.sh']);
  });
});
