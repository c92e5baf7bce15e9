import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StartedServer } from '../helpers/start-server.js';
import { mainResultOf, refusedUpgrade, stdoutOf, WsClient, wsUrl } from './ws-client.js';

const TOKEN = 'ws-auth-test-token-0123456789';

/**
 * A server of its own: the suite's runs without a token, and pings every second, which would
 * close a socket paused for longer (this one keeps the default KEEPALIVE_INTERVAL of 5 s).
 */
let server: StartedServer;
beforeAll(async () => {
  server = await startServer({ ACCESS_TOKEN: TOKEN });
});
afterAll(async () => {
  await server?.stop();
});

async function runOnePlusOne(client: WsClient): Promise<void> {
  const id = await client.execute('auth', { code: '1+1' });
  expect(mainResultOf(await client.events(id))?.text).toBe('2');
  client.close();
}

describe('GET /ws: access control', () => {
  it('accepts the token in Authorization or X-Access-Token', async () => {
    await runOnePlusOne(await WsClient.open({ url: wsUrl(server.baseUrl), headers: { authorization: `Bearer ${TOKEN}` } }));
    await runOnePlusOne(await WsClient.open({ url: wsUrl(server.baseUrl), headers: { 'x-access-token': TOKEN } }));
  });

  it('accepts the token as the subprotocol bearer.<token>, and answers code-interpreter.v1 only', async () => {
    const client = await WsClient.open({ url: wsUrl(server.baseUrl), headers: {}, protocols: ['code-interpreter.v1', `bearer.${TOKEN}`] });
    expect(client.socket.protocol).toBe('code-interpreter.v1');
    await runOnePlusOne(client);
  });

  it('refuses with 401 before switching protocols without a valid token, or with one in the URL', async () => {
    const url = wsUrl(server.baseUrl);
    const none = await refusedUpgrade({ url });
    expect(none).toMatchObject({ status: 401, body: { code: 'ERR_UNAUTHORIZED' } });
    expect(none.body.message).toMatch(/bearer\.<token>/);
    expect(await refusedUpgrade({ url, headers: { authorization: 'Bearer wrong-token-0123456789' } })).toMatchObject({ status: 401 });
    expect(await refusedUpgrade({ url, protocols: ['code-interpreter.v1', 'bearer.wrong-token-0123456789'] })).toMatchObject({
      status: 401,
    });
    expect(await refusedUpgrade({ url: `${url}?token=${TOKEN}` })).toMatchObject({ status: 401, body: { code: 'ERR_UNAUTHORIZED' } });
    expect(await refusedUpgrade({ url: `${url}?access_token=${TOKEN}` })).toMatchObject({ status: 401 });
  });

  it('refuses an upgrade whose subprotocols lack code-interpreter.v1, and a plain GET', async () => {
    const url = wsUrl(server.baseUrl);
    const refused = await refusedUpgrade({ url, protocols: [`bearer.${TOKEN}`] });
    expect(refused).toMatchObject({ status: 400, body: { code: 'ERR_INVALID_REQUEST' } });
    expect(refused.body.message).toMatch(/code-interpreter\.v1/);
    const plain = await fetch(`${server.baseUrl}/ws`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(plain.status).toBe(426);
    expect(await plain.json()).toMatchObject({ code: 'ERR_UPGRADE_REQUIRED' });
  });
});

describe('GET /ws: backpressure', () => {
  const headers = { authorization: `Bearer ${TOKEN}` };
  const open = () => WsClient.open({ url: wsUrl(server.baseUrl), headers });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('holds back the execution of a socket that does not read, and nobody else', async () => {
    const newContext = async () => {
      const response = await fetch(`${server.baseUrl}/contexts`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: '{}',
      });
      return ((await response.json()) as { id: string }).id;
    };
    const [slowContext, fastContext] = [await newContext(), await newContext()];
    const slow = await open();
    const fast = await open();
    try {
      // 64 MiB: more than every buffer on the way (the socket's, the connection's, the log's).
      const slowId = await slow.execute('flood', {
        context_id: slowContext,
        code: 'import sys\nline = "x" * (1024 * 1024 - 1) + "\\n"\nfor _ in range(64):\n    sys.stdout.write(line)\n    sys.stdout.flush()',
      });
      slow.socket.pause();
      // The kernel waits for the reader: the log stops growing, far short of the 64 lines, and
      // stays where it is (unhindered, the kernel would go on printing meanwhile).
      const info = async () =>
        (await (await fetch(`${server.baseUrl}/executions/${slowId}`, { headers })).json()) as { state: string; event_count: number };
      await sleep(2000);
      const first = await info();
      await sleep(1500);
      const second = await info();
      expect(second.state).toBe('running');
      expect(second.event_count).toBe(first.event_count);
      expect(second.event_count).toBeLessThan(32);

      // Another socket, on another context, is not held back.
      const fastId = await fast.execute('quick', { context_id: fastContext, code: '1+1' });
      expect(mainResultOf(await fast.events(fastId, 20_000))?.text).toBe('2');

      slow.socket.resume();
      const events = await slow.events(slowId, 60_000);
      // The requester loses nothing.
      expect(stdoutOf(events).length).toBe(64 * 1024 * 1024);
      expect(events.filter((event) => event.type === 'events_dropped' || event.type === 'output_truncated')).toEqual([]);
    } finally {
      slow.close();
      fast.close();
    }
  });

  it('closes a socket that sends frames without reading the answers, while it sends', async () => {
    const client = await open();
    client.socket.pause();
    const count = 200_000;
    const started = performance.now();
    // The last frame's callback: an error once the server has hung up while the frames went out.
    let sent!: (error: Error | undefined) => void;
    const lastSent = new Promise<Error | undefined>((resolve) => (sent = resolve));
    for (let i = 0; i < count; i++) client.socket.send('not json', i === count - 1 ? (error) => sent(error) : undefined);
    const error = await lastSent;
    const sentMs = performance.now() - started;
    client.socket.resume();
    const deadline = Date.now() + 20_000;
    while (!client.closed && Date.now() < deadline) await sleep(100);
    const answered = client.frames.filter((frame) => frame.type === 'request_error').length;
    console.log(
      `${count} bad frames without reading: sent in ${Math.round(sentMs)} ms (${error ? `cut off: ${error.message}` : 'all accepted'}), ` +
        `${answered} answers reached the client, closed ${JSON.stringify(client.closed)} after ${Math.round(performance.now() - started)} ms`,
    );
    // Hung up on during the flood, not later by the keepalive (a client that sends is alive).
    expect(error).toBeInstanceOf(Error);
    // Closed by the server with no close frame (there is no reading one either).
    expect(client.closed?.code).toBe(1006);
    expect(answered).toBeLessThan(count);
  });
});
