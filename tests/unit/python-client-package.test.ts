import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { python } from '../helpers/pytest.js';

/**
 * clients/python must install offline with pip next to Debian's packages, as its README says
 * (`pip install --no-build-isolation`), and import from where it was installed, py.typed included.
 * It is built from a copy: pip writes build files into the source tree.
 */
const packageDir = path.resolve(import.meta.dirname, '..', '..', 'clients', 'python');

describe('the Python code-interpreter-client package', () => {
  let scratch: string | undefined;
  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("installs offline with pip into Debian's Python and imports from there", async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'python-client-package-'));
    const source = path.join(scratch, 'source');
    await cp(packageDir, source, {
      recursive: true,
      filter: (name) => !/(__pycache__|\.egg-info|\/build)$/.test(name),
    });
    const target = path.join(scratch, 'target');
    const env = { ...process.env, PIP_NO_INDEX: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONDONTWRITEBYTECODE: '1' };
    execFileSync(python, ['-m', 'pip', 'install', '-q', '--no-build-isolation', '--no-deps', '--target', target, source], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect((await readdir(path.join(target, 'code_interpreter_client'))).sort()).toEqual(
      expect.arrayContaining(['__init__.py', 'container.py', 'execution_client.py', 'py.typed', 'resource_client.py']),
    );
    const [distInfo] = (await readdir(target)).filter((name) => name.endsWith('.dist-info'));
    const metadata = await readFile(path.join(target, distInfo!, 'METADATA'), 'utf8');
    expect(metadata).toMatch(/^Name: code-interpreter-client$/m);
    expect(metadata).toMatch(/^Requires-Python: >=3\.11$/m);
    // Older setuptools write `httpx (>=0.23)`, newer ones `httpx>=0.23`.
    expect(metadata).toMatch(/^Requires-Dist: httpx ?\(?>=0\.23\)?$/m);
    expect(metadata).toMatch(/^Requires-Dist: docker ?\(?>=5\.0\)?$/m);
    expect(metadata).toMatch(/^Requires-Dist: Pillow ?\(?>=9\.4\)? ?; extra == ["']images["']$/m);
    const imported = execFileSync(python, ['-c', 'import code_interpreter_client as c; print(c.__file__); print(sorted(c.__all__)[:3])'], {
      cwd: scratch,
      env: { ...env, PYTHONPATH: target },
      encoding: 'utf8',
    });
    expect(imported.split('\n')[0]).toBe(path.join(target, 'code_interpreter_client', '__init__.py'));
  }, 120_000);
});
