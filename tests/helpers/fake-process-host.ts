import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  encodeControl,
  encodeFrame,
  FrameDecoder,
  FrameKind,
  parseHostRequest,
  type HostEvent,
  type HostRequest,
  type StartMessage,
} from '../../server/process-host/protocol.js';

/** One process as the fake host sees it: what the API asked for, and a way to answer it. */
export interface FakeProcess {
  start: StartMessage;
  /** Every later control message, in order. */
  requests: HostRequest[];
  input: Buffer[];
  socket: Socket;
  send(event: HostEvent): void;
  output(kind: 'stdout' | 'stderr' | 'pty', data: string | Buffer): boolean;
  exit(exitCode: number | null, signal?: string | null): void;
  /** Resolves when the API closed its end (which, on the real host, kills the tree). */
  closed: Promise<void>;
}

/**
 * A process host that runs nothing: a real Unix-socket server speaking the host protocol, whose
 * processes are scripted by the test (`onStart`). By default `echo` prints its args and exits 0,
 * `cat` echoes its input until stdin is closed, `missing-cwd` is refused with ENOENT, and
 * anything else runs until a signal (which ends it by that signal).
 */
export class FakeProcessHost {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'fake-host-'));
  readonly socketPath = path.join(this.dir, 'host.sock');
  readonly processes: FakeProcess[] = [];
  /** Connections the API opened, whatever they sent. */
  connections = 0;
  private readonly server: Server;
  private nextPid = 1000;
  onStart: (process: FakeProcess) => void = (process) => defaultScript(process, this.pid());

  constructor() {
    this.server = createServer((socket) => this.accept(socket));
  }

  async listen(): Promise<this> {
    this.server.listen(this.socketPath);
    await once(this.server, 'listening');
    return this;
  }

  async close(): Promise<void> {
    for (const process of this.processes) process.socket.destroy();
    this.server.close();
    await once(this.server, 'close');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accept(socket: Socket): void {
    this.connections++;
    const decoder = new FrameDecoder();
    let process: FakeProcess | undefined;
    const closed = once(socket, 'close').then(() => undefined);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.kind === FrameKind.input) {
          process!.input.push(frame.body);
          if (process!.start.cmd === 'cat') process!.output('stdout', frame.body);
          continue;
        }
        const request = parseHostRequest(frame.body);
        if (!process) {
          if (request.op !== 'start') throw new Error(`first frame ${request.op}`);
          process = {
            start: request,
            requests: [],
            input: [],
            socket,
            closed,
            send: (event) => void (socket.destroyed || socket.writableEnded || socket.write(encodeControl(event))),
            output: (kind, data) => socket.write(encodeFrame(FrameKind[kind], typeof data === 'string' ? Buffer.from(data) : data)),
            exit: (exitCode, signal = null) => {
              process!.send({ ev: 'exit', exit_code: exitCode, signal: exitCode === null ? signal : null });
              socket.end();
            },
          };
          this.processes.push(process);
          this.onStart(process);
          continue;
        }
        process.requests.push(request);
        if (request.op === 'signal') process.exit(null, request.signal);
        if (request.op === 'close_stdin' && process.start.cmd === 'cat') process.exit(0);
      }
    });
  }

  pid(): number {
    return this.nextPid++;
  }
}

function defaultScript(process: FakeProcess, pid: number): void {
  if (process.start.cmd === 'missing-cwd') {
    process.send({ ev: 'error', code: 'ENOENT', message: `cwd '${process.start.cwd}' does not exist` });
    process.socket.end();
    return;
  }
  process.send({ ev: 'started', pid });
  const { cmd, args } = process.start;
  const shellEcho = cmd === '/bin/bash' && args[0] === '-c' && args[1]?.startsWith('echo ');
  if (cmd === 'echo' || shellEcho) {
    process.output('stdout', `${shellEcho ? args[1]!.slice(5) : args.join(' ')}\n`);
    process.exit(0);
  }
}
