import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

describe('the log destination', () => {
  it('lets the process exit when stdout is a closed pipe', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'tests/helpers/log-burst.ts')], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    try {
      await once(child.stderr, 'data');
      // Whoever read the log is gone (`| head`, a dead log collector).
      child.stdout.destroy();
      const exited = once(child, 'exit');
      child.stdin.write('go\n');
      // A process stuck retrying EPIPE never exits; the guard turns that into a failure.
      const guard = new Promise((resolve) => setTimeout(resolve, 10_000, ['still running']));
      expect(await Promise.race([exited, guard])).toEqual([0, null]);
    } finally {
      child.kill('SIGKILL');
    }
  }, 20_000);
});
