import cors from '@fastify/cors';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';

/**
 * CORS for the origins in `CORS_ORIGINS`; none (the default) leaves it off, so browsers keep
 * other sites from reading this API. Must be registered before the auth plugin: @fastify/cors
 * answers preflights in its own `onRequest` hook, and browsers send them without credentials.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    if (config.access.corsOrigins.length === 0) return;
    const allowed = new Set(config.access.corsOrigins);

    await app.register(cors, {
      // A disallowed origin gets no CORS headers at all, rather than a preflight answer
      // without Access-Control-Allow-Origin: its OPTIONS is then an ordinary request.
      origin: allowed.has('*') ? '*' : (origin, callback) => callback(null, origin !== undefined && allowed.has(origin) ? origin : false),
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: [
        'Authorization',
        'X-Access-Token',
        'Content-Type',
        'Range',
        'If-Range',
        'If-Match',
        'If-None-Match',
        'If-Modified-Since',
        'If-Unmodified-Since',
        'X-Request-Id',
        // MCP's Streamable HTTP transport (/mcp).
        'Mcp-Session-Id',
        'Mcp-Protocol-Version',
        'Last-Event-ID',
        // Connect, on the envd listener (ENVD_PORT), and what e2b's SDK adds to its calls.
        'Connect-Protocol-Version',
        'Connect-Timeout-Ms',
        'Keepalive-Ping-Interval',
        'E2b-Sandbox-Id',
        'E2b-Sandbox-Port',
      ],
      exposedHeaders: [
        'Content-Type',
        'Content-Length',
        'Content-Disposition',
        'ETag',
        'Last-Modified',
        'Content-Range',
        'Accept-Ranges',
        'Location',
        'WWW-Authenticate',
        'Mcp-Session-Id',
      ],
      // Tokens travel in headers, never in cookies: browsers need not send credentials.
      credentials: false,
      // Spares a preflight before every request from the same page for ten minutes.
      maxAge: 600,
    });
  },
  // After the host and origin checks: their refusals need no CORS headers.
  { name: 'cors', dependencies: ['host-origin'] },
);
