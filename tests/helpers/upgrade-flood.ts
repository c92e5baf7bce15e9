import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';

/**
 * TCP sockets on this machine whose local port is `port` and whose state is CLOSE-WAIT: the
 * peer has closed and this side never did. Read from /proc/net/tcp{,6}, as `ss -tn state
 * close-wait` does, so that the count needs no tool; inside a container the same numbers are
 * what its kernel code sees.
 */
export async function closeWaitSockets(port: number): Promise<number> {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const localPort = Number.parseInt(fields[1]!.split(':').at(-1)!, 16);
      if (localPort === port && fields[3] === '08') count++;
    }
  }
  return count;
}

export interface FloodResult {
  /** Answers by status code. */
  statuses: Record<number, number>;
  /** Connections closed or reset without an answer (refused past MAX_CONNECTIONS, say). */
  unanswered: number;
  /** The client sockets, still open on this side after they closed their writing half. */
  sockets: Socket[];
}

/**
 * Sends `count` WebSocket upgrade requests, `concurrency` at a time, cycling through `paths`,
 * each on its own connection. A client reads the status line, then closes its writing half
 * and reads on, as a browser does with a refused WebSocket: a server that never closes its
 * side leaves the socket in CLOSE-WAIT. The sockets are handed back for the caller to destroy
 * once it has counted.
 */
export async function upgradeFlood(options: {
  host: string;
  port: number;
  paths: string[];
  count: number;
  concurrency: number;
  headers?: Record<string, string>;
}): Promise<FloodResult> {
  const result: FloodResult = { statuses: {}, unanswered: 0, sockets: [] };
  const extra = Object.entries(options.headers ?? {})
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  let next = 0;
  const one = (path: string) =>
    new Promise<void>((resolve) => {
      const socket = connect(options.port, options.host);
      result.sockets.push(socket);
      let answered = false;
      const timer = setTimeout(() => finish(), 5000);
      const finish = (status?: number) => {
        clearTimeout(timer);
        if (answered) return;
        answered = true;
        if (status === undefined) result.unanswered++;
        else result.statuses[status] = (result.statuses[status] ?? 0) + 1;
        resolve();
      };
      socket.on('error', () => finish());
      socket.on('close', () => finish());
      socket.once('data', (chunk: Buffer) => {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'));
        socket.end();
        socket.resume();
        finish(status ? Number(status[1]) : undefined);
      });
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`,
      );
    });
  const worker = async () => {
    while (next < options.count) {
      const path = options.paths[next % options.paths.length]!;
      next++;
      await one(path);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return result;
}
