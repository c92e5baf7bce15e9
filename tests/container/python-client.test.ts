import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debianMirror, docker, image } from '../helpers/docker.js';
import { root } from '../helpers/processes.js';
import { python, runPytest } from '../helpers/pytest.js';

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
    expect(result.stdout).toMatch(/^Requires-Dist: httpx ?\(?>=0\.23\)?$/m);
    expect(result.stdout).toMatch(/^Requires-Dist: docker ?\(?>=5\.0\)?$/m);
  }, 120_000);

  it("extracts archives safely under the image's Python, with tarfile's data filter", async () => {
    const result = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${root}/clients/python:/src:ro`,
      '--entrypoint',
      'python3',
      image,
      '/src/tests_container/check_tar_in_image.py',
      '/src',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^python 3\.1[1-9] data_filter=True\n/);
    expect(result.stdout).toContain("extracted: ['dir', 'hard'] content content\n");
    expect(result.stdout).toContain('refused: ../x\nrefused: out\nrefused: /abs\n');
  }, 60_000);
});

/**
 * clients/python/examples/, each run as `python3 NN_name.py` in a scratch directory against the
 * image under test, the client importable as if installed; what each prints is checked.
 */
describe('the Python client examples (container)', () => {
  const examples = path.join(root, 'clients', 'python', 'examples');
  let cwd: string;
  let before: string;
  beforeAll(async () => {
    cwd = await mkdtemp(path.join(tmpdir(), 'python-examples-'));
    before = (await docker(['ps', '-a', '-q', '--filter', 'label=code-interpreter-client'])).stdout;
  });
  afterAll(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  async function run(name: string): Promise<string> {
    const child = spawn(python, ['-W', 'ignore::DeprecationWarning', path.join(examples, name)], {
      cwd,
      env: {
        ...process.env,
        CODE_INTERPRETER_IMAGE: image,
        PYTHONPATH: path.join(root, 'clients', 'python'),
        PYTHONDONTWRITEBYTECODE: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code, `${name} exited with ${code}:\n${stderr}\n${stdout}`).toBe(0);
    expect(
      (await docker(['ps', '-a', '-q', '--filter', 'label=code-interpreter-client'])).stdout,
      `${name} left its container behind`,
    ).toBe(before);
    return stdout;
  }

  it('01: basic usage, with a timeout', async () => {
    const out = await run('01_basic_usage.py');
    expect(out).toContain('Output: Hello, world!\n');
    expect(out).toMatch(/Timed out: .*1 second/);
    expect(out).toContain('Still running: 2\n');
  });

  it('02: state per kernel', async () => {
    const out = await run('02_state_management.py');
    expect(out).toContain('x in the first kernel: 2\n');
    expect(out).toContain("x in the second kernel: NameError: name 'x' is not defined\n");
  });

  it('03: output streamed as it comes', async () => {
    const out = await run('03_output_streaming.py');
    const seconds = [...out.matchAll(/Received output after ([\d.]+) s: Processing step (\d)/g)].map((match) => Number(match[1]));
    expect(seconds).toHaveLength(5);
    // A second apart, not all at the end.
    expect(seconds[4]! - seconds[0]!).toBeGreaterThan(3);
    expect(out).toContain(
      'Aggregated output:\nProcessing step 0\nProcessing step 1\nProcessing step 2\nProcessing step 3\nProcessing step 4\n',
    );
  });

  it('04: a package installed at runtime, used by another kernel', async () => {
    const out = await run('04_installing_dependencies.py');
    expect(out).toMatch(/Successfully installed greeting-1\.0\.0/);
    expect(out).toContain('Output: Hello, kernel!\n');
  });

  it('05: a plot saved as PNG', async () => {
    const out = await run('05_creating_plots.py');
    expect(out).toContain('Plot generation complete!');
    expect(out).toMatch(/Saved sine\.png \(1 image, \d+x\d+ PIL image\)/);
    const png = await readFile(path.join(cwd, 'sine.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.length).toBeGreaterThan(10_000);
  });

  it('06: files and directories both ways', async () => {
    const out = await run('06_file_operations.py');
    expect(out).toContain('Uploaded a directory: 3 entries\n');
    expect(out).toContain('backup/: data.txt\n');
    expect(out).toContain('Downloaded file: Hello from the host\n');
    expect(out).toContain('Downloaded directory: README.md, src, src/main.py\n');
    expect(out).toContain('uploads/ after the delete: []\n');
  });

  it('07: environment variables for the container and for one execution', async () => {
    const out = await run('07_environment_variables.py');
    expect(out).toContain('Using API key: secret-key-123\nDebug mode enabled\n');
    expect(out).toContain('DEBUG for one execution: 0, afterwards: 1\n');
  });

  it('08: run() and kill() by hand', async () => {
    const out = await run('08_manual_lifecycle.py');
    expect(out).toMatch(/Container [0-9a-f]{12} serves on 127\.0\.0\.1:\d+\n/);
    expect(out).toContain('Output: 1024\n');
    expect(out).toContain('Container removed\n');
  });

  it('09: an allow-list replaced while the container runs', async () => {
    const out = await run('09_firewall_activation.py');
    expect(out).toContain('example.com before: 403 egress to example.com is not allowed');
    // Allowed: past the allow-list, to the network (which may not be there).
    expect(out).toMatch(/example\.com after: (?!403 egress)/);
    expect(out).toContain('example.org after: 403 egress to example.org is not allowed');
  });

  it('10: input(), interrupt, re-attach and R', async () => {
    const out = await run('10_more.py');
    expect(out).toContain('Asked: Your name? \nAnswered input: Hello, Ada!\n');
    expect(out).toContain('Interrupted: KeyboardInterrupt\n');
    expect(out).toContain('Read again by id: once\n');
    expect(out).toContain('R: 55\n');
  });
});
