import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { startOffline } from '../helpers/offline-app.js';

const TOKEN = 'a-test-token-0123456789-abcdef';

/** A server on a free loopback port, for clients that speak raw TCP. */
async function listen(env: Record<string, string>): Promise<{ port: number; app: FastifyInstance }> {
  const { app } = await startOffline(env);
  const address = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  return { port: Number(address.port), app };
}

interface RawClient {
  socket: Socket;
  /** Everything the server sent, once it has closed the connection. */
  closed: Promise<string>;
  /** Writes `chunks` one by one, `intervalMs` apart, while the connection is open. */
  trickle(chunks: string[], intervalMs: number): Promise<number>;
}

async function rawClient(port: number): Promise<RawClient> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  const closed = once(socket, 'close').then(() => received);
  await once(socket, 'connect');
  let open = true;
  void closed.then(() => (open = false));
  return {
    socket,
    closed,
    async trickle(chunks, intervalMs) {
      let sent = 0;
      for (const chunk of chunks) {
        if (!open) break;
        socket.write(chunk);
        sent += 1;
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
      return sent;
    },
  };
}

const bytes = (count: number) => Array.from({ length: count }, () => 'x');

function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
}

function bodyOf(answer: string): { code?: string; message?: string } {
  return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { code?: string; message?: string };
}

describe('slow requests (REQUEST_TIMEOUT)', () => {
  it('answers a body trickled a byte at a time with 408 and closes the connection', async () => {
    const { port } = await listen({ REQUEST_TIMEOUT: '1' });
    const client = await rawClient(port);
    client.socket.write('POST /contexts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n');
    // 100 bytes at 5 a second would take 20 s: the server gives up after one.
    const sent = client.trickle(bytes(100), 200);
    const answer = await client.closed;
    expect(statusOf(answer)).toBe(408);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(bodyOf(answer)).toMatchObject({ code: 'ERR_REQUEST_TIMEOUT', message: expect.stringMatching(/body .* 1 seconds/) });
    expect(await sent).toBeLessThan(100);
  });

  it('closes a connection whose headers trickle in, and one that sends nothing', async () => {
    const { port } = await listen({ REQUEST_TIMEOUT: '1' });
    const slow = await rawClient(port);
    slow.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n');
    const sent = slow.trickle(
      Array.from({ length: 100 }, (_, index) => `X-Header-${index}: y\r\n`),
      200,
    );
    const silent = await rawClient(port);
    expect(statusOf(await slow.closed)).toBe(408);
    expect(await sent).toBeLessThan(100);
    // Nothing to answer: the connection is simply closed.
    expect(await silent.closed).toMatch(/^(HTTP\/1\.1 408|)/);
  });

  it('lets an upload take longer, as long as data keeps coming', async () => {
    const { port, app } = await listen({ REQUEST_TIMEOUT: '1' });
    const client = await rawClient(port);
    client.socket.write('PUT /files/slow-upload.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\nConnection: close\r\n\r\n');
    // About 2.4 s in all, over twice the limit.
    expect(await client.trickle(bytes(12), 200)).toBe(12);
    const answer = await client.closed;
    expect(statusOf(answer)).toBe(201);
    expect((await app.inject({ method: 'GET', url: '/files/slow-upload.txt' })).body).toBe('x'.repeat(12));
  });

  it('answers a body that arrives in time as usual', async () => {
    const { port } = await listen({ REQUEST_TIMEOUT: '1' });
    const client = await rawClient(port);
    const body = JSON.stringify({ cwd: 'no-such-directory' });
    client.socket.write(
      `POST /contexts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    await client.trickle([body.slice(0, 5), body.slice(5)], 100);
    // Parsed and handed to the route, which has no Jupyter behind it here.
    expect(statusOf(await client.closed)).not.toBe(408);
  });
});

describe('refused requests', () => {
  it('closes the connection after a 401 instead of reading the rest of the body', async () => {
    // A long limit: only the 401 may close this connection.
    const { port } = await listen({ ACCESS_TOKEN: TOKEN, REQUEST_TIMEOUT: '600' });
    const client = await rawClient(port);
    client.socket.write(
      'POST /execute HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"code":',
    );
    const sent = client.trickle(bytes(100), 100);
    const answer = await client.closed;
    expect(statusOf(answer)).toBe(401);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(await sent).toBeLessThan(100);
  });

  it('closes the connection after a 403 before the claim', async () => {
    const { port } = await listen({ AUTH_MODE: 'claim', REQUEST_TIMEOUT: '600' });
    const client = await rawClient(port);
    client.socket.write('POST /contexts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{');
    const sent = client.trickle(bytes(100), 100);
    expect(statusOf(await client.closed)).toBe(403);
    expect(await sent).toBeLessThan(100);
  });
});

describe('MAX_CONNECTIONS', () => {
  it('closes connections beyond the cap at once, and takes new ones when others have gone', async () => {
    const { port } = await listen({ MAX_CONNECTIONS: '2', REQUEST_TIMEOUT: '600' });
    const first = await rawClient(port);
    const second = await rawClient(port);
    // Let the server accept both before the third arrives.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const third = await rawClient(port);
    third.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(await third.closed).toBe('');

    first.socket.destroy();
    await first.closed;
    await new Promise((resolve) => setTimeout(resolve, 100));
    const fourth = await rawClient(port);
    fourth.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(statusOf(await fourth.closed)).toBe(200);
    second.socket.destroy();
  });
});
