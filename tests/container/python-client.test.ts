import { describe, expect, it } from 'vitest';
import { debianMirror, docker, image } from '../helpers/docker.js';
import { root } from '../helpers/processes.js';
import { runPytest } from '../helpers/pytest.js';

describe('the Python client (container)', () => {
  it('passes clients/python/tests_container: ExecutionContainer against the image', async () => {
    const before = await docker(['ps', '-a', '-q', '--filter', 'label=code-interpreter-client']);
    const run = await runPytest(
      'clients/python/tests_container',
      { CONTAINER_IMAGE: image, DEBIAN_MIRROR: (await debianMirror()).href },
      230_000,
    );
    expect(run.code, `pytest failed:\n${run.output}`).toBe(0);
    expect(run.output).toMatch(/\d+ passed/);
    const after = await docker(['ps', '-a', '-q', '--filter', 'label=code-interpreter-client']);
    expect(after.stdout, 'a container was left behind').toBe(before.stdout);
  }, 240_000);

  it("installs offline with pip into the image's Python", async () => {
    // pip builds in the source tree: a copy, since the mount is read-only.
    const result = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${root}/clients/python:/src:ro`,
      '--entrypoint',
      'bash',
      image,
      '-c',
      'cp -r /src /tmp/src && pip install -q --no-build-isolation --no-deps --target /tmp/x /tmp/src && ' +
        // The image's Python has no httpx (no-deps): the files, their metadata and their syntax are checked.
        'python3 -c "import sys; print(sys.version_info[:2])" && python3 -m compileall -q /tmp/x/code_interpreter_client && ' +
        'ls /tmp/x/code_interpreter_client/py.typed && grep ^Requires-Dist /tmp/x/code_interpreter_client-*.dist-info/METADATA',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^\(3, 1[1-9]\)\n/);
    expect(result.stdout).toContain('code_interpreter_client/py.typed\n');
    expect(result.stdout).toMatch(/Requires-Dist: httpx>=0\.23[^]*Requires-Dist: docker>=5\.0/);
  }, 120_000);
});
