import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { HostNotAllowedError, OriginNotAllowedError } from '../errors.js';

/**
 * The host name of a `Host` header, lower-cased, without port, trailing dot or IPv6 brackets;
 * undefined when the header is not a host[:port] at all.
 */
export function hostName(header: string): string | undefined {
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/i.exec(header.trim());
  if (!match) return undefined;
  if (match[1] !== undefined) return isIP(match[1]) === 6 ? match[1].toLowerCase() : undefined;
  return match[2]!.toLowerCase().replace(/\.$/, '');
}

/**
 * Whether requests may name this host. `localhost` and IP addresses always may: DNS rebinding,
 * the attack this check stops, needs a name whose address the attacker controls, and a page can
 * only read answers from its own origin, which for an IP address is the server itself. Other
 * names must be listed (`api.example.com`; `.example.com` for it and its subdomains; `*` any).
 */
export function hostAllowed(name: string, allowed: readonly string[]): boolean {
  if (name === 'localhost' || isIP(name) !== 0) return true;
  return allowed.some(
    (entry) => entry === '*' || entry === name || (entry.startsWith('.') && (name === entry.slice(1) || name.endsWith(entry))),
  );
}

/** `scheme://host[:port]` of a URL, default ports left out, for comparing origins. */
function originOf(url: string): string | undefined {
  try {
    const { origin } = new URL(url);
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * The scheme the client used: `X-Forwarded-Proto` where a proxy that ends TLS says so (a page
 * cannot add that header to a cross-origin request without a preflight, which this check
 * refuses first), else the connection's own.
 */
function schemeOf(request: FastifyRequest): string {
  const forwarded = request.headers['x-forwarded-proto'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https' || first === 'http' ? first : request.protocol;
}

/**
 * Which web pages and which host names may reach the server; see docs/security.md, "Browsers and host names".
 *
 * - A request with an `Origin` header (a browser's, for any cross-origin request and for every
 *   POST) is refused unless that origin is in `CORS_ORIGINS` (`*`: any) or is the server's own:
 *   the same scheme, host and port as the request (the `Host` header, and the scheme of the
 *   connection or of `X-Forwarded-Proto`), as behind a proxy that serves a page and the API
 *   together. `https://127.0.0.1:49999` is not the own origin of a server that speaks plain
 *   HTTP on that port. Without it, any page could POST code with `Content-Type: text/plain`, which
 *   needs no preflight, or claim the server first. Clients outside browsers (curl, SDKs) send
 *   no `Origin` and are unaffected. This holds in every auth mode: with a token it costs nothing.
 * - The `Host` header must name `localhost`, an IP address or a name of `ALLOWED_HOSTS`. When
 *   the variable is unset, this applies where a request needs no secret to get something:
 *   `AUTH_MODE=none` (running code) and `claim` (`POST /claim` hands out the token). A
 *   DNS-rebinding page (its own name re-pointed at 127.0.0.1) is same-origin with the server,
 *   so the Origin check lets it through: only the name it sends in `Host` gives it away.
 *
 * Refusals close the connection: nothing of a body that may still be coming is worth reading.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    const origins = new Set(config.access.corsOrigins);
    const anyOrigin = origins.has('*');
    // With a token, a page that rebinds a name to this server still has no token to send.
    const allowedHosts = config.access.allowedHosts ?? (config.access.mode === 'token' ? ['*'] : []);
    const anyHost = allowedHosts.includes('*');

    const refuse = (reply: FastifyReply, error: Error): never => {
      reply.header('connection', 'close');
      throw error;
    };

    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const host = request.headers.host;
      if (!anyHost && host !== undefined) {
        const name = hostName(host);
        if (name === undefined || !hostAllowed(name, allowedHosts)) {
          refuse(reply, new HostNotAllowedError(JSON.stringify(host.slice(0, 256))));
        }
      }

      const origin = request.headers.origin;
      if (origin === undefined || anyOrigin || origins.has(origin)) return;
      const own = host === undefined ? undefined : originOf(`${schemeOf(request)}://${host}`);
      if (own !== undefined && originOf(origin) === own) return;
      refuse(reply, new OriginNotAllowedError(JSON.stringify(origin.slice(0, 256))));
    });
  },
  // After the request limits, which close an upgrade request's socket after its answer, refusals included.
  { name: 'host-origin', dependencies: ['request-limits'] },
);
