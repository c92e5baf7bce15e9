import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Process,
  Signal,
  StreamInputRequestSchema,
  type StartResponse,
} from '../../server/transports/connect/gen/envd/process/process_pb.js';
import { TestProcessHost } from '../helpers/process-host.js';
import { freePort, randomToken } from '../helpers/processes.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * envd's protocol on ENVD_PORT with a token, through a plain Connect client (binary protobuf
 * and JSON): the same access control as the API's port, and the calls e2b's SDK never makes
 * (client streaming).
 */
describe('the envd listener with ACCESS_TOKEN set', () => {
  const token = randomToken();
  let server: StartedServer;
  let envdUrl: string;
  const host = new TestProcessHost();

  const withHeaders =
    (headers: Record<string, string>): Interceptor =>
    (next) =>
    async (request) => {
      for (const [name, value] of Object.entries(headers)) request.header.set(name, value);
      return next(request);
    };

  const client = (headers: Record<string, string>, useBinaryFormat = true): Client<typeof Process> =>
    createClient(
      Process,
      createConnectTransport({ baseUrl: envdUrl, httpVersion: '1.1', useBinaryFormat, interceptors: [withHeaders(headers)] }),
    );

  const collect = async (stream: AsyncIterable<StartResponse>) => {
    let stdout = '';
    let end: { exitCode: number; status: string } | undefined;
    let pid = 0;
    for await (const { event } of stream) {
      const value = event?.event;
      if (value?.case === 'start') pid = value.value.pid;
      if (value?.case === 'data' && value.value.output.case === 'stdout') stdout += Buffer.from(value.value.output.value).toString('utf8');
      if (value?.case === 'end') end = value.value;
    }
    return { pid, stdout, end };
  };

  beforeAll(async () => {
    const port = await freePort();
    server = await startServer({ ACCESS_TOKEN: token, ENVD_PORT: String(port), PROCESS_HOST_SOCKET: host.socketPath });
    await host.start({ WORKSPACE_DIR: server.workspaceDir });
    envdUrl = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await server?.stop();
    await host.stop();
  });

  it('refuses every call without the token, or with a wrong one: unauthenticated', async () => {
    const attempts: Record<string, string>[] = [{}, { 'x-access-token': 'wrong-token-wrong-token' }, { authorization: 'Basic dXNlcjo=' }];
    for (const headers of attempts) {
      const refused = await client(headers)
        .list({})
        .catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.Unauthenticated);
    }
    // A streaming call, as e2b's SDK sends it (Connect's JSON envelope through fetch); nothing starts.
    const message = Buffer.from(JSON.stringify({ process: { cmd: '/bin/echo', args: ['never'] } }));
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
    envelope.writeUInt32BE(message.length, 1);
    const streaming = await fetch(`${envdUrl}/process.Process/Start`, {
      method: 'POST',
      headers: { 'content-type': 'application/connect+json', 'connect-protocol-version': '1' },
      body: envelope,
    });
    expect(streaming.status).toBe(401);
    expect((await fetch(`${envdUrl}/envs`)).status).toBe(401);
    // Open, as envd's and the API's own health checks are.
    const health = await fetch(`${envdUrl}/health`);
    expect(health.status).toBe(204);
    expect(health.headers.get('cache-control')).toBe('no-store');
  });

  it('runs a command with the token, in X-Access-Token or as Bearer, binary and JSON', async () => {
    const binary = await collect(client({ 'x-access-token': token }).start({ process: { cmd: '/bin/echo', args: ['hello'] } }));
    expect(binary).toMatchObject({ stdout: 'hello\n', end: { exitCode: 0, status: 'exit status 0' } });
    expect(binary.pid).toBeGreaterThan(0);
    const json = await collect(
      client({ authorization: `Bearer ${token}` }, false).start({ process: { cmd: '/bin/sh', args: ['-c', 'echo json; exit 2'] } }),
    );
    expect(json).toMatchObject({ stdout: 'json\n', end: { exitCode: 2, status: 'exit status 2', error: 'exit status 2' } });
    expect((await fetch(`${envdUrl}/envs`, { headers: { 'x-access-token': token } })).status).toBe(200);
  });

  it('refuses a user other than the kernels’ (Basic root): unauthenticated', async () => {
    const refused = await client({ 'x-access-token': token, authorization: 'Basic cm9vdDo=' })
      .list({})
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: Code.Unauthenticated });
    expect((refused as ConnectError).rawMessage).toMatch(/invalid username: 'root'/);
  });

  it('takes input as a client stream (StreamInput), which the SDK never sends', async () => {
    const processes = client({ 'x-access-token': token });
    const started = collect(processes.start({ process: { cmd: '/bin/cat' }, tag: 'stream-input' }));
    // The tag finds it once it runs.
    let pid = 0;
    for (let attempt = 0; attempt < 100 && pid === 0; attempt++) {
      pid = (await processes.list({})).processes.find((process) => process.tag === 'stream-input')?.pid ?? 0;
      if (pid === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(pid).toBeGreaterThan(0);
    async function* input() {
      yield create(StreamInputRequestSchema, {
        event: { case: 'start', value: { process: { selector: { case: 'tag', value: 'stream-input' } } } },
      });
      yield create(StreamInputRequestSchema, {
        event: { case: 'data', value: { input: { input: { case: 'stdin', value: Buffer.from('streamed\n') } } } },
      });
      yield create(StreamInputRequestSchema, { event: { case: 'keepalive', value: {} } });
    }
    await processes.streamInput(input());
    await processes.closeStdin({ process: { selector: { case: 'pid', value: pid } } });
    expect(await started).toMatchObject({ pid, stdout: 'streamed\n', end: { exitCode: 0 } });
  });

  it('answers not_found for an unknown pid, unimplemented for a signal envd does not know', async () => {
    const processes = client({ 'x-access-token': token });
    await expect(
      processes.sendSignal({ process: { selector: { case: 'pid', value: 999_999 } }, signal: Signal.SIGKILL }),
    ).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: 'process with pid 999999 not found',
    });
    const stream = collect(processes.start({ process: { cmd: '/bin/sleep', args: ['30'] }, tag: 'signals' }));
    let pid = 0;
    for (let attempt = 0; attempt < 100 && pid === 0; attempt++) {
      pid = (await processes.list({})).processes.find((process) => process.tag === 'signals')?.pid ?? 0;
      if (pid === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await expect(
      processes.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.UNSPECIFIED }),
    ).rejects.toMatchObject({
      code: Code.Unimplemented,
    });
    await processes.sendSignal({ process: { selector: { case: 'tag', value: 'signals' } }, signal: Signal.SIGTERM });
    expect((await stream).end).toMatchObject({ exitCode: -1, exited: false, status: 'signal: terminated' });
  });
});
