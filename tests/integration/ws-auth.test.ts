import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StartedServer } from '../helpers/start-server.js';
import { mainResultOf, refusedUpgrade, WsClient, wsUrl } from './ws-client.js';

const TOKEN = 'ws-auth-test-token-0123456789';

/** A server of its own: the suite's runs without a token. */
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
    expect(await refusedUpgrade({ url, protocols: ['code-interpreter.v1', 'bearer.wrong-token-0123456789'] })).toMatchObject({ status: 401 });
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
