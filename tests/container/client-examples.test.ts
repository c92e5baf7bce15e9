import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, dockerTcpRelay, image } from '../helpers/docker.js';
import { root } from '../helpers/processes.js';

/**
 * examples/typescript/, run the way the README says (`npx tsx examples/typescript/NN.ts`) against
 * the image under test, each in a scratch directory; what each prints is checked. They import
 * the client by its package name, as a program of its own would.
 */
const examples = path.join(root, 'examples', 'typescript');
const tsx = path.join(root, 'node_modules', '.bin', 'tsx');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runExample(name: string, cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, [path.join(examples, name)], {
      cwd,
      env: { ...process.env, CODE_INTERPRETER_IMAGE: image, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The containers the examples started; every one must be gone when its example ends. */
async function exampleContainers(): Promise<string[]> {
  const listed = await docker(['ps', '-a', '-q', '--filter', 'label=code-interpreter-client', '--filter', `ancestor=${image}`]);
  return listed.stdout.split('\n').filter((line) => line.trim() !== '');
}

describe('the TypeScript client examples (container)', () => {
  let cwd: string;
  let before: string[];
  beforeAll(async () => {
    cwd = await mkdtemp(path.join(tmpdir(), 'client-examples-'));
    before = await exampleContainers();
  });
  afterAll(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  async function run(name: string, env: Record<string, string> = {}): Promise<string> {
    const result = await runExample(name, cwd, env);
    expect(result.code, `${name} exited with ${result.code}:\n${result.stderr}\n${result.stdout}`).toBe(0);
    expect(await exampleContainers(), `${name} left its container behind`).toEqual(before);
    return result.stdout;
  }

  it('01: basic usage, with a timeout', async () => {
    const out = await run('01-basic-usage.ts');
    expect(out).toContain('Output: Hello, world!\n');
    expect(out).toMatch(/Timed out: .*1 s/);
    expect(out).toContain('Still running: 2\n');
  });

  it('02: state per kernel', async () => {
    const out = await run('02-state.ts');
    expect(out).toContain('x in the first kernel: 2\n');
    expect(out).toContain("x in the second kernel: NameError: name 'x' is not defined\n");
  });

  it('03: output streamed as it comes', async () => {
    const out = await run('03-streaming.ts');
    const seconds = [...out.matchAll(/Received output after ([\d.]+) s: Processing step (\d)/g)].map((match) => Number(match[1]));
    expect(seconds).toHaveLength(5);
    // A second apart, not all at the end.
    expect(seconds[4]! - seconds[0]!).toBeGreaterThan(3);
    expect(out).toContain(
      'Aggregated output:\nProcessing step 0\nProcessing step 1\nProcessing step 2\nProcessing step 3\nProcessing step 4\n',
    );
  });

  it('04: a package installed at runtime, used by another kernel', async () => {
    const out = await run('04-installing-packages.ts');
    expect(out).toMatch(/Successfully installed greeting-1\.0\.0/);
    expect(out).toContain('Output: Hello, kernel!\n');
  });

  it('05: a plot saved as PNG', async () => {
    const out = await run('05-plots.ts');
    expect(out).toContain('Plot generation complete!');
    expect(out).toMatch(/Saved sine\.png \(1 image, \d+ bytes\)/);
    const png = await readFile(path.join(cwd, 'sine.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.length).toBeGreaterThan(10_000);
  });

  it('06: files and directories both ways', async () => {
    const out = await run('06-files.ts');
    expect(out).toContain('Uploaded a directory: 4 entries\n');
    expect(out).toContain('backup/: data.txt\n');
    expect(out).toContain('Downloaded file: Hello from the host\n');
    expect(out).toContain('Downloaded directory: README.md, src, src/main.py\n');
    expect(out).toContain('uploads/ after the delete: []\n');
  });

  it('07: environment variables for the container and for one execution', async () => {
    const out = await run('07-environment-variables.ts');
    expect(out).toContain('Using API key: secret-key-123\nDebug mode enabled\n');
    expect(out).toContain('DEBUG for one execution: 0, afterwards: 1\n');
  });

  it('08: run() and kill() by hand', async () => {
    const out = await run('08-manual-lifecycle.ts');
    expect(out).toMatch(/Container [0-9a-f]{12} serves on 127\.0\.0\.1:\d+\n/);
    expect(out).toContain('Output: 1024\n');
    expect(out).toContain('Container removed\n');
  });

  it('09: an allow-list replaced while the container runs', async () => {
    const out = await run('09-firewall.ts');
    expect(out).toContain('example.com before: 403 egress to example.com is not allowed');
    // Allowed: past the allow-list, to the network (which may not be there).
    expect(out).toMatch(/example\.com after: (?!403 egress)/);
    expect(out).toContain('example.org after: 403 egress to example.org is not allowed');
  });

  it('10: a tcp DOCKER_HOST', async () => {
    const relay = await dockerTcpRelay();
    try {
      const out = await run('10-remote-docker-host.ts', { DOCKER_HOST: relay.url });
      expect(out).toContain(`Docker: ${relay.url}; the server: 127.0.0.1:`);
      expect(out).toMatch(/Output: \S+\n/);
      expect(relay.connections()).toBeGreaterThan(0);
    } finally {
      relay.close();
    }
  });

  it('11: input(), R, interrupt and re-attach', async () => {
    const out = await run('11-more.ts');
    expect(out).toContain('Asked: Your name? \nAnswered input: Hello, Ada!\n');
    expect(out).toContain('R: 55\n');
    expect(out).toContain('Interrupted: KeyboardInterrupt\n');
    expect(out).toContain('Read again by id: once\n');
  });
});
