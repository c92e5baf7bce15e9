import { spawn } from 'node:child_process';
import path from 'node:path';
import { root } from './processes.js';

/** Debian's interpreter: the Python client's dependencies are its packages (scripts/dev-debian-packages.txt). */
export const python = process.env.PYTHON ?? '/usr/bin/python3';

export interface PytestRun {
  code: number | null;
  output: string;
}

/**
 * Runs pytest on `target` (relative to the repository) from the repository's root, with the
 * Python client importable from its source, and collects what it prints.
 */
export function runPytest(target: string, env: Record<string, string>, timeoutMs: number): Promise<PytestRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-m', 'pytest', target, '-q', '-p', 'no:cacheprovider'], {
      cwd: root,
      env: { ...process.env, PYTHONPATH: path.join(root, 'clients', 'python'), PYTHONDONTWRITEBYTECODE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: signal ? null : code, output: signal ? `${output}\n(killed by ${signal})` : output }),
    );
  });
}
