import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  AuthenticationError,
  CodeInterpreterError,
  ExecutionClient,
  InvalidRequestError,
  LimitExceededError,
  NotFoundError,
  ResourceClient,
  UnavailableError,
} from '../../clients/typescript/src/index.js';

/** A server that answers every request with the status and body its path names. */
let server: Server;
let port: number;
const seen: Array<{ url: string; authorization: string | undefined }> = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    seen.push({ url: request.url ?? '', authorization: request.headers.authorization });
    request.resume();
    const [, status, code] = /^\/files\/(\d+)\/?(\w*)/.exec(request.url ?? '') ?? [];
    if (!status) {
      response.writeHead(500).end();
      return;
    }
    if (code === 'html') {
      response.writeHead(Number(status), { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
      return;
    }
    response
      .writeHead(Number(status), { 'content-type': 'application/json' })
      .end(JSON.stringify({ statusCode: Number(status), code, error: 'x', message: `the message of ${code}` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('the client errors', () => {
  const cases: Array<[number, string, new (...args: never[]) => CodeInterpreterError]> = [
    [401, 'ERR_UNAUTHORIZED', AuthenticationError],
    [404, 'ERR_FILE_NOT_FOUND', NotFoundError],
    [404, 'ERR_CONTEXT_NOT_FOUND', NotFoundError],
    [409, 'ERR_ALREADY_EXISTS', AlreadyExistsError],
    [400, 'ERR_INVALID_PATH', InvalidRequestError],
    [429, 'ERR_TOO_MANY_CONTEXTS', LimitExceededError],
    [413, 'ERR_UPLOAD_TOO_LARGE', LimitExceededError],
    [503, 'ERR_JUPYTER_UNAVAILABLE', UnavailableError],
    [409, 'ERR_PATH_CHANGED', CodeInterpreterError],
  ];

  it.each(cases)('%i %s is matched by its class, with the code, status and message', async (status, code, errorClass) => {
    const client = new ResourceClient({ host: '127.0.0.1', port, accessToken: 'tok' });
    const error = await client.delete(`${status}/${code}`).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(errorClass);
    expect(error).toBeInstanceOf(CodeInterpreterError);
    expect(error).toMatchObject({ code, status, message: `the message of ${code}`, name: errorClass.name });
    expect(seen.at(-1)).toEqual({ url: `/files/${status}/${code}`, authorization: 'Bearer tok' });
  });

  it('keeps the status of an answer that is not the server error shape', async () => {
    const client = new ResourceClient({ host: '127.0.0.1', port });
    const error = await client.delete('502/html').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CodeInterpreterError);
    expect(error).toMatchObject({ code: 'HTTP_502', status: 502, message: expect.stringContaining('Bad Gateway') });
    expect(seen.at(-1)?.authorization).toBeUndefined();
  });

  it('encodes each segment of a path', async () => {
    const client = new ResourceClient({ host: '127.0.0.1', port });
    await client.delete('404/ERR_FILE_NOT_FOUND/a b/#c?.txt').catch(() => {});
    expect(seen.at(-1)?.url).toBe('/files/404/ERR_FILE_NOT_FOUND/a%20b/%23c%3F.txt');
  });

  it('does not retry connecting on an answer that is not about readiness', async () => {
    const client = new ExecutionClient({ host: '127.0.0.1', port });
    const before = seen.length;
    await expect(client.connect({ retries: 3, retryInterval: 0 })).rejects.toMatchObject({ status: 500 });
    expect(seen.length - before).toBe(1);
  });
});
