// The server's HTTP API and WebSocket, with the access token when there is one. The token is
// kept in sessionStorage: for this tab only, gone when it closes, never in a URL or a cookie.

const TOKEN_KEY = 'code-interpreter.token';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Called on a 401, so that the page asks for a token again. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export async function request(method: string, path: string, body?: BodyInit | object): Promise<Response> {
  const headers = new Headers();
  const current = token();
  if (current) headers.set('authorization', `Bearer ${current}`);
  let payload: BodyInit | undefined;
  if (body instanceof Blob || body instanceof ArrayBuffer || typeof body === 'string') payload = body;
  else if (body !== undefined) {
    headers.set('content-type', 'application/json');
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload ?? null });
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    const error = (await response.json().catch(() => ({}))) as { code?: string; message?: string };
    throw new ApiError(response.status, error.code ?? 'ERR_HTTP', error.message ?? response.statusText);
  }
  return response;
}

export async function json<T>(method: string, path: string, body?: object): Promise<T> {
  return (await (await request(method, path, body)).json()) as T;
}

/** `a/b c` → `a/b%20c`: each segment encoded, the slashes kept. */
export function filePath(path: string): string {
  return path.split('/').filter(Boolean).map(encodeURIComponent).join('/');
}

export function openSocket(): WebSocket {
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const current = token();
  // Browsers cannot set headers on a WebSocket: the token rides as a subprotocol.
  return new WebSocket(url, current ? ['code-interpreter.v1', `bearer.${current}`] : ['code-interpreter.v1']);
}

/** Saves a download under its name; through fetch, since a plain link could not carry the token. */
export async function download(path: string, name: string): Promise<void> {
  const blob = await (await request('GET', path)).blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
