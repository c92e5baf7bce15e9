import { buffer } from 'node:stream/consumers';
import { pack as tarPack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startContainer, type Container } from '../helpers/docker.js';

interface Entry {
  name: string;
  type?: 'file' | 'directory';
  mode: number;
  content?: string;
}

/** A tar archive with exactly these headers, modes included. */
async function packed(entries: Entry[]): Promise<Buffer> {
  const pack = tarPack();
  const done = buffer(pack);
  for (const entry of entries) pack.entry({ name: entry.name, type: entry.type ?? 'file', mode: entry.mode }, entry.content ?? '');
  pack.finalize();
  return done;
}

/** What `tar -cf` of a project makes, plus the read-only and closed directories archives carry. */
const project: Entry[] = [
  { name: 'src/', type: 'directory', mode: 0o755 },
  { name: 'src/main.py', mode: 0o644, content: 'print(1)\n' },
  { name: 'README.md', mode: 0o644, content: '# project\n' },
  { name: 'bin/', type: 'directory', mode: 0o755 },
  { name: 'bin/run.sh', mode: 0o755, content: '#!/bin/sh\n' },
  { name: 'ro/', type: 'directory', mode: 0o555 },
  { name: 'ro/notes.txt', mode: 0o444, content: 'read only\n' },
  { name: 'ro/closed/', type: 'directory', mode: 0o000 },
  { name: 'ro/closed/data.txt', mode: 0o000, content: 'closed\n' },
];

/**
 * Archives in the image, where the API (user code-interpreter) and the kernels (user `user`)
 * share the workspace through the group `workspace`: what the API unpacks, the kernels can
 * change, and whatever an archive's modes, the API can delete it and leaves nothing behind.
 */
describe('archives in the image (API and kernels under different users)', () => {
  let container: Container;

  beforeAll(async () => {
    container = await startContainer();
  });
  afterAll(async () => {
    await container?.remove();
  });

  const extract = (target: string, body: Buffer) => container.fetch(`/files/${target}?extract=tar`, { method: 'PUT', body });
  const stagingLeft = () => container.run('import os\nprint(sorted(n for n in os.listdir("/home/user") if n.startswith(".extract-")))');

  it('the kernel can create and append everywhere in an extracted tree', async () => {
    expect((await extract('project', await packed(project))).status).toBe(200);
    const out = await container.run(
      [
        'import os',
        'failures = []',
        'for top, dirs, files in os.walk("/home/user/project"):',
        '    for name in files:',
        '        try:',
        '            with open(os.path.join(top, name), "a") as f: f.write("appended\\n")',
        '        except OSError as e: failures.append(f"append {name}: {e}")',
        '    try:',
        '        with open(os.path.join(top, "made-by-kernel.txt"), "w") as f: f.write("new\\n")',
        '        os.mkdir(os.path.join(top, "dir-by-kernel"))',
        '    except OSError as e: failures.append(f"create in {top}: {e}")',
        'print(failures)',
      ].join('\n'),
    );
    expect(out).toBe('[]\n');
    // And back through the API: what the kernel changed is what the API serves.
    expect(await (await container.fetch('/files/project/ro/closed/data.txt')).text()).toBe('closed\nappended\n');
    expect((await container.fetch('/files/project', { method: 'DELETE' })).status).toBe(204);
    expect(await container.run('import os\nprint(os.path.exists("/home/user/project"))')).toBe('False\n');
  });

  it('DELETE removes read-only and closed directories the API owns', async () => {
    const made = await docker([
      'exec',
      '-u',
      'code-interpreter',
      container.name,
      'sh',
      '-c',
      'mkdir -p /home/user/locked/a/b && echo x > /home/user/locked/a/b/f && chmod 000 /home/user/locked/a/b && chmod 555 /home/user/locked/a /home/user/locked',
    ]);
    expect(made.code, made.stderr).toBe(0);
    expect((await container.fetch('/files/locked', { method: 'DELETE' })).status).toBe(204);
    expect(await container.run('import os\nprint(os.path.exists("/home/user/locked"))')).toBe('False\n');
  });

  it('leaves no staging directory after any failure', async () => {
    // A file where the archive has a directory: 409, after the read-only directories were staged.
    await container.run('import os\nos.makedirs("/home/user/clash", exist_ok=True)\nopen("/home/user/clash/zz", "w").write("in the way")');
    const clash = await packed([...project, { name: 'zz/', type: 'directory', mode: 0o755 }, { name: 'zz/f', mode: 0o644, content: 'x' }]);
    expect((await extract('clash', clash)).status).toBe(409);
    expect(await stagingLeft()).toBe('[]\n');

    const whole = await packed(project);
    const started = performance.now();
    const cut = await extract('cut', whole.subarray(0, 3 * 512));
    const seconds = (performance.now() - started) / 1000;
    console.log(`a tar cut after ${3 * 512} bytes: ${cut.status} after ${seconds.toFixed(3)} s`);
    expect(cut.status).toBe(400);
    expect(((await cut.json()) as { code: string }).code).toBe('ERR_INVALID_ARCHIVE');
    expect(await stagingLeft()).toBe('[]\n');

    const unsafe = await packed([...project, { name: 'ro/../../escape.txt', mode: 0o644, content: 'x' }]);
    expect((await extract('unsafe', unsafe)).status).toBe(400);
    expect(await stagingLeft()).toBe('[]\n');
  });

  it('answers 403 with nothing written when the archive merges into a directory the kernel made read-only', async () => {
    await container.run('import os\nos.makedirs("/home/user/kro/sub")\nos.chmod("/home/user/kro/sub", 0o555)');
    const archive = await packed([
      { name: 'a.txt', mode: 0o644, content: 'a' },
      { name: 'sub/', type: 'directory', mode: 0o755 },
      { name: 'sub/f.txt', mode: 0o644, content: 'f' },
      { name: 'z.txt', mode: 0o644, content: 'z' },
    ]);
    const answer = await extract('kro', archive);
    expect(answer.status).toBe(403);
    expect(await container.run('import os\nprint(sorted(os.listdir("/home/user/kro")), os.listdir("/home/user/kro/sub"))')).toBe(
      "['sub'] []\n",
    );
    expect(await stagingLeft()).toBe('[]\n');
  });
});
