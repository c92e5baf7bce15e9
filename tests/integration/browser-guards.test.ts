import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { accessToken, authHeaders, baseUrl, execute, request, stdoutOf } from '../helpers/api.js';

/** A raw request: fetch would not let a test set Host, which is what a rebinding page sends. */
function raw(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const call = httpRequest(`${baseUrl}${path}`, { method, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
    });
    call.on('error', reject);
    call.end(body);
  });
}

const marker = (name: string) => `import pathlib; pathlib.Path(${JSON.stringify(name)}).write_text("ran")`;

describe('web pages other than the allowed ones', () => {
  it('cannot run code by a cross-site POST that needs no preflight', async () => {
    const name = `cross-site-${Date.now()}.txt`;
    const answer = await raw(
      'POST',
      '/execute',
      authHeaders({ origin: 'https://evil.example.net', 'content-type': 'text/plain' }),
      JSON.stringify({ code: marker(name) }),
    );
    expect(answer.status).toBe(403);
    expect((JSON.parse(answer.body) as { code: string }).code).toBe('ERR_ORIGIN_NOT_ALLOWED');
    // The code never ran: the file it would have written does not exist.
    expect((await request('GET', `/files/${name}`)).status).toBe(404);
  });

  // With a token (the suite against a container started with one) names are not checked:
  // the page would have no token to send.
  it.skipIf(accessToken !== '')('cannot run code through DNS rebinding without a token', async () => {
    const name = `rebinding-${Date.now()}.txt`;
    const port = new URL(baseUrl).port;
    const answer = await raw(
      'POST',
      '/execute',
      { host: `rebind.evil.example.net:${port}`, origin: `http://rebind.evil.example.net:${port}`, 'content-type': 'text/plain' },
      JSON.stringify({ code: marker(name) }),
    );
    expect(answer.status).toBe(403);
    expect((JSON.parse(answer.body) as { code: string }).code).toBe('ERR_HOST_NOT_ALLOWED');
    expect((await request('GET', `/files/${name}`)).status).toBe(404);
  });

  it('leaves clients that send no Origin, such as curl -d, alone', async () => {
    expect(stdoutOf(await execute({ code: 'print("curl")' }))).toBe('curl\n');
  });
});
