import type { AddressInfo } from 'node:net';
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildEnvdApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { Process, type ProcessEvent } from '../../server/transports/connect/gen/envd/process/process_pb.js';
import { processService } from '../../server/transports/connect/process-service.js';
import { FakeProcessHost } from '../helpers/fake-process-host.js';
import { startOffline } from '../helpers/offline-app.js';

/**
 * The envd door over a scripted process host: what each Connect call becomes, how streams
 * start and end, keepalives and deadlines, without running a real command.
 */
describe('process.Process on the envd listener', () => {
  let host: FakeProcessHost;
  let envd: FastifyInstance;
  let processes: Client<typeof Process>;
  let json: Client<typeof Process>;

  beforeAll(async () => {
    host = await new FakeProcessHost().listen();
  });
  afterAll(async () => {
    await host.close();
  });

  const startEnvd = async () => {
    const env = { PROCESS_HOST_SOCKET: host.socketPath };
    const { app } = await startOffline(env);
    envd = await buildEnvdApp(loadConfig({ JUPYTER_URL: 'http://127.0.0.1:1', WORKSPACE_DIR: '/tmp', ...env }), {
      access: app.access,
      metrics: app.metrics,
      services: (router) => router.service(Process, processService(app.processes)),
    });
    await envd.listen({ host: '127.0.0.1', port: 0 });
    const baseUrl = `http://127.0.0.1:${(envd.server.address() as AddressInfo).port}`;
    processes = createClient(Process, createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true }));
    json = createClient(Process, createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false }));
    return app;
  };
  afterEach(async () => {
    await envd?.close();
  });

  const kinds = async (stream: AsyncIterable<{ event?: ProcessEvent }>, limit = Infinity) => {
    const seen: string[] = [];
    for await (const { event } of stream) {
      const value = event!.event;
      if (value.case === 'data') seen.push(`${value.value.output.case}:${Buffer.from(value.value.output.value!).toString()}`);
      else if (value.case === 'end') seen.push(`end:${value.value.exitCode}:${value.value.status}:${value.value.error ?? ''}`);
      else seen.push(String(value.case));
      if (seen.length >= limit) break;
    }
    return seen;
  };

  it('streams start, output and end; the command, args, envs, cwd and stdin reach the host', async () => {
    await startEnvd();
    expect(await kinds(processes.start({ process: { cmd: 'echo', args: ['hi'], envs: { A: 'b' }, cwd: '/tmp' } }))).toEqual([
      'start',
      'stdout:hi\n',
      'end:0:exit status 0:',
    ]);
    expect(host.processes.at(-1)!.start).toMatchObject({
      cmd: 'echo',
      args: ['hi'],
      envs: { A: 'b' },
      cwd: '/tmp',
      stdin: true,
      pty: null,
    });
    // envd's own default is a stdin pipe; the SDK asks for none.
    await kinds(json.start({ process: { cmd: 'echo' }, stdin: false }));
    expect(host.processes.at(-1)!.start.stdin).toBe(false);
  });

  it('ends a killed process with Go status strings and exit code -1', async () => {
    await startEnvd();
    host.onStart = (process) => {
      process.send({ ev: 'started', pid: 4242 });
      process.output('stderr', 'bye');
      process.exit(null, 'SIGKILL');
    };
    try {
      expect(await kinds(processes.start({ process: { cmd: 'x' } }))).toEqual([
        'start',
        'stderr:bye',
        'end:-1:signal: killed:signal: killed',
      ]);
    } finally {
      host.onStart = (process) => {
        process.send({ ev: 'started', pid: host.pid() });
        if (process.start.cmd === 'echo') {
          process.output('stdout', `${process.start.args.join(' ')}\n`);
          process.exit(0);
        }
      };
    }
  });

  it('sends keepalives while the process is silent, at the client’s Keepalive-Ping-Interval', async () => {
    await startEnvd();
    const started = Date.now();
    const seen = await kinds(processes.start({ process: { cmd: 'sleep' } }, { headers: { 'keepalive-ping-interval': '1' } }), 3);
    expect(seen).toEqual(['start', 'keepalive', 'keepalive']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    // The client went; the process did not (envd's semantics): it is still listed, until killed.
    const { processes: listed } = await processes.list({});
    const pid = listed.at(-1)!.pid;
    await processes.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: 9 });
    expect(host.processes.at(-1)!.requests).toContainEqual({ op: 'signal', signal: 'SIGKILL' });
  });

  it('takes Connect-Timeout-Ms as the process’s lifetime: killed, deadline_exceeded', async () => {
    await startEnvd();
    const failed = await kinds(processes.start({ process: { cmd: 'sleep' } }, { timeoutMs: 700 })).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(ConnectError);
    expect((failed as ConnectError).code).toBe(Code.DeadlineExceeded);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(host.processes.at(-1)!.requests).toContainEqual({ op: 'signal', signal: 'SIGKILL' });
  });

  it('re-attaches with Connect: new output only, then end; a finished one gets start and its end', async () => {
    await startEnvd();
    const background = processes.start({ process: { cmd: 'cat' }, tag: 'attach-me' })[Symbol.asyncIterator]();
    await background.next();
    const fake = host.processes.at(-1)!;
    fake.output('stdout', 'before\n');
    await background.next();
    const attached = kinds(processes.connect({ process: { selector: { case: 'tag', value: 'attach-me' } } }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await processes.sendInput({
      process: { selector: { case: 'tag', value: 'attach-me' } },
      input: { input: { case: 'stdin', value: Buffer.from('after\n') } },
    });
    await processes.closeStdin({ process: { selector: { case: 'tag', value: 'attach-me' } } });
    expect(await attached).toEqual(['start', 'stdout:after\n', 'end:0:exit status 0:']);
    expect(await kinds(processes.connect({ process: { selector: { case: 'tag', value: 'attach-me' } } }))).toEqual([
      'start',
      'end:0:exit status 0:',
    ]);
    await expect(
      processes
        .connect({ process: { selector: { case: 'pid', value: 1 } } })
        [Symbol.asyncIterator]()
        .next(),
    ).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: 'process with pid 1 not found',
    });
  });

  it('answers as envd does: terminal calls on a command, stdin calls on a terminal', async () => {
    await startEnvd();
    const command = processes.start({ process: { cmd: 'sleep' }, tag: 'plain' })[Symbol.asyncIterator]();
    await command.next();
    const plain = { selector: { case: 'tag' as const, value: 'plain' } };
    await expect(processes.update({ process: plain, pty: { size: { cols: 10, rows: 5 } } })).rejects.toMatchObject({ code: Code.Internal });
    await expect(processes.sendInput({ process: plain, input: { input: { case: 'pty', value: Buffer.from('x') } } })).rejects.toMatchObject(
      {
        code: Code.Internal,
      },
    );

    const terminal = processes
      .start({ process: { cmd: 'bash' }, pty: { size: { cols: 80, rows: 24 } }, tag: 'tty' })
      [Symbol.asyncIterator]();
    await terminal.next();
    expect(host.processes.at(-1)!.start.pty).toEqual({ cols: 80, rows: 24 });
    const tty = { selector: { case: 'tag' as const, value: 'tty' } };
    await expect(processes.closeStdin({ process: tty })).rejects.toMatchObject({ code: Code.Unknown });
    await processes.update({ process: tty, pty: { size: { cols: 100, rows: 30 } } });
    expect(host.processes.at(-1)!.requests).toContainEqual({ op: 'resize', cols: 100, rows: 30 });
    await processes.sendSignal({ process: tty, signal: 15 });
    await processes.sendSignal({ process: plain, signal: 15 });
  });
});
