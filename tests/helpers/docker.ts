import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { readEvents, type ExecutionEvent } from './api.js';

export { docker, image, mustDocker, uniqueName, type DockerResult } from './docker-cli.js';
import { docker, image, mustDocker, uniqueName } from './docker-cli.js';

export interface Container {
  name: string;
  baseUrl: string;
  accessToken: string;
  /** Runs code in the default context; returns stdout, and fails on an `error` event. */
  run(code: string): Promise<string>;
  events(code: string): Promise<ExecutionEvent[]>;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  remove(): Promise<void>;
}

/**
 * Starts the image with `docker run -d` plus `args`, an access token and the API published on a
 * loopback port, and waits until a first `print(1)` runs.
 */
export async function startContainer(args: string[] = [], env: Record<string, string> = {}): Promise<Container> {
  const name = uniqueName('ci-sandbox');
  const accessToken = `access-${randomBytes(24).toString('hex')}`;
  const envArgs = Object.entries({ ACCESS_TOKEN: accessToken, ...env }).flatMap(([key, value]) => ['-e', `${key}=${value}`]);
  await mustDocker(['run', '-d', '--name', name, '-p', '127.0.0.1::49999', ...envArgs, ...args, image]);
  const remove = async () => {
    await docker(['rm', '-f', name]);
  };
  try {
    const port = (await mustDocker(['port', name, '49999/tcp'])).split('\n')[0]!.replace(/.*:/, '');
    const baseUrl = `http://127.0.0.1:${port}`;
    const authorized = (path: string, init: RequestInit = {}) =>
      fetch(`${baseUrl}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${accessToken}`, ...(init.headers as Record<string, string>) },
      });
    const events = async (code: string, signal?: AbortSignal) => {
      const response = await authorized('/execute', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code }),
        ...(signal ? { signal } : {}),
      });
      if (response.status !== 200) throw new Error(`POST /execute answered ${response.status}: ${await response.text()}`);
      return (await readEvents(response)).filter((event) => event.type !== 'keepalive');
    };
    const run = async (code: string, signal?: AbortSignal) => {
      const received = await events(code, signal);
      const errors = received.filter((event) => event.type === 'error');
      if (errors.length > 0) throw new Error(`the code failed: ${JSON.stringify(errors)}`);
      return received
        .filter((event) => event.type === 'stdout')
        .map((event) => event.text)
        .join('');
    };
    const deadline = Date.now() + 120_000;
    let last = '';
    for (;;) {
      const state = await mustDocker(['inspect', '--format', '{{.State.Running}}', name]);
      if (state !== 'true') throw new Error(`the container exited: ${(await docker(['logs', '--tail', '40', name])).stderr}`);
      try {
        // A connection docker-proxy accepts before the container listens may never be answered.
        if ((await run('print(1)', AbortSignal.timeout(15_000))) === '1\n') break;
      } catch (error) {
        last = (error as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`the container did not run code in time (last: ${last})`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    return { name, baseUrl, accessToken, run, events, fetch: authorized, remove };
  } catch (error) {
    const logs = await docker(['logs', '--tail', '60', name]);
    await remove();
    throw new Error(`${(error as Error).message}\n--- container logs ---\n${logs.stdout}${logs.stderr}`);
  }
}

export interface DockerRelay {
  /** `tcp://127.0.0.1:PORT`, for DOCKER_HOST. */
  url: string;
  /** How many connections it carried so far. */
  connections(): number;
  close(): void;
}

/** A tcp endpoint in front of the local daemon's socket: a remote DOCKER_HOST, as far as a client can tell. */
export async function dockerTcpRelay(): Promise<DockerRelay> {
  const socket = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');
  let connections = 0;
  const relay = createServer((client) => {
    connections++;
    const daemon = connect(socket);
    client.pipe(daemon).pipe(client);
    client.on('error', () => daemon.destroy());
    daemon.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    url: `tcp://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => relay.close(),
  };
}

/**
 * The Debian mirror this machine's apt uses (its first `…/debian` source), which containers on the
 * default bridge reach: a real host outside for network tests. Read from apt's configuration,
 * in either format (one-line `deb URI …` or deb822 `URIs: URI`).
 */
export async function debianMirror(): Promise<URL> {
  const files = ['/etc/apt/sources.list'];
  for (const name of await readdir('/etc/apt/sources.list.d').catch(() => [])) files.push(path.join('/etc/apt/sources.list.d', name));
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const match of text.matchAll(/^\s*(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(https?:\/\/\S+)/gm)) {
      const url = new URL(match[1]!);
      if (/\/debian\/?$/.test(url.pathname)) return url;
    }
  }
  throw new Error('no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/');
}
