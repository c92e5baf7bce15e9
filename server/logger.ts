import type { LoggerOptions } from 'pino';

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

/** Query parameters people try for tokens. They never authenticate: URLs end up in logs. */
export const TOKEN_QUERY_PARAMS: readonly string[] = ['token', 'access_token'];

/** The URL as it may be logged: the values of token-looking query parameters masked. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query === -1) return url;
  const params = new URLSearchParams(url.slice(query + 1));
  if (!TOKEN_QUERY_PARAMS.some((name) => params.has(name))) return url;
  for (const name of TOKEN_QUERY_PARAMS) {
    if (params.has(name)) params.set(name, '[redacted]');
  }
  return `${url.slice(0, query)}?${params.toString()}`;
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
 * The request log serializer, with {@link redactUrl}: a token sent in the URL by mistake must
 * not reach the log by way of the request line.
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
    redact: { paths: ['req.headers.authorization', 'req.headers["x-access-token"]', 'req.headers["sec-websocket-protocol"]'], censor: '[redacted]' },
    serializers: { req: serializeRequest },
  };
}
