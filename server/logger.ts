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
