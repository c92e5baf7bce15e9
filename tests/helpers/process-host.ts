import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import {
  FrameDecoder,
  FrameKind,
  encodeControl,
  encodeFrame,
  parseHostEvent,
  type HostEvent,
  type HostRequest,
  type StartMessage,
} from '../../server/process-host/protocol.js';

const MAIN = path.resolve(import.meta.dirname, '..', '..', 'dist', 'server', 'process-host', 'main.js');

/** A process host started from dist/ (npm run build) as this uid, on a socket in a temp dir. */
export class TestProcessHost {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'process-host-test-'));
  readonly socketPath = path.join(this.dir, 'host.sock');
  readonly workspace = mkdtempSync(path.join(tmpdir(), 'process-host-workspace-'));
  process: ChildProcess | undefined;
  stderr = '';

  async start(env: Record<string, string> = {}): Promise<void> {
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: this.workspace,
        PROCESS_HOST_SOCKET: this.socketPath,
        WORKSPACE_DIR: this.workspace,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process = child;
    child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!output.includes('listening')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the process host did not start: ${this.stderr}${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  connect(): Promise<HostClient> {
    return HostClient.open(this.socketPath);
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.workspace, { recursive: true, force: true });
  }
}

export interface Collected {
  events: HostEvent[];
  stdout: string;
  stderr: string;
  pty: string;
  /** Output frames' sizes, in arrival order. */
  sizes: number[];
}

/** One connection: sends requests and input, collects what comes back until the host closes it. */
export class HostClient {
  readonly collected: Collected = { events: [], stdout: '', stderr: '', pty: '', sizes: [] };
  readonly closed: Promise<Collected>;
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) {
        if (frame.kind === FrameKind.control) this.collected.events.push(parseHostEvent(frame.body));
        else {
          this.collected.sizes.push(frame.body.length);
          const text = frame.body.toString('utf8');
          if (frame.kind === FrameKind.stdout) this.collected.stdout += text;
          else if (frame.kind === FrameKind.stderr) this.collected.stderr += text;
          else this.collected.pty += text;
        }
      }
      for (const waiter of this.waiters.splice(0)) waiter();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(this.collected)));
  }

  static async open(socketPath: string): Promise<HostClient> {
    const socket = connect(socketPath);
    await once(socket, 'connect');
    return new HostClient(socket);
  }

  send(request: HostRequest): void {
    this.socket.write(encodeControl(request));
  }

  start(fields: Partial<StartMessage> & { cmd: string }): void {
    this.send({ op: 'start', id: randomUUID(), args: [], envs: {}, cwd: null, pty: null, stdin: false, timeout_ms: null, ...fields });
  }

  input(data: string | Buffer): void {
    this.socket.write(encodeFrame(FrameKind.input, Buffer.from(data)));
  }

  /** Resolves once `test` holds for what was collected (checked after each read). */
  async until(test: (collected: Collected) => boolean, timeoutMs = 10_000): Promise<Collected> {
    const deadline = Date.now() + timeoutMs;
    while (!test(this.collected)) {
      if (Date.now() > deadline) throw new Error(`timed out; collected: ${JSON.stringify(this.collected).slice(0, 2000)}`);
      await Promise.race([new Promise<void>((resolve) => this.waiters.push(resolve)), new Promise((resolve) => setTimeout(resolve, 50))]);
    }
    return this.collected;
  }

  pid(): number {
    const started = this.collected.events.find((event) => event.ev === 'started');
    if (!started) throw new Error('not started');
    return started.pid;
  }
}
