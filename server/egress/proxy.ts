import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { localAddresses, specialAddressKind } from './addresses.js';
import type { EgressPolicy } from './allow-list.js';

export interface EgressProxyOptions {
  /** The policy in force; read at every connection, so a reload applies to the next one. */
  policy: () => EgressPolicy;
  /** Called for each refused host (never with anything but the host, port and the address it led to). */
  onDenied?: (host: string, port: number, address?: string) => void;
  /** Resolves a name to its addresses; the system's resolver (/etc/hosts, DNS) by default. */
  lookup?: (host: string) => Promise<string[]>;
  /** This container's own addresses, asked at every connection; its interfaces' by default. */
  ownAddresses?: () => string[];
}

const systemLookup = async (host: string): Promise<string[]> =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

export type EgressVerdict = { address: string } | { status: 403 | 502; message: string; address?: string };

/**
 * Where a request for `host` may go: the address to connect to, or why not. A name is resolved
 * here, once, and the connection goes to the address that was checked, so a name cannot pass
 * the check with one answer and connect with another (DNS rebinding). Addresses no public name
 * should lead to (loopback, link-local, private, CGNAT, multicast, unspecified, the container's
 * own) are refused unless the list names that address or its range itself.
 */
export async function egressVerdict(host: string, options: EgressProxyOptions): Promise<EgressVerdict> {
  const policy = options.policy();
  if (!policy.allows(host)) return { status: 403, message: deniedMessage(host) };
  const bare = unbracket(host);
  if (net.isIP(bare) !== 0) return { address: bare };
  let addresses: string[];
  try {
    addresses = await (options.lookup ?? systemLookup)(bare);
  } catch (error) {
    return { status: 502, message: `cannot resolve ${host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n` };
  }
  const own = new Set((options.ownAddresses ?? localAddresses)());
  let refused: { address: string; kind: string } | undefined;
  for (const address of addresses) {
    const kind = policy.lists(address)
      ? undefined
      : (specialAddressKind(address) ?? (own.has(address.replace(/%.*$/, '')) ? "this container's own" : undefined));
    if (kind === undefined) return { address };
    refused ??= { address, kind };
  }
  if (!refused) return { status: 502, message: `cannot resolve ${host}: no address\n` };
  return {
    status: 403,
    address: refused.address,
    message: `egress to ${host} is not allowed: it resolves to ${refused.address} (${refused.kind} address); list that address or its range in EGRESS_ALLOW to allow it\n`,
  };
}

const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
];

function deniedMessage(host: string): string {
  return `egress to ${host} is not allowed (EGRESS_ALLOW)\n`;
}

/** `host:port` of a CONNECT request, IPv6 literals in brackets. */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(authority);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1]!, port };
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * The kernels' HTTP(S) proxy: decides each request by the host it names, when it is made (so a
 * domain whose addresses change keeps working), and by the address that host resolves to (see
 * `egressVerdict`), then relays it to that address. `CONNECT host:port` opens a tunnel (HTTPS and
 * anything else); an absolute-form `GET http://host/...` is forwarded. Every other outbound
 * connection of the kernels is dropped by the firewall, so this is the only way to an allowed
 * domain.
 */
export function createEgressProxy(options: EgressProxyOptions): http.Server {
  const server = http.createServer((request, response) => {
    let target: URL;
    try {
      target = new URL(request.url ?? '');
    } catch {
      response.writeHead(400, { 'content-type': 'text/plain' }).end('a proxy request needs an absolute http:// URL\n');
      return;
    }
    if (target.protocol !== 'http:') {
      response.writeHead(400, { 'content-type': 'text/plain' }).end('only http:// URLs are forwarded; use CONNECT for others\n');
      return;
    }
    const port = Number(target.port || 80);
    // The body waits, unread, until the verdict: nothing is sent anywhere before it.
    request.pause();
    void egressVerdict(target.hostname, options).then((verdict) => {
      if ('status' in verdict) {
        if (verdict.status === 403) options.onDenied?.(target.hostname, port, verdict.address);
        response.writeHead(verdict.status, { 'content-type': 'text/plain', connection: 'close' }).end(verdict.message);
        request.resume();
        return;
      }
      const headers = { ...request.headers };
      for (const name of HOP_BY_HOP) delete headers[name];
      // Host stays the name the client asked for (it is among the headers): setHost is off.
      const upstream = http.request({
        host: verdict.address,
        port,
        method: request.method,
        path: `${target.pathname}${target.search}`,
        headers,
        setHost: false,
      });
      upstream.on('response', (answer) => {
        const answerHeaders = { ...answer.headers };
        for (const name of HOP_BY_HOP) delete answerHeaders[name];
        response.writeHead(answer.statusCode ?? 502, answerHeaders);
        pipeline(answer, response).catch(() => response.destroy());
      });
      upstream.on('error', (error) => {
        if (response.headersSent) response.destroy();
        else response.writeHead(502, { 'content-type': 'text/plain' }).end(`cannot reach ${target.host}: ${error.message}\n`);
      });
      pipeline(request, upstream).catch(() => upstream.destroy());
    });
  });

  server.on('connect', (request: http.IncomingMessage, client: Duplex, head: Buffer) => {
    const authority = parseAuthority(request.url ?? '');
    if (!authority) {
      client.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nCONNECT needs host:port\n');
      return;
    }
    let gone = false;
    client.on('error', () => (gone = true));
    client.on('close', () => (gone = true));
    void egressVerdict(authority.host, options).then((verdict) => {
      if (gone) return;
      if ('status' in verdict) {
        if (verdict.status === 403) options.onDenied?.(authority.host, authority.port, verdict.address);
        const reason = verdict.status === 403 ? 'Forbidden' : 'Bad Gateway';
        client.end(`HTTP/1.1 ${verdict.status} ${reason}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${verdict.message}`);
        return;
      }
      const upstream = net.connect({ host: verdict.address, port: authority.port });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        pipeline(client, upstream).catch(() => undefined);
        pipeline(upstream, client).catch(() => undefined);
      });
      upstream.once('error', (error) => {
        if (connected) client.destroy();
        else
          client.end(
            `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\ncannot reach ${authority.host}: ${error.message}\n`,
          );
      });
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    });
  });

  // Tunnels live as long as their two ends; no proxy-side limit on a long download.
  server.requestTimeout = 0;
  return server;
}
