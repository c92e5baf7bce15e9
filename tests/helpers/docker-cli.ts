/**
 * The docker CLI for tests and their global setup. Kept free of vitest's test-time API (unlike
 * docker.ts, which reads the provided server) so that tests/helpers/global-setup.ts can use it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** The image under test (scripts/docker-ci.sh sets it); the container project runs only with it. */
export const image = process.env.CONTAINER_IMAGE ?? '';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI; never throws on a non-zero exit, which some tests expect. */
export function docker(args: string[], timeoutMs = 120_000): Promise<DockerResult> {
  return new Promise((resolve) => {
    execFile('docker', args, { timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function mustDocker(args: string[], timeoutMs?: number): Promise<string> {
  const result = await docker(args, timeoutMs);
  if (result.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${result.code}): ${result.stderr || result.stdout}`);
  return result.stdout.trim();
}

export const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
