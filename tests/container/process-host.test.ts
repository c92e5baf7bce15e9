import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mustDocker, startContainer, type Container } from '../helpers/docker.js';

const SOCKET = '/run/code-interpreter/process-host/host.sock';

/**
 * A client of the process host's protocol in one `node -e` script: sends a start, prints what
 * came back as JSON. Run inside the container as the API's user, the only one that may connect.
 */
const client = (start: Record<string, unknown>) => `
const net = require('node:net');
const socket = net.connect(${JSON.stringify(SOCKET)});
const body = Buffer.from(JSON.stringify(${JSON.stringify({ op: 'start', id: 'container-test', args: [], envs: {}, cwd: null, pty: null, stdin: false, timeout_ms: null, ...start })}));
const header = Buffer.alloc(5);
header.writeUInt32BE(body.length + 1);
socket.write(Buffer.concat([header, body]));
let buffer = Buffer.alloc(0);
const out = { events: [], stdout: '' };
socket.on('data', (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= 5 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
    const length = buffer.readUInt32BE(0);
    const kind = buffer[4];
    const frame = buffer.subarray(5, 4 + length);
    if (kind === 0) out.events.push(JSON.parse(frame.toString()));
    else if (kind === 1) out.stdout += frame.toString();
    buffer = buffer.subarray(4 + length);
  }
});
socket.on('close', () => console.log(JSON.stringify(out)));
socket.on('error', (error) => console.log(JSON.stringify({ error: error.code })));
`;

/** The process host in the image: who can reach it, and whom it runs commands as. */
describe('process host (container)', () => {
  let container: Container;

  beforeAll(async () => {
    container = await startContainer();
  });
  afterAll(async () => {
    await container?.remove();
  });

  const exec = (user: string, args: string[]) => mustDocker(['exec', '-u', user, container.name, ...args]);

  it('runs a command through the host as the kernels\u2019 user', async () => {
    const answer = JSON.parse(
      await exec('code-interpreter', ['node', '-e', client({ cmd: 'sh', args: ['-c', 'id -un; id -u; pwd'] })]),
    ) as {
      events: Array<Record<string, unknown>>;
      stdout: string;
    };
    const uid = await exec('root', ['id', '-u', 'user']);
    expect(answer.stdout).toBe(`user\n${uid}\n/home/user\n`);
    expect(answer.events.at(-1)).toEqual({ ev: 'exit', exit_code: 0, signal: null });
  });

  it("gives commands no server variable: neither the API's token nor Jupyter's", async () => {
    const response = await container.fetch('/processes', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: 'env; echo "uid=$(id -u)"' }),
    });
    expect(response.status).toBe(200);
    const events = (await response.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; text?: string });
    const stdout = events
      .filter((event) => event.type === 'stdout')
      .map((event) => event.text)
      .join('');
    expect(stdout).toMatch(/^uid=\d+$/m);
    expect(stdout).toMatch(/^HOME=\/home\/user$/m);
    expect(stdout).not.toMatch(/^(JUPYTER_TOKEN|ACCESS_TOKEN|PROCESS_HOST_SOCKET|JUPYTER_URL)=/m);
    expect(stdout).not.toContain(container.accessToken);
    // Jupyter's token, as Jupyter's own environment holds it, appears nowhere either.
    const jupyterToken = (
      await exec('root', [
        'sh',
        '-c',
        String.raw`cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | sed -n 's/^JUPYTER_TOKEN=//p' | head -n 1`,
      ])
    ).trim();
    expect(jupyterToken.length).toBeGreaterThan(16);
    expect(stdout).not.toContain(jupyterToken);
  });

  it('gives the socket to root and the API alone', async () => {
    expect(await exec('root', ['stat', '-c', '%a %U %G', SOCKET, '/run/code-interpreter/process-host'])).toBe(
      '660 root code-interpreter\n750 root code-interpreter',
    );
    // Kernel code, as `user`: the directory is closed, so the socket cannot be reached.
    const out = await container.run(
      [
        'import socket',
        's = socket.socket(socket.AF_UNIX)',
        'try:',
        `    s.connect(${JSON.stringify(SOCKET)})`,
        '    print("connected")',
        'except PermissionError:',
        '    print("denied")',
      ].join('\n'),
    );
    expect(out).toBe('denied\n');
  });

  it("keeps the host's environment from kernel code, though it runs under the same uid", async () => {
    const out = await container.run(
      [
        'import os',
        'host = next(int(p) for p in os.listdir("/proc") if p.isdigit() and b"process-host/main.js" in open(f"/proc/{p}/cmdline", "rb").read())',
        'uid = next(int(line.split()[1]) for line in open(f"/proc/{host}/status") if line.startswith("Uid:"))',
        'print("same uid" if uid == os.getuid() else "different uid")',
        'try:',
        '    open(f"/proc/{host}/environ", "rb").read()',
        '    print("environ readable")',
        'except PermissionError:',
        '    print("environ denied")',
      ].join('\n'),
    );
    expect(out).toBe('same uid\nenviron denied\n');
  });
});
