import { createHash, randomBytes } from 'node:crypto';
import { Sandbox } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainer, type Container } from '../helpers/docker.js';
import { envdCases } from '../helpers/e2b-commands.js';
import { checkContextOutsideWorkspace } from '../helpers/e2b-contexts.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * The official e2b SDK against the image. Its debug mode sends code to localhost:49999 and
 * commands, terminals and git to envd's port, localhost:49983, with no token, so the container is
 * published on both ports, open (no ACCESS_TOKEN) and on loopback only. scripts/docker-ci.sh runs this after `npm test`, whose own
 * SDK server on that port has stopped by then.
 */
describe('the e2b SDK in debug mode against the container (localhost:49999 and 49983)', () => {
  let container: Container;
  let sandbox: Sandbox;

  beforeAll(async () => {
    container = await startContainer(['-p', '127.0.0.1:49999:49999', '-p', '127.0.0.1:49983:49983'], { ACCESS_TOKEN: '' });
    sandbox = await Sandbox.create({ debug: true });
  });
  afterAll(async () => {
    await container?.remove();
  });

  it("creates, uses, lists, restarts and removes a context in '/tmp', outside the workspace", async () => {
    await checkContextOutsideWorkspace(sandbox, '/tmp');
  });

  it('runs code in the default context as before', async () => {
    const execution = await sandbox.runCode('import os\nprint(os.getcwd())');
    expect(execution.error).toBeUndefined();
    expect(execution.logs.stdout.join('')).toBe('/home/user\n');
  });

  it("runs bash by name in the image's bash kernel", async () => {
    const execution = await sandbox.runCode('N=6; echo $((N * 7)) "$(whoami)"', { language: 'bash' });
    expect(execution.error).toBeUndefined();
    expect(execution.logs.stdout.join('')).toBe('42 user\n');
  });

  it("returns a matplotlib figure's chart next to its PNG, from the image's extractor", async () => {
    const execution = await sandbox.runCode(
      'import matplotlib.pyplot as plt\nplt.bar(["a", "b"], [3, 5])\nplt.title("Counts")\nplt.show()',
    );
    expect(execution.error).toBeUndefined();
    const figure = execution.results.find((result) => result.png !== undefined);
    expect(figure?.chart).toMatchObject({ type: 'bar', title: 'Counts' });
    const elements = (figure!.chart as unknown as { elements: Array<{ label: string; value: number }> }).elements;
    expect(elements.map((bar) => [bar.label, bar.value])).toEqual([
      ['a', 3],
      ['b', 5],
    ]);
  });

  // The same cases as against a local server: the image's process host, its users and its git.
  envdCases(() => ({ sandbox, workspaceDir: '/home/user' }));

  describe("sandbox.files, with the kernels' user's rights", () => {
    it('writes and reads bytes as that user, owned by that user, anywhere it may write', async () => {
      const bytes = randomBytes(8 * 1024 * 1024 + 7);
      for (const file of ['/home/user/files-test/deep/er/blob.bin', '/tmp/files-test-blob.bin']) {
        await sandbox.files.write(file, new Blob([bytes]));
        const back = await sandbox.files.read(file, { format: 'bytes' });
        expect(sha256(back), file).toBe(sha256(bytes));
        const owner = await sandbox.commands.run(`stat -c '%U %s' ${file}`);
        expect(owner.stdout.trim(), file).toBe(`user ${bytes.length}`);
      }
      const info = await sandbox.files.getInfo('/home/user/files-test/deep/er/blob.bin');
      expect(info).toMatchObject({ name: 'blob.bin', type: 'file', size: bytes.length, owner: 'user' });
      // The kernels see what was written, as the same user.
      const execution = await sandbox.runCode('print(len(open("/home/user/files-test/deep/er/blob.bin", "rb").read()))');
      expect(execution.logs.stdout.join('')).toBe(`${bytes.length}\n`);
    });

    it('refuses what that user may not do: write in /etc, read /root, replace a root-owned file, and leaves them as they were', async () => {
      await expect(sandbox.files.write('/etc/files-test.txt', 'x')).rejects.toThrow(/permission|denied/i);
      expect(
        (await sandbox.commands.run('test -e /etc/files-test.txt', { user: 'user' }).catch((error: { exitCode: number }) => error))
          .exitCode,
      ).toBe(1);
      await expect(sandbox.files.list('/root')).rejects.toThrow(/permission|denied/i);
      await expect(sandbox.files.read('/etc/shadow')).rejects.toThrow(/permission|denied/i);
      const before = await sandbox.commands.run('sha256sum /etc/passwd');
      await expect(sandbox.files.write('/etc/passwd', 'user::0:0::/:/bin/sh\n')).rejects.toThrow(/permission|denied/i);
      await expect(sandbox.files.remove('/etc/hostname')).rejects.toThrow(/permission|denied/i);
      await expect(sandbox.files.makeDir('/usr/files-test')).rejects.toThrow(/permission|denied/i);
      expect((await sandbox.commands.run('sha256sum /etc/passwd')).stdout).toBe(before.stdout);
    });

    it("watches a directory for changes that the kernels' commands make", async () => {
      await sandbox.files.makeDir('/home/user/files-watch');
      const events: Array<[string, string]> = [];
      const handle = await sandbox.files.watchDir('/home/user/files-watch', (event) => void events.push([event.type, event.name]), {
        recursive: true,
      });
      try {
        const seen = async (type: string, name: string) => {
          const deadline = Date.now() + 10_000;
          while (!events.some(([t, n]) => t === type && n === name) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        };
        // One step at a time: a file made and removed in a directory before the watch reaches
        // it is never seen (as with inotify anywhere).
        await sandbox.commands.run('mkdir /home/user/files-watch/sub');
        await seen('create', 'sub');
        await sandbox.commands.run('echo hi > /home/user/files-watch/sub/a.txt');
        await seen('write', 'sub/a.txt');
        await sandbox.commands.run(
          'chmod 600 /home/user/files-watch/sub/a.txt && mv /home/user/files-watch/sub/a.txt /home/user/files-watch/b.txt',
        );
        await seen('create', 'b.txt');
        await sandbox.commands.run('rm /home/user/files-watch/b.txt');
        await seen('remove', 'b.txt');
        const order = [
          'create sub',
          'create sub/a.txt',
          'write sub/a.txt',
          'chmod sub/a.txt',
          'rename sub/a.txt',
          'create b.txt',
          'remove b.txt',
        ];
        const positions = order.map((wanted) => events.findIndex(([type, name]) => `${type} ${name}` === wanted));
        expect(
          positions.every((position) => position >= 0),
          JSON.stringify(events),
        ).toBe(true);
        expect([...positions].sort((a, b) => a - b)).toEqual(positions);
      } finally {
        await handle.stop();
      }
    });
  });
});
