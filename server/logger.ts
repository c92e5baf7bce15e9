import { pino, type DestinationStream, type LoggerOptions } from 'pino';

/**
 * The logging surface domain modules use: pino's, without tying them to Fastify or to one
 * pino version's types. Fastify's request and app loggers satisfy it.
 */
type LogFn = (objOrMessage: unknown, message?: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Query parameter names that may carry a secret, in any case and spelling: `token`, `TOKEN`,
 * `access_token`, `x-access-token`, `api_key`, `apikey`, `authorization`, `secret`,
 * `password`, `session_id`, ... Such parameters never authenticate (URLs end up in logs and
 * browser histories), and their values never reach the log. Masking a harmless one costs
 * nothing; logging a secret cannot be undone.
 */
const SECRET_PARAM = /token|secret|passw|pwd|api[-_]?key|^key$|auth|credential|session|signature|^sig$/i;

export function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(name);
}

/**
 * Query parameters whose values the log keeps: the API's own (`path`, `limit`, `cursor` of
 * GET /files, `extract` of uploads, `format` of downloads, `from` of event streams), none of
 * which carries a secret. Any other value is masked, whatever its name: `private_key`,
 * `bearer` or `sig2` say nothing a pattern could catch, and a log cannot be unwritten.
 */
const LOGGED_PARAMS = new Set(['path', 'limit', 'cursor', 'extract', 'format', 'from']);

/** The URL as it may be logged: the values of query parameters outside {@link LOGGED_PARAMS} masked. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query === -1) return url;
  const params = new URLSearchParams(url.slice(query + 1));
  const names = [...params.keys()];
  if (names.every((name) => LOGGED_PARAMS.has(name))) return url;
  const masked = new URLSearchParams();
  for (const [name, value] of params) masked.append(name, LOGGED_PARAMS.has(name) ? value : '[redacted]');
  return `${url.slice(0, query)}?${masked.toString()}`;
}

/** What the request serializer reads: Fastify's request has it all. */
export interface LoggedRequest {
  method: string;
  url: string;
  host: string;
  ip: string;
  socket?: { remotePort?: number | undefined } | undefined;
}

/**
 * The request log serializer, with {@link redactUrl}: a secret sent in the URL, by mistake or
 * on purpose, must not reach the log by way of the request line.
 */
export function serializeRequest(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * pino's options for the server's log: the level, and no secret in it. Tokens travel in these
 * headers, and in the URL, where no token is accepted but someone may still put one.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-access-token"]', 'req.headers["sec-websocket-protocol"]'],
      censor: '[redacted]',
    },
    serializers: { req: serializeRequest },
  };
}

/**
 * Where the server's log goes: stdout, written synchronously. pino's default destination
 * buffers and, at exit, flushes synchronously, retrying a failed write without end: with stdout
 * a closed pipe (EPIPE), SIGTERM hung and the forced-exit timer never ran, the event loop being
 * blocked. Written synchronously, the first failed write is reported at once, pino stops writing,
 * and nothing is left to flush at exit. Node writes to pipes and files synchronously anyway (as
 * console.log does).
 */
export function logDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: true });
}
