import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { accessToken, baseUrl } from '../helpers/api.js';

const examples = path.resolve(import.meta.dirname, '../../examples');

/** The three clients docs/api.md shows, each run as a user would run it. */
const clients = [
  { name: 'curl', command: 'bash', args: [path.join(examples, 'curl.sh')] },
  // Debian's interpreter: it has python3-requests.
  { name: 'Python', command: '/usr/bin/python3', args: [path.join(examples, 'python_client.py')] },
  { name: 'Node', command: process.execPath, args: [path.join(examples, 'node_client.mjs')] },
];

interface Run {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Each piece of stdout with the time it reached us. */
  arrivals: Array<{ text: string; at: number }>;
}

async function run(client: (typeof clients)[number], code: string, outputDir: string, env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(client.command, [...client.args, code], {
    cwd: outputDir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CODE_INTERPRETER_URL: baseUrl,
      OUTPUT_DIR: outputDir,
      ...(accessToken ? { ACCESS_TOKEN: accessToken } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const result: Run = { exitCode: null, stdout: '', stderr: '', arrivals: [] };
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    result.stdout += text;
    result.arrivals.push({ text, at: Date.now() });
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => (result.stderr += text));
  [result.exitCode] = (await once(child, 'exit')) as [number | null];
  return result;
}

/** A PNG file: the signature, an IHDR chunk with a non-empty size first, an IEND chunk last. */
function expectPng(bytes: Buffer): void {
  expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(bytes.toString('latin1', 12, 16)).toBe('IHDR');
  expect(bytes.readUInt32BE(16)).toBeGreaterThan(0);
  expect(bytes.readUInt32BE(20)).toBeGreaterThan(0);
  expect(bytes.toString('latin1', bytes.length - 8, bytes.length - 4)).toBe('IEND');
}

const PLOT = [
  'import time',
  'import matplotlib.pyplot as plt',
  'print("first", flush=True)',
  'time.sleep(2)',
  'print("second")',
  'plt.plot([1, 2, 3], [1, 4, 9])',
  'plt.title("squares")',
  'plt.show()',
].join('\n');

let outputDir: string | undefined;
afterEach(async () => {
  if (outputDir) await rm(outputDir, { recursive: true, force: true });
  outputDir = undefined;
});

describe.each(clients)('examples: the $name client', (client) => {
  it('prints stdout as it arrives and saves the plot as a PNG file', async () => {
    outputDir = await mkdtemp(path.join(tmpdir(), 'example-'));
    const result = await run(client, PLOT, outputDir);

    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe('first\nsecond\n');
    // "first" was printed while the code still slept, not with everything at the end.
    const first = result.arrivals.find((arrival) => arrival.text.includes('first'))!;
    const second = result.arrivals.find((arrival) => arrival.text.includes('second'))!;
    expect(first).not.toBe(second);
    expect(second.at - first.at).toBeGreaterThan(1000);

    expect(await readdir(outputDir)).toEqual(['result-1.png']);
    expectPng(await readFile(path.join(outputDir, 'result-1.png')));
    expect(result.stderr).toContain('result-1.png');
  });

  it('reports an error raised by the code on stderr and exits with 1', async () => {
    outputDir = await mkdtemp(path.join(tmpdir(), 'example-'));
    const result = await run(client, 'print("before")\n1 / 0', outputDir);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('before\n');
    expect(result.stderr).toContain('ZeroDivisionError: division by zero');
  });

  it('reports a refused request with its error code and exits with 2', async () => {
    outputDir = await mkdtemp(path.join(tmpdir(), 'example-'));
    const result = await run(client, 'print("never")', outputDir, { CODE_INTERPRETER_URL: `${baseUrl}/nowhere` });
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('404 ERR_ROUTE_NOT_FOUND');
  });
});
