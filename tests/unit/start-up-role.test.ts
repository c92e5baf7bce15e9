import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const script = path.resolve(import.meta.dirname, '../../start-up.sh');

/** ROLE splits start-up.sh for the Kubernetes pod; anything else must stop it before it starts anything. */
describe('start-up.sh ROLE', () => {
  it('refuses an unknown role, naming the ones there are', () => {
    const result = spawnSync('bash', [script], { env: { ...process.env, ROLE: 'kernels' }, encoding: 'utf8', timeout: 10_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('ROLE=kernels is not one of jupyter, api');
  });

  it('runs only the API with ROLE=api, with the umask that keeps the workspace shared', () => {
    // API_COMMAND stands in for the API; no Jupyter is started, so the script ends when it does.
    const result = spawnSync('bash', [script], {
      env: { ...process.env, ROLE: 'api', API_COMMAND: 'bash -c umask' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('0002\n');
  });
});
