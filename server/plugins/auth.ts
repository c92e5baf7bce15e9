import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AuthMode, Config } from '../config.js';
import { UnauthorizedError, UnclaimedError } from '../errors.js';
import { isSecretParam } from '../logger.js';

declare module 'fastify' {
  interface FastifyInstance {
    access: AccessControl;
  }
  interface FastifyContextConfig {
    /**
     * The route also opens to a URL signed with the access token (e2b's `uploadUrl` and
     * `downloadUrl`): true when the request's signature is the one the token gives. Only in
     * `token` mode, where the token itself is known; a claimed token is kept as a digest only.
     */
    signedUrl?: (request: FastifyRequest, token: string) => boolean;
  }
}

/** Prefix of the subprotocol that carries a token on WebSocket upgrades: `bearer.<token>`. */
export const BEARER_SUBPROTOCOL = 'bearer.';

const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Who may use this server: nobody needs a token (`none`), the configured one (`token`), or
 * the one handed out by the first `POST /claim` (`claim`).
 *
 * The claimed token lives in memory only: the deployment runs one container per user, so the
 * process that issued the token is the only one that must know it, and a restarted container
 * is a new server to be claimed again.
 */
export class AccessControl {
  readonly mode: AuthMode;
  /** SHA-256 of the valid token; undefined while nobody may authenticate. */
  #expected: Buffer | undefined;

  constructor(mode: AuthMode, accessToken: string | undefined) {
    this.mode = mode;
    this.#expected = mode === 'token' && accessToken !== undefined ? sha256(accessToken) : undefined;
  }

  /** False only in claim mode before the claim. */
  get claimed(): boolean {
    return this.mode !== 'claim' || this.#expected !== undefined;
  }

  /**
   * Issues the token, once: later calls get undefined. Synchronous from check to set, so that
   * of concurrent claims exactly one wins.
   */
  claim(): string | undefined {
    if (this.claimed) return undefined;
    const token = randomBytes(32).toString('base64url');
    this.#expected = sha256(token);
    return token;
  }

  /**
   * Compares digests rather than the strings: both are 32 bytes whatever was sent, so neither
   * the comparison's time nor its length check tells how much of a guess was right.
   */
  accepts(presented: string): boolean {
    return this.#expected !== undefined && timingSafeEqual(sha256(presented), this.#expected);
  }
}

/**
 * The tokens a request presents: `Authorization: Bearer <token>`, and `X-Access-Token`, which
 * e2b clients send. Both are looked at, so that an `Authorization` header meant for something
 * else (a proxy's Basic credentials, say) does not hide a valid `X-Access-Token`.
 */
function presentedTokens(request: FastifyRequest): string[] {
  const tokens: string[] = [];
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    const bearer = /^Bearer +(\S+) *$/i.exec(authorization);
    if (bearer) tokens.push(bearer[1]!);
  }
  const header = request.headers['x-access-token'];
  if (typeof header === 'string' && header.trim() !== '') tokens.push(header.trim());
  if (isWebSocketUpgrade(request)) tokens.push(...subprotocolTokens(request));
  return tokens;
}

function isWebSocketUpgrade(request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket';
}

/**
 * Browsers cannot set headers on a WebSocket, so an upgrade may carry the token as a
 * subprotocol instead: `Sec-WebSocket-Protocol: code-interpreter.v1, bearer.<token>`. The
 * server answers with `code-interpreter.v1` alone, so the token is never sent back.
 */
function subprotocolTokens(request: FastifyRequest): string[] {
  const offered = request.headers['sec-websocket-protocol'];
  if (typeof offered !== 'string') return [];
  return offered
    .split(',')
    .map((protocol) => protocol.trim())
    .filter((protocol) => protocol.startsWith(BEARER_SUBPROTOCOL) && protocol.length > BEARER_SUBPROTOCOL.length)
    .map((protocol) => protocol.slice(BEARER_SUBPROTOCOL.length));
}

function hasTokenInQuery(url: string): boolean {
  const query = url.indexOf('?');
  if (query === -1) return false;
  const params = new URLSearchParams(url.slice(query + 1));
  return [...params.keys()].some(isSecretParam);
}

function hasQueryParam(url: string, name: string): boolean {
  const query = url.indexOf('?');
  return query !== -1 && new URLSearchParams(url.slice(query + 1)).has(name);
}

function isLoopback(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return address === '::1' || (isIPv4(v4) && v4.startsWith('127.'));
}

/**
 * Access control for every route but the health checks. An `onRequest` hook, registered
 * before any route so that it covers each one, those added later included; CORS preflights
 * are answered before it runs (see cors.ts), since browsers send them without credentials.
 */
export default fp<{ config: Config; access?: AccessControl }>(
  async (app, options) => {
    const { config } = options;
    // The envd listener (ENVD_PORT) shares the main one's: a token claimed there opens both.
    const access = options.access ?? new AccessControl(config.access.mode, config.access.token);
    app.decorate('access', access);
    // The scraper's token: it opens GET /metrics and nothing else, before a claim too.
    const scraper = config.metrics.token !== undefined ? new AccessControl('token', config.metrics.token) : undefined;

    if (access.mode === 'none') {
      app.addHook('onListen', async () => {
        // A Unix socket (a string here) is reachable from this machine only.
        const exposed = app
          .addresses()
          .flatMap((info) => (typeof info === 'string' ? [] : [info.address]))
          .filter((address) => !isLoopback(address));
        if (exposed.length === 0) return;
        app.log.warn(
          { addresses: exposed },
          'AUTHENTICATION IS OFF and the server listens beyond this machine: whoever reaches its port can run code. ' +
            'Set ACCESS_TOKEN to a secret of at least 16 characters (clients then send Authorization: Bearer <token>), ' +
            'or AUTH_MODE=claim so that the first POST /claim gets a token; or listen on 127.0.0.1 (HOST).',
        );
      });
      return;
    }

    app.addHook('onRequest', async (request, reply) => {
      // A route whose schema declares `security: []` is open to anyone, and /openapi.json says
      // so from the same declaration: the health checks, which orchestrators probe without
      // credentials, and POST /claim, the way in before the claim (and a 404 after it).
      const security = (request.routeOptions.schema as { security?: unknown[] } | undefined)?.security;
      if (Array.isArray(security) && security.length === 0) return;

      const tokens = presentedTokens(request);
      if (scraper && request.routeOptions.config.metricsScrape === true && tokens.some((token) => scraper.accepts(token))) return;
      // A refused client gets its answer and the connection closes: otherwise Node would read
      // (and discard) whatever body it still sends, however slowly, to keep the connection.
      if (!access.claimed) {
        reply.header('connection', 'close');
        throw new UnclaimedError();
      }
      if (tokens.some((token) => access.accepts(token))) return;
      const signedUrl = request.routeOptions.config.signedUrl;
      if (signedUrl && tokens.length === 0 && hasQueryParam(request.url, 'signature')) {
        if (access.mode === 'token' && config.access.token !== undefined && signedUrl(request, config.access.token)) return;
        reply.header('connection', 'close');
        throw new UnauthorizedError(
          access.mode === 'token'
            ? 'Invalid or expired signature'
            : 'Signed URLs are accepted with AUTH_MODE=token only: send the token in X-Access-Token or Authorization: Bearer',
        );
      }

      // RFC 6750 section 3: the challenge, and `invalid_token` when a token was sent but is wrong.
      reply.header('www-authenticate', tokens.length > 0 ? 'Bearer error="invalid_token"' : 'Bearer');
      reply.header('connection', 'close');
      if (tokens.length > 0) throw new UnauthorizedError('Invalid access token');
      // 401 like any missing token (the status clients act on), with a message that says why.
      if (hasTokenInQuery(request.url)) {
        throw new UnauthorizedError(
          'Tokens in the URL are not accepted (URLs end up in logs and browser history): send Authorization: Bearer <token> or X-Access-Token: <token>',
        );
      }
      if (isWebSocketUpgrade(request)) {
        throw new UnauthorizedError(
          'Missing access token: send Authorization: Bearer <token>, X-Access-Token: <token>, or the subprotocol bearer.<token> next to code-interpreter.v1',
        );
      }
      throw new UnauthorizedError('Missing access token: send Authorization: Bearer <token> or X-Access-Token: <token>');
    });
  },
  // After CORS, which answers preflights (they carry no credentials) before access control would refuse them.
  { name: 'auth', dependencies: ['cors'] },
);
