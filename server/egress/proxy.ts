import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { EgressPolicy } from './allow-list.js';

export interface EgressProxyOptions {
  /** The policy in force; read at every connection, so a reload applies to the next one. */
  policy: () => EgressPolicy;
  /** Called for each refused host (never with anything but the host and port). */
  onDenied?: (host: string, port: number) => void;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade'];

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
 * domain whose addresses change keeps working), and relays it. `CONNECT host:port` opens a
 * tunnel (HTTPS and anything else); an absolute-form `GET http://host/...` is forwarded. Every
 * other outbound connection of the kernels is dropped by the firewall, so this is the only way
 * to an allowed domain.
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
    if (!options.policy().allows(target.hostname)) {
      options.onDenied?.(target.hostname, port);
      response.writeHead(403, { 'content-type': 'text/plain' }).end(deniedMessage(target.hostname));
      return;
    }
    const headers = { ...request.headers };
    for (const name of HOP_BY_HOP) delete headers[name];
    const upstream = http.request({
      host: unbracket(target.hostname),
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

  server.on('connect', (request: http.IncomingMessage, client: Duplex, head: Buffer) => {
    const authority = parseAuthority(request.url ?? '');
    if (!authority) {
      client.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nCONNECT needs host:port\n');
      return;
    }
    if (!options.policy().allows(authority.host)) {
      options.onDenied?.(authority.host, authority.port);
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${deniedMessage(authority.host)}`);
      return;
    }
    const upstream = net.connect({ host: unbracket(authority.host), port: authority.port });
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
      else client.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\ncannot reach ${authority.host}: ${error.message}\n`);
    });
    client.on('error', () => upstream.destroy());
  });

  // Tunnels live as long as their two ends; no proxy-side limit on a long download.
  server.requestTimeout = 0;
  return server;
}
