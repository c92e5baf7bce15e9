import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, image, mustDocker, startContainer, uniqueName, type Container } from '../helpers/docker.js';

/**
 * EGRESS_ALLOW on a Docker network of the test's own, with HTTP servers of its own as targets:
 * target-a allowed by name, target-b by address, every name under wild.test by wildcard,
 * target-c not at all. The network's addresses come from 198.18.0.0/15 (set aside for tests,
 * not private), so that names leading there count as public; names under wild.test given with
 * --add-host lead to the addresses the proxy must refuse (it refuses before connecting: no
 * packet is sent to any of them).
 */
const targetImage = process.env.TARGET_IMAGE ?? process.env.BASE_IMAGE ?? 'code-interpreter-base:trixie-node24';

describe('the egress allow-list (container)', () => {
  const network = uniqueName('ci-egress');
  const subnet = `198.${18 + Math.floor(Math.random() * 2)}.${Math.floor(Math.random() * 256)}`;
  const ownAddress = `${subnet}.250`;
  const specialNames: Record<string, string> = {
    'loop.wild.test': '127.0.0.1',
    'loop6.wild.test': '::1',
    'mapped.wild.test': '::ffff:127.0.0.1',
    'zero.wild.test': '0.0.0.0',
    'metadata.wild.test': '169.254.169.254',
    'link6.wild.test': 'fe80::1',
    'private.wild.test': '10.1.2.3',
    'private6.wild.test': 'fd00::1',
    'cgnat.wild.test': '100.64.0.1',
    'multicast.wild.test': '224.0.0.1',
    'self.wild.test': ownAddress,
  };
  const targets: string[] = [];
  const address: Record<string, string> = {};
  let container: Container;

  async function startTarget(name: string, alias?: string): Promise<void> {
    const container = `${network}-${name}`;
    targets.push(container);
    await mustDocker([
      'run',
      '-d',
      '--name',
      container,
      '--network',
      network,
      '--network-alias',
      name,
      ...(alias ? ['--network-alias', alias] : []),
      '-e',
      `NAME=${name}`,
      targetImage,
      'node',
      '-e',
      "require('http').createServer((q, r) => r.end(process.env.NAME)).listen(80)",
    ]);
    address[name] = await mustDocker(['inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
  }

  beforeAll(async () => {
    await mustDocker(['network', 'create', '--subnet', `${subnet}.0/24`, network]);
    await Promise.all([
      startTarget('target-a'),
      startTarget('target-b'),
      startTarget('target-c'),
      startTarget('target-w', 'api.wild.test'),
    ]);
    const hosts = Object.entries({ ...specialNames, 'listed.wild.test': '127.0.0.2' }).flatMap(([name, ip]) => [
      '--add-host',
      `${name}:${ip}`,
    ]);
    container = await startContainer(['--network', network, '--ip', ownAddress, ...hosts, '--cap-add', 'NET_ADMIN'], {
      EGRESS_ALLOW: `target-a, *.wild.test, ${address['target-b']}, 127.0.0.2`,
    });
  }, 240_000);

  afterAll(async () => {
    await container?.remove();
    for (const target of targets) await docker(['rm', '-f', target]);
    await docker(['network', 'rm', network]);
  });

  /**
   * From the kernel: DNS, HTTP through the proxy (urllib follows the proxy variables), a CONNECT
   * tunnel through the proxy, and a direct TCP connection that bypasses it.
   */
  async function probe(): Promise<Record<string, string>> {
    return JSON.parse(await container.run(probeCode())) as Record<string, string>;
  }

  function probeCode(): string {
    return [
      'import json, socket, urllib.request, urllib.error',
      `address = ${JSON.stringify(address)}`,
      'def http(host):',
      '    try:',
      '        return urllib.request.urlopen(f"http://{host}/", timeout=10).read().decode()',
      '    except urllib.error.HTTPError as error:',
      '        return f"HTTP {error.code}"',
      '    except Exception as error:',
      '        return type(error).__name__',
      'def get_over(sock):',
      '    sock.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")',
      '    data = b""',
      '    while chunk := sock.recv(4096):',
      '        data += chunk',
      '    return data.split(b"\\r\\n\\r\\n", 1)[1].decode()',
      'def direct(host):',
      '    try:',
      '        with socket.create_connection((host, 80), timeout=5) as sock:',
      '            return get_over(sock)',
      '    except Exception as error:',
      '        return type(error).__name__',
      'def tunnel(host):',
      '    with socket.create_connection(("127.0.0.1", 3128), timeout=10) as sock:',
      '        sock.sendall(f"CONNECT {host}:80 HTTP/1.1\\r\\nHost: {host}:80\\r\\n\\r\\n".encode())',
      '        status = sock.recv(4096).split(b"\\r\\n")[0].decode()',
      '        return get_over(sock) if " 200 " in status else status.split(" ", 1)[1]',
      'ip_of = {"target-a": address["target-a"], "target-b": address["target-b"], "target-c": address["target-c"], "api.wild.test": address["target-w"]}',
      'def dns(host):',
      '    try:',
      '        return "resolves" if socket.gethostbyname(host) == ip_of[host] else "wrong address"',
      '    except Exception as error:',
      '        return type(error).__name__',
      'result = {}',
      'for name, ip in ip_of.items():',
      '    result[f"dns {name}"] = dns(name)',
      '    result[f"http {name}"] = http(name)',
      '    result[f"http {name} by address"] = http(ip)',
      '    result[f"tunnel {name}"] = tunnel(name)',
      '    result[f"direct {name} by address"] = direct(ip)',
      'print(json.dumps(result))',
    ].join('\n');
  }

  /** The same probe as a command (POST /processes), which runs as the kernels' user too. */
  async function probeFromCommand(): Promise<Record<string, string>> {
    const response = await container.fetch('/processes', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: 'python3', args: ['-c', probeCode()] }),
    });
    expect(response.status).toBe(200);
    const events = (await response.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; text?: string; exit_code?: number });
    expect(events.find((event) => event.type === 'exit')).toMatchObject({ exit_code: 0 });
    return JSON.parse(
      events
        .filter((event) => event.type === 'stdout')
        .map((event) => event.text)
        .join(''),
    ) as Record<string, string>;
  }

  const denied = 'HTTP 403';
  const refused = 'ConnectionRefusedError';
  const forbidden = '403 Forbidden';

  it('reaches allowed hosts by name and by address, and nothing else; DNS works', async () => {
    expect(await probe()).toEqual({
      'dns target-a': 'resolves',
      'http target-a': 'target-a',
      // Allowed by name only: its address alone is not on the list, through the proxy or not.
      'http target-a by address': denied,
      'tunnel target-a': 'target-a',
      'direct target-a by address': refused,
      'dns target-b': 'resolves',
      // Allowed by address: by name it is not on the list.
      'http target-b': denied,
      'http target-b by address': 'target-b',
      'tunnel target-b': forbidden,
      'direct target-b by address': 'target-b',
      'dns target-c': 'resolves',
      'http target-c': denied,
      'http target-c by address': denied,
      'tunnel target-c': forbidden,
      'direct target-c by address': refused,
      'dns api.wild.test': 'resolves',
      'http api.wild.test': 'target-w',
      'http api.wild.test by address': denied,
      'tunnel api.wild.test': 'target-w',
      'direct api.wild.test by address': refused,
    });
  });

  it('holds commands to the same list as kernel code', async () => {
    expect(await probeFromCommand()).toEqual(await probe());
  });

  it('refuses an allowed name that leads to loopback, link-local, private, CGNAT, multicast, unspecified or its own address, unless that address is listed', async () => {
    // Through the proxy by HTTP and by CONNECT, to the API's port: both reach the API on any
    // loopback address when the proxy connects.
    const code = [
      'import json, socket, urllib.request, urllib.error',
      `names = ${JSON.stringify([...Object.keys(specialNames), 'listed.wild.test'])}`,
      'def http(host):',
      '    try:',
      '        return urllib.request.urlopen(f"http://{host}:49999/health", timeout=10).read().decode()',
      '    except urllib.error.HTTPError as error:',
      '        return f"HTTP {error.code}: {error.read().decode().strip()}"',
      '    except Exception as error:',
      '        return type(error).__name__',
      'def tunnel(host):',
      '    with socket.create_connection(("127.0.0.1", 3128), timeout=10) as sock:',
      '        sock.sendall(f"CONNECT {host}:49999 HTTP/1.1\\r\\nHost: {host}:49999\\r\\n\\r\\n".encode())',
      '        return sock.recv(4096).split(b"\\r\\n")[0].decode().split(" ", 1)[1]',
      'print(json.dumps({name: [http(name), tunnel(name)] for name in names}))',
    ].join('\n');
    const result = JSON.parse(await container.run(code)) as Record<string, [string, string]>;
    const expected: Record<string, [string, string]> = {};
    for (const [name, ip] of Object.entries(specialNames)) {
      // The resolver may answer an IPv4-mapped address in either form.
      const shown = `(::ffff:)?${ip.replace(/^::ffff:/, '').replace(/\./g, '\\.')}`;
      expect(result[name]?.[0], name).toMatch(
        new RegExp(`^HTTP 403: egress to ${name.replace(/\./g, '\\.')} is not allowed: it resolves to ${shown} \\(.+ address\\)`),
      );
      expected[name] = [result[name]![0], '403 Forbidden'];
    }
    expected['listed.wild.test'] = ['"OK"', '200 Connection Established'];
    expect(result).toEqual(expected);
    expect(result['self.wild.test']![0]).toContain("(this container's own address)");
  });

  it('applies a new list at runtime with egress-allow, for new connections', async () => {
    const applied = await docker(['exec', '-u', 'root', container.name, 'egress-allow', `target-c,${address['target-a']}/32`]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toBe(`egress allowed: target-c,${address['target-a']}/32\n`);
    const result = await probe();
    expect(result).toMatchObject({
      'http target-c': 'target-c',
      'tunnel target-c': 'target-c',
      'direct target-c by address': refused,
      'http target-a': denied,
      'http target-a by address': 'target-a',
      'direct target-a by address': 'target-a',
      'http target-b by address': denied,
      'direct target-b by address': refused,
      'http api.wild.test': denied,
      'dns target-b': 'resolves',
    });

    const none = await docker(['exec', '-u', 'root', container.name, 'egress-allow', 'none']);
    expect(none.code, none.stderr).toBe(0);
    const closed = await probe();
    for (const [probeName, outcome] of Object.entries(closed)) {
      if (probeName.startsWith('dns ')) expect(outcome, probeName).toBe('resolves');
      else expect([denied, refused, forbidden], `${probeName}: ${outcome}`).toContain(outcome);
    }
  });

  it('refuses a bad list or a caller without root, and changes nothing then', async () => {
    await docker(['exec', '-u', 'root', container.name, 'egress-allow', 'target-a']);
    const bad = await docker(['exec', '-u', 'root', container.name, 'egress-allow', 'target-c,not a host!']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('"not a host!" is neither a domain, an IP address nor a CIDR range');
    const user = await docker(['exec', '-u', 'user', container.name, 'egress-allow', 'target-c']);
    expect(user.code).not.toBe(0);
    expect(user.stderr).toContain('needs root');
    expect(await probe()).toMatchObject({ 'http target-a': 'target-a', 'http target-c': denied });
  });

  it('does not start without NET_ADMIN, and says why', async () => {
    const result = await docker(['run', '--rm', '--network', network, '-e', 'EGRESS_ALLOW=target-a', image], 90_000);
    expect(result.code).not.toBe(0);
    const output = result.stdout + result.stderr;
    expect(output).toContain('NET_ADMIN');
    expect(output).toContain('EGRESS_ALLOW is set but the egress allow-list could not be applied');
  });
});
