import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy, parseAllowList } from '../../server/egress/allow-list.js';
import { createEgressProxy } from '../../server/egress/proxy.js';

/** The egress proxy with real sockets: a target HTTP server on loopback, reached by name or address. */
describe('the egress proxy', () => {
  let target: http.Server;
  let targetPort: number;
  let proxy: http.Server;
  let proxyPort: number;
  let policy = new EgressPolicy(parseAllowList('localhost'));
  const denied: string[] = [];

  beforeAll(async () => {
    target = http.createServer((request, response) => {
      response.end(`${request.method} ${request.url} host=${request.headers.host} proxy-connection=${request.headers['proxy-connection'] ?? '-'}`);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    targetPort = (target.address() as net.AddressInfo).port;
    proxy = createEgressProxy({ policy: () => policy, onDenied: (host, port) => denied.push(`${host}:${port}`) });
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
      const request = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host, 'proxy-connection': 'keep-alive' } }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
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
    const answer = await viaProxy(`http://127.0.0.1:${targetPort}/`);
    expect(answer.status).toBe(403);
    expect(answer.body).toBe('egress to 127.0.0.1 is not allowed (EGRESS_ALLOW)\n');
    expect((await viaProxy(`http://other.invalid:${targetPort}/`)).status).toBe(403);
    expect(denied).toEqual([`127.0.0.1:${targetPort}`, `other.invalid:${targetPort}`]);
  });

  it('opens CONNECT tunnels to allowed hosts only', async () => {
    const open = await tunnel(`localhost:${targetPort}`);
    expect(open.status).toBe('HTTP/1.1 200 Connection Established');
    expect(open.body).toBe(`GET /through host=localhost:${targetPort} proxy-connection=-`);
    const closed = await tunnel(`127.0.0.1:${targetPort}`);
    expect(closed.status).toBe('HTTP/1.1 403 Forbidden');
    expect((await tunnel('no-port')).status).toBe('HTTP/1.1 400 Bad Request');
  });

  it('decides by the list in force when the connection is made', async () => {
    policy = new EgressPolicy(parseAllowList(`127.0.0.0/8`));
    try {
      expect((await viaProxy(`http://127.0.0.1:${targetPort}/`)).status).toBe(200);
      expect((await viaProxy(`http://localhost:${targetPort}/`)).status).toBe(403);
      expect((await tunnel(`127.0.0.1:${targetPort}`)).status).toBe('HTTP/1.1 200 Connection Established');
    } finally {
      policy = new EgressPolicy(parseAllowList('localhost'));
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
});
