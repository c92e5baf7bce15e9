import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, mustDocker, startContainer, type Container } from '../helpers/docker.js';

/**
 * Jupyter killed outright in the image (under tini, which would adopt orphans): its kernels and
 * their launchers end with it, and the server recovers with new ones.
 */
describe('kernels when Jupyter dies (container)', () => {
  let container: Container;

  beforeAll(async () => {
    container = await startContainer();
  }, 240_000);
  afterAll(async () => {
    await container?.remove();
  });

  /** pid -> command line of the kernels, their launchers and Jupyter, read as root. */
  async function kernelProcesses(): Promise<Record<string, string>> {
    const code = [
      'import json, os',
      'found = {}',
      'for pid in filter(str.isdigit, os.listdir("/proc")):',
      '    try:',
      '        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()',
      '        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]',
      '    except OSError:',
      '        continue',
      '    if state != "Z" and any(mark in cmdline for mark in ("ipykernel_launcher", "kernel-launcher.py", "-m jupyter_server")):',
      '        found[pid] = cmdline',
      'print(json.dumps(found))',
    ].join('\n');
    return JSON.parse(await mustDocker(['exec', '-u', 'root', '-w', '/', container.name, '/usr/bin/python3', '-I', '-c', code])) as Record<
      string,
      string
    >;
  }

  it('takes the kernels of a Jupyter killed with SIGKILL down with it', async () => {
    expect(await container.run('print(2)')).toBe('2\n');
    const before = await kernelProcesses();
    const jupyter = Object.entries(before).find(([, cmdline]) => cmdline.includes('-m jupyter_server'))?.[0];
    const kernels = Object.keys(before).filter((pid) => pid !== jupyter);
    expect(jupyter).toBeDefined();
    expect(kernels.length).toBeGreaterThan(0);

    const killed = await docker(['exec', '-u', 'user', container.name, 'kill', '-KILL', jupyter!]);
    expect(killed.code, killed.stderr).toBe(0);
    const started = Date.now();
    let left = kernels;
    while (left.length > 0 && Date.now() - started < 10_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const now = await kernelProcesses();
      left = kernels.filter((pid) => pid in now && now[pid] === before[pid]);
    }
    console.log(
      `after kill -9 of Jupyter in the container: ${kernels.length} kernel processes, ${left.length} left after ${Date.now() - started} ms`,
    );
    expect(left).toEqual([]);

    // The server recovers with a new Jupyter and new kernels.
    let output = '';
    for (let attempt = 0; attempt < 60 && output !== '3\n'; attempt++) {
      output = await container.run('print(3)').catch(() => '');
      if (output !== '3\n') await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(output).toBe('3\n');
  });
});
