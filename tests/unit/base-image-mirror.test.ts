import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = path.resolve(import.meta.dirname, '../../scripts/build-base-image.sh');
const fixtures = mkdtempSync(path.join(tmpdir(), 'apt-sources-'));
afterAll(() => rmSync(fixtures, { recursive: true, force: true }));

/** An apt configuration directory with these files (paths relative to it). */
function aptDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(fixtures, 'apt-'));
  mkdirSync(path.join(dir, 'sources.list.d'));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return dir;
}

function mirrors(dir: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', [script, '--print-mirrors'], {
    env: { PATH: process.env.PATH, APT_DIR: dir, ...env },
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const DEBIAN_SOURCES = `Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian/
Suites: trixie trixie-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.mirror.example/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

// Third-party repositories that apt may also have: none of them is a Debian archive.
const THIRD_PARTY_LIST = 'deb [signed-by=/usr/share/keyrings/cloud.gpg] https://packages.vendor.example/apt cloud-sdk-trixie main\n';
const THIRD_PARTY_SOURCES = `Types: deb
URIs: https://deb.vendor.example/node_24.x
Suites: nodistro
Components: main

Types: deb
URIs: https://download.vendor.example/linux/debian
Suites: trixie
Components: stable
`;

describe('scripts/build-base-image.sh reads the Debian mirror from the machine', () => {
  it('from deb822 .sources files, the security archive included', () => {
    const dir = aptDir({ 'sources.list.d/debian.sources': DEBIAN_SOURCES });
    expect(mirrors(dir)).toMatchObject({
      status: 0,
      stdout: 'DEBIAN_MIRROR=http://mirror.example/debian\nDEBIAN_SECURITY_MIRROR=http://security.mirror.example/debian-security\n',
    });
  });

  it('from one-line sources.list, skipping comments, deb-src and options', () => {
    const dir = aptDir({
      'sources.list': [
        '# deb http://commented.example/debian trixie main',
        'deb-src http://source.example/debian trixie main',
        'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://oneline.example/debian trixie main non-free-firmware',
        'deb http://oneline.example/debian-security trixie-security main # trailing comment',
        '',
      ].join('\n'),
    });
    expect(mirrors(dir).stdout).toBe(
      'DEBIAN_MIRROR=http://oneline.example/debian\nDEBIAN_SECURITY_MIRROR=http://oneline.example/debian-security\n',
    );
  });

  it('in the order apt reads them: sources.list first, then sources.list.d by name', () => {
    const dir = aptDir({
      'sources.list': 'deb http://first.example/debian bookworm main\n',
      'sources.list.d/debian.sources': DEBIAN_SOURCES,
    });
    expect(mirrors(dir).stdout).toMatch(/^DEBIAN_MIRROR=http:\/\/first\.example\/debian\n/);
  });

  it('leaves out third-party repositories, disabled stanzas and files apt ignores', () => {
    const dir = aptDir({
      'sources.list.d/00-vendor.list': THIRD_PARTY_LIST,
      'sources.list.d/01-vendor.sources': THIRD_PARTY_SOURCES,
      'sources.list.d/02-off.sources': 'Types: deb\nURIs: http://off.example/debian\nSuites: trixie\nComponents: main\nEnabled: no\n',
      'sources.list.d/03-ignored.list.disabled': 'deb http://ignored.example/debian trixie main\n',
      'sources.list.d/debian.sources': DEBIAN_SOURCES,
    });
    expect(mirrors(dir).stdout).toMatch(/^DEBIAN_MIRROR=http:\/\/mirror\.example\/debian\n/);
  });

  it('asks for DEBIAN_MIRROR where none is configured', () => {
    for (const dir of [
      aptDir({}),
      aptDir({ 'sources.list.d/vendor.sources': THIRD_PARTY_SOURCES, 'sources.list.d/vendor.list': THIRD_PARTY_LIST }),
    ]) {
      const { status, stdout, stderr } = mirrors(dir);
      expect(status).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/no Debian mirror is configured .* set DEBIAN_MIRROR/);
    }
  });

  it('takes DEBIAN_MIRROR when it is set, and its -security sibling when no security archive is configured', () => {
    expect(mirrors(aptDir({}), { DEBIAN_MIRROR: 'http://given.example/debian' }).stdout).toBe(
      'DEBIAN_MIRROR=http://given.example/debian\nDEBIAN_SECURITY_MIRROR=http://given.example/debian-security\n',
    );
  });
});
