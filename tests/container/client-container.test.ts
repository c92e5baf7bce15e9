import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError, ExecutionClient, ExecutionContainer } from '../../clients/typescript/src/index.js';
import { debianMirror, docker, dockerTcpRelay, image } from '../helpers/docker.js';

/** Whether a container of that id still exists, running or not. */
async function exists(id: string): Promise<boolean> {
  const result = await docker(['ps', '-a', '-q', '--no-trunc', '--filter', `id=${id}`]);
  return result.stdout.trim() !== '';
}

describe('ExecutionContainer (container)', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'client-container-'));
    // The kernels' user in the container is not this one: the bound directory must be theirs to write.
    await chmod(scratch, 0o777);
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('throws from the port getters before run() unless a port was given', () => {
    const container = new ExecutionContainer({ tag: image });
    expect(() => container.executorPort).toThrow(/executorPort is not known before run\(\)/);
    expect(() => container.resourcePort).toThrow(/resourcePort is not known before run\(\)/);
    const given = new ExecutionContainer({ tag: image, executorPort: 45678 });
    expect([given.executorPort, given.resourcePort]).toEqual([45678, 45678]);
    expect(() => new ExecutionContainer({ executorPort: 45678, resourcePort: 45679 })).toThrow(/one port of the image serves both/);
  });

  it('refuses container paths outside the workspace and the server settings in env', () => {
    expect(() => new ExecutionContainer({ binds: { data: '/etc' } })).toThrow(/must be relative to the workspace/);
    expect(() => new ExecutionContainer({ binds: { data: 'a/../../etc' } })).toThrow(/no "\.\."/);
    expect(() => new ExecutionContainer({ env: { ACCESS_TOKEN: 'x' } })).toThrow(/ACCESS_TOKEN is a setting of the server/);
    expect(() => new ExecutionContainer({ env: { 'A-B': 'x' } })).toThrow(/not a valid variable name/);
  });

  it('runs a container whose code sees the binds both ways and the env, with the token, and kill() removes it', async () => {
    const shared = path.join(scratch, 'shared');
    const container = new ExecutionContainer({
      tag: image,
      binds: { [path.relative(process.cwd(), shared)]: 'data/shared' },
      env: { GREETING: 'hello from the host' },
    });
    await container.run();
    const id = container.id!;
    try {
      expect(container.accessToken).toMatch(/^[0-9a-f]{64}$/);
      expect(container.executorPort).toBe(container.resourcePort);
      await chmod(shared, 0o777);
      await writeFile(path.join(shared, 'from-host.txt'), 'written on the host');
      await using client = await new ExecutionClient({
        host: container.host,
        port: container.executorPort,
        accessToken: container.accessToken,
      }).connect();
      const read = await client.execute("print(open('/home/user/data/shared/from-host.txt').read())");
      expect(read.text).toBe('written on the host');
      await client.execute("open('data/shared/from-code.txt', 'w').write('written by code')");
      expect(await readFile(path.join(shared, 'from-code.txt'), 'utf8')).toBe('written by code');
      expect((await client.execute('import os; print(os.environ["GREETING"])')).text).toBe('hello from the host');

      // Without the token the server refuses.
      const anonymous = new ExecutionClient({ host: container.host, port: container.executorPort });
      await expect(anonymous.connect({ retries: 0 })).rejects.toBeInstanceOf(AuthenticationError);
    } finally {
      await container.kill();
    }
    expect(await exists(id)).toBe(false);
    await container.kill();
  });

  it('runs two containers on random ports at once', async () => {
    const first = new ExecutionContainer({ tag: image, accessToken: null });
    const second = new ExecutionContainer({ tag: image });
    try {
      await Promise.all([first.run(), second.run()]);
      expect(first.executorPort).not.toBe(second.executorPort);
      expect(first.accessToken).toBeNull();
      for (const container of [first, second]) {
        await using client = await new ExecutionClient({
          host: container.host,
          port: container.executorPort,
          accessToken: container.accessToken,
        }).connect();
        expect((await client.execute('print(6 * 7)')).text).toBe('42');
      }
    } finally {
      await Promise.all([first.kill(), second.kill()]);
    }
  });

  it('removes the container with await using when the block throws', async () => {
    let id: string | undefined;
    await expect(
      (async () => {
        await using container = await new ExecutionContainer({ tag: image }).run();
        id = container.id;
        throw new Error('planned failure');
      })(),
    ).rejects.toThrow('planned failure');
    expect(id).toBeDefined();
    expect(await exists(id!)).toBe(false);
  });

  it('reaches Docker at a tcp DOCKER_HOST', async () => {
    const relay = await dockerTcpRelay();
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = relay.url;
    try {
      await using container = await new ExecutionContainer({ tag: image }).run();
      expect(container.host).toBe('127.0.0.1');
      await using client = await new ExecutionClient({
        host: container.host,
        port: container.executorPort,
        accessToken: container.accessToken,
      }).connect();
      expect((await client.execute('print("over tcp")')).text).toBe('over tcp');
      expect(relay.connections()).toBeGreaterThan(0);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
      relay.close();
    }
  });

  it('says how to build the image when it is missing and cannot be pulled', async () => {
    const container = new ExecutionContainer({ tag: 'code-interpreter-missing.invalid/none:absent', showPullProgress: false });
    await expect(container.run()).rejects.toThrow(/docker build -t code-interpreter-missing\.invalid\/none:absent \./);
  });

  it('replaces the egress allow-list with initFirewall, and refuses it where none can be enforced', async () => {
    const notRunning = new ExecutionContainer({ tag: image });
    await expect(notRunning.initFirewall(['example.com'])).rejects.toThrow(/not running/);

    // What the egress proxy answers for a host: its refusal names the host; an allowed one gets
    // further (to its DNS look-up, which may fail where there is no network).
    const probe = (host: string) =>
      [
        'import urllib.request, urllib.error',
        'try:',
        `    print(urllib.request.urlopen('http://${host}/', timeout=15).status)`,
        'except urllib.error.HTTPError as e:',
        '    print(e.code, e.read().decode()[:200])',
        'except Exception as e:',
        '    print(repr(e)[:200])',
      ].join('\n');
    await using container = await new ExecutionContainer({ tag: image, allowedDomains: ['example.com'] }).run();
    await using client = await new ExecutionClient({
      host: container.host,
      port: container.executorPort,
      accessToken: container.accessToken,
    }).connect();
    expect((await client.execute(probe('example.org'))).text).toMatch(/403 egress to example\.org is not allowed/);
    expect((await client.execute(probe('example.com'))).text).not.toMatch(/not allowed/);

    await container.initFirewall(['example.org']);
    expect((await client.execute(probe('example.com'))).text).toMatch(/403 egress to example\.com is not allowed/);
    expect((await client.execute(probe('example.org'))).text).not.toMatch(/not allowed/);

    await container.initFirewall([]);
    expect((await client.execute(probe('example.org'))).text).toMatch(/403 egress to example\.org is not allowed/);
    await expect(container.initFirewall(['not a domain'])).rejects.toThrow(/allowedDomains/);
    await expect(container.initFirewall(['bad_name!'])).rejects.toThrow(/egress-allow failed .*bad_name!/s);

    await using unrestricted = await new ExecutionContainer({ tag: image }).run();
    await expect(unrestricted.initFirewall(['example.com'])).rejects.toThrow(/cannot enforce an egress allow-list/);
  });

  it('lets an allowed host through to the network: the Debian mirror, refused before initFirewall names it', async () => {
    const mirror = await debianMirror();
    const fetchRelease = [
      'import urllib.request, urllib.error',
      'try:',
      `    answer = urllib.request.urlopen(${JSON.stringify(`${mirror.href.replace(/\/$/, '')}/dists/trixie/Release`)}, timeout=30)`,
      '    print(answer.status, answer.read(4096).decode(errors="replace"))',
      'except urllib.error.HTTPError as e:',
      '    print(e.code, e.read().decode()[:200])',
      'except Exception as e:',
      '    print(repr(e)[:200])',
    ].join('\n');
    await using container = await new ExecutionContainer({ tag: image, allowedDomains: [] }).run();
    await using client = await new ExecutionClient({
      host: container.host,
      port: container.executorPort,
      accessToken: container.accessToken,
    }).connect();
    expect((await client.execute(fetchRelease)).text).toContain(`403 egress to ${mirror.hostname} is not allowed`);
    await container.initFirewall([mirror.hostname]);
    // The mirror's own answer: Debian's Release file for trixie.
    expect((await client.execute(fetchRelease)).text).toMatch(/^200 [^]*Codename: trixie/);
    await container.initFirewall([]);
    expect((await client.execute(fetchRelease)).text).toContain(`403 egress to ${mirror.hostname} is not allowed`);
  });
});
