import { CodeInterpreterError, ConnectionError, errorFor } from './errors.js';

export interface ServerOptions {
  /** The API's port (49999 in the image). */
  port: number;
  /** Default `localhost`. */
  host?: string;
  /** The server's access token; none when it runs without one. */
  accessToken?: string | null;
}

export interface RequestOptions {
  method?: string;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  body?: ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Percent-encodes each segment of a workspace path, keeping its slashes. */
export function encodePath(path: string): string {
  return path
    .split('/')
    .filter((segment) => segment !== '')
    .map(encodeURIComponent)
    .join('/');
}

/** The base every client shares: where the server is, its token, and its error answers. */
export class HttpConnection {
  readonly baseUrl: string;
  private readonly accessToken: string | null;

  constructor(options: ServerOptions) {
    if (!Number.isInteger(options.port) || options.port <= 0 || options.port > 65535) {
      throw new TypeError(`port must be an integer between 1 and 65535, got ${String(options.port)}`);
    }
    const host = options.host ?? 'localhost';
    this.baseUrl = `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${options.port}`;
    this.accessToken = options.accessToken ?? null;
  }

  /** Sends a request; an answer that is not 2xx (or 3xx) throws the error class of its code. */
  async request(path: string, options: RequestOptions = {}): Promise<Response> {
    const url = new URL(path, this.baseUrl);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { ...options.headers };
    if (this.accessToken) headers.authorization = `Bearer ${this.accessToken}`;
    let body: RequestInit['body'];
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.body) {
      body = options.body;
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method: options.method ?? 'GET',
        headers,
        body,
        signal: options.signal,
        // A stream body is sent as it is read: Node's fetch needs to be told.
        ...(options.body ? { duplex: 'half' } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new ConnectionError(`${options.method ?? 'GET'} ${url.pathname} failed: ${describe(error)}`, { cause: error });
    }
    if (response.status >= 400) throw await errorFromResponse(response);
    return response;
  }

  async json<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(path, options);
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

export async function errorFromResponse(response: Response): Promise<CodeInterpreterError> {
  const text = await response.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof parsed.code === 'string') {
      return errorFor(response.status, parsed.code, typeof parsed.message === 'string' ? parsed.message : text);
    }
  } catch {
    // Not the server's error shape (a proxy's page, say): the status is all there is.
  }
  return new CodeInterpreterError(`HTTP ${response.status}: ${text.slice(0, 200)}`, `HTTP_${response.status}`, response.status);
}
