import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy, parseAllowList } from '../../server/egress/allow-list.js';
import { createEgressProxy } from '../../server/egress/proxy.js';

/**
 * The egress proxy with real sockets: a target HTTP server on loopback, reached by name or
 * address. Names resolve through a table of the test's own; every address in it is on loopback,
 * so nothing here can send a packet off this machine even if the proxy connected where it must
 * not. The listed range 127.0.0.1/32 is what lets `localhost` through: loopback is refused
 * otherwise (see the last tests).
 */
describe('the egress proxy', () => {
  let target: http.Server;
  let targetPort: number;
  let targetRequests = 0;
  let proxy: http.Server;
  let proxyPort: number;
  const initialList = 'localhost,*.wild.test,127.0.0.1/32';
  let policy = new EgressPolicy(parseAllowList(initialList));
  const denied: string[] = [];
  let answers: Record<string, string[] | (() => string[])> = {};
  const lookup = async (host: string): Promise<string[]> => {
    const answer = answers[host] ?? (host === 'localhost' ? ['127.0.0.1'] : undefined);
    if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return typeof answer === 'function' ? answer() : answer;
  };

  beforeAll(async () => {
    target = http.createServer((request, response) => {
      targetRequests++;
      response.end(
        `${request.method} ${request.url} host=${request.headers.host} proxy-connection=${String(request.headers['proxy-connection'] ?? '-')}`,
      );
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    targetPort = (target.address() as net.AddressInfo).port;
    proxy = createEgressProxy({
      policy: () => policy,
      onDenied: (host, port, address) => denied.push(`${host}:${port}${address ? ` -> ${address}` : ''}`),
      lookup,
      ownAddresses: () => ['127.0.0.1', '::1'],
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    proxyPort = (proxy.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    proxy.closeAllConnections();
    target.closeAllConnections();
    await Promise.all([new Promise((resolve) => proxy.close(resolve)), new Promise((resolve) => target.close(resolve))]);
  });

  /** An absolute-form request through the proxy, as HTTP clients send with http_proxy set. */
  function viaProxy(url: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        { host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host, 'proxy-connection': 'keep-alive' } },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        },
      );
      request.on('error', reject);
      request.end();
    });
  }

  /** CONNECT, then a plain HTTP request through the tunnel; returns the status line and what followed. */
  async function tunnel(authority: string): Promise<{ status: string; body: string }> {
    const socket = net.connect(proxyPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.startsWith('HTTP/1.1 200') && received.endsWith('\r\n\r\n') && !received.includes('GET')) {
        socket.write(`GET /through HTTP/1.0\r\nHost: ${authority}\r\n\r\n`);
      }
    });
    await once(socket, 'close');
    const [status, ...rest] = received.split('\r\n');
    return { status: status!, body: rest.join('\r\n').split('\r\n\r\n').at(-1)! };
  }

  it('forwards requests to an allowed name, without the proxy headers', async () => {
    const answer = await viaProxy(`http://localhost:${targetPort}/path?q=1`);
    expect(answer).toEqual({ status: 200, body: `GET /path?q=1 host=localhost:${targetPort} proxy-connection=-` });
  });

  it('refuses a name or an address that is not on the list, with 403, and reports it', async () => {
    denied.length = 0;
    const answer = await viaProxy(`http://127.0.0.2:${targetPort}/`);
    expect(answer.status).toBe(403);
    expect(answer.body).toBe('egress to 127.0.0.2 is not allowed (EGRESS_ALLOW)\n');
    expect((await viaProxy(`http://other.invalid:${targetPort}/`)).status).toBe(403);
    expect(denied).toEqual([`127.0.0.2:${targetPort}`, `other.invalid:${targetPort}`]);
  });

  it('opens CONNECT tunnels to allowed hosts only', async () => {
    const open = await tunnel(`localhost:${targetPort}`);
    expect(open.status).toBe('HTTP/1.1 200 Connection Established');
    expect(open.body).toBe(`GET /through host=localhost:${targetPort} proxy-connection=-`);
    const closed = await tunnel(`127.0.0.2:${targetPort}`);
    expect(closed.status).toBe('HTTP/1.1 403 Forbidden');
    expect((await tunnel('no-port')).status).toBe('HTTP/1.1 400 Bad Request');
  });

  it('decides by the list in force when the connection is made', async () => {
    policy = new EgressPolicy(parseAllowList(`127.0.0.0/8`));
    try {
      expect((await viaProxy(`http://127.0.0.1:${targetPort}/`)).status).toBe(200);
      expect((await viaProxy(`http://localhost:${targetPort}/`)).status).toBe(403);
      expect((await viaProxy(`http://127.0.0.2:${targetPort}/`)).status).toBe(502);
      expect((await tunnel(`127.0.0.1:${targetPort}`)).status).toBe('HTTP/1.1 200 Connection Established');
    } finally {
      policy = new EgressPolicy(parseAllowList(initialList));
    }
  });

  it('answers 502 when an allowed host cannot be reached', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    expect((await viaProxy(`http://localhost:${closedPort}/`)).status).toBe(502);
    expect((await tunnel(`localhost:${closedPort}`)).status).toBe('HTTP/1.1 502 Bad Gateway');
  });

  it('answers 502 when an allowed name does not resolve', async () => {
    const answer = await viaProxy(`http://nowhere.wild.test:${targetPort}/`);
    expect(answer).toEqual({ status: 502, body: 'cannot resolve nowhere.wild.test: ENOTFOUND\n' });
    expect((await tunnel(`nowhere.wild.test:${targetPort}`)).status).toBe('HTTP/1.1 502 Bad Gateway');
  });

  it('refuses an allowed name that resolves to an address not listed itself, before connecting', async () => {
    policy = new EgressPolicy(parseAllowList('*.wild.test'));
    answers = { 'loop.wild.test': ['127.0.0.1'], 'loop6.wild.test': ['::1'], 'mapped.wild.test': ['::ffff:127.0.0.1'] };
    denied.length = 0;
    const requestsBefore = targetRequests;
    try {
      const answer = await viaProxy(`http://loop.wild.test:${targetPort}/`);
      expect(answer).toEqual({
        status: 403,
        body: 'egress to loop.wild.test is not allowed: it resolves to 127.0.0.1 (loopback address); list that address or its range in EGRESS_ALLOW to allow it\n',
      });
      for (const name of Object.keys(answers)) {
        expect((await viaProxy(`http://${name}:${targetPort}/`)).status, name).toBe(403);
        expect((await tunnel(`${name}:${targetPort}`)).status, name).toBe('HTTP/1.1 403 Forbidden');
      }
      expect(targetRequests).toBe(requestsBefore);
      expect(denied[0]).toBe(`loop.wild.test:${targetPort} -> 127.0.0.1`);
    } finally {
      policy = new EgressPolicy(parseAllowList(initialList));
      answers = {};
    }
  });

  it('connects to the address it checked, not to what a second lookup answers (DNS rebinding)', async () => {
    // First answer: 127.0.0.2, listed, where nothing listens. Any later answer: the target on
    // 127.0.0.1, not listed. A proxy that resolved again to connect would reach the target.
    policy = new EgressPolicy(parseAllowList('*.wild.test,127.0.0.2/32'));
    let lookups = 0;
    answers = { 'rebind.wild.test': () => (lookups++ === 0 ? ['127.0.0.2'] : ['127.0.0.1']) };
    const requestsBefore = targetRequests;
    try {
      expect((await viaProxy(`http://rebind.wild.test:${targetPort}/`)).status).toBe(502);
      lookups = 0;
      expect((await tunnel(`rebind.wild.test:${targetPort}`)).status).toBe('HTTP/1.1 502 Bad Gateway');
      expect(targetRequests).toBe(requestsBefore);
    } finally {
      policy = new EgressPolicy(parseAllowList(initialList));
      answers = {};
    }
  });
});
