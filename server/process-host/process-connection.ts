import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { IPty } from '@lydell/node-pty';
import {
  FrameDecoder,
  FrameKind,
  MAX_OUTPUT_CHUNK_BYTES,
  ProtocolError,
  encodeControl,
  encodeFrame,
  parseHostRequest,
  utf8CompleteLength,
  type HostEvent,
  type HostRequest,
  type StartErrorCode,
  type Frame,
  type StartMessage,
} from './protocol.js';
import { HOST_VARIABLE, MARKER_VARIABLE, killTree, signalTree } from './tree.js';
import { FileConnection } from './file-connection.js';
import type { SandboxFiles } from '../sandbox-files/types.js';

export interface HostSettings {
  /** Where a relative or absent cwd starts. */
  workspace: string;
  /** The environment every process starts from: the kernels' (no server variable in it). */
  baseEnv: Record<string, string>;
  /** RLIMIT_AS for every process, in bytes, as the kernels get it; null = none. */
  memoryLimit: number | null;
  /** The file operations of `fs` connections, as this host's user. */
  files: SandboxFiles;
  /** Called for what the host's operator should know; never with a command's arguments or env. */
  log: (level: 'debug' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

// The same OOM ranking as the kernels (image/kernels/launch-kernel): when memory runs out a
// command is what the kernel's OOM killer takes, not the API or Jupyter. envd wraps its commands
// in /bin/sh the same way, so a missing command is sh's "not found" and exit 127, as there.
// The caller's envs are set only after the limit, by `env`: given to this shell, a loader
// variable (LD_PRELOAD, LD_AUDIT) would run the caller's code before `ulimit`.
function wrapper(memoryLimit: number | null, callerEnvs: boolean): string {
  const limit = memoryLimit === null ? '' : `ulimit -v ${Math.max(1, Math.floor(memoryLimit / 1024))} || exit 126; `;
  return `echo 1000 >/proc/self/oom_score_adj 2>/dev/null; ${limit}exec ${callerEnvs ? 'env -- ' : ''}"$@"`;
}

/** The wrapper's argv: its script, its `$0`, the caller's envs (if any) for `env`, then the command. */
function wrapperArgv(request: StartMessage, memoryLimit: number | null): string[] {
  // The markers are the host's: a caller's envs cannot take a process out of its tree's reach.
  const envs = Object.entries(request.envs).filter(([name]) => name !== MARKER_VARIABLE && name !== HOST_VARIABLE);
  const command = [request.cmd, ...request.args];
  if (envs.length === 0) return ['-c', wrapper(memoryLimit, false), 'sh', ...command];
  const assignments = envs.map(([name, value]) => `${name}=${value}`);
  // `env` runs the command itself unless its path holds "=", which `env` would take for one more
  // variable: then a second sh execs it (dash passes on only names a shell can hold).
  const run = request.cmd.includes('=') ? ['/bin/sh', '-c', 'exec "$@"', 'sh', ...command] : command;
  return ['-c', wrapper(memoryLimit, true), 'sh', ...assignments, ...run];
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(osConstants.signals).map(([name, number]) => [number, name]));

type Started = { kind: 'pipes'; child: ChildProcess; pid: number } | { kind: 'pty'; pty: IPty; pid: number };

let ptyModule: Promise<typeof import('@lydell/node-pty')> | undefined;
/** Loaded on the first terminal only: most hosts never start one. */
function loadPty(): Promise<typeof import('@lydell/node-pty')> {
  ptyModule ??= import('@lydell/node-pty');
  return ptyModule;
}

/**
 * One connection: one process, or one ping. The connection owns the process: when it closes
 * before the process ended, the tree is killed. Output goes out in frames of at most 64 KiB cut
 * on UTF-8 boundaries; when the socket's buffer is full the child's pipes (or its terminal) are
 * paused until it drains, so a reader that does not keep up stops the writer, not the host's memory.
 */
export class ProcessConnection {
  private readonly decoder = new FrameDecoder();
  private started: Started | undefined;
  private starting = false;
  private startMessage: StartMessage | undefined;
  private exited = false;
  private stdinOpen = false;
  private timedOut = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly paused = new Set<Readable>();
  private queued: Frame[] = [];
  private ptyPaused = false;
  /** Set when the first request was a file operation: every later frame is its. */
  private files: FileConnection | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly settings: HostSettings,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.resumeOutput());
    socket.on('error', () => socket.destroy());
    // The API ends its side: the process is no longer wanted.
    socket.on('end', () => socket.destroy());
    socket.on('close', () => this.onClose());
  }

  private onData(chunk: Buffer): void {
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (this.files) {
          this.files.onFrame(frame);
          continue;
        }
        if (frame.kind !== FrameKind.control && frame.kind !== FrameKind.input)
          throw new ProtocolError(`frame kind ${frame.kind} is not the API's to send`);
        // Frames behind the start wait for the process (the socket is paused meanwhile, so what
        // waits is at most the rest of one read).
        if (this.startMessage !== undefined && !this.started && !this.exited) this.queued.push(frame);
        else this.onFrame(frame);
      }
    } catch (error) {
      this.protocolError(error);
    }
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === FrameKind.control) this.onRequest(parseHostRequest(frame.body));
    else this.onInput(frame.body);
  }

  private protocolError(error: unknown): void {
    this.settings.log('warn', 'process host: bad frame from the API; closing the connection', { reason: (error as Error).message });
    this.socket.destroy();
  }

  private onRequest(request: HostRequest): void {
    const first = this.startMessage === undefined && !this.starting;
    if (request.op === 'ping') {
      if (!first) throw new ProtocolError('ping must be the only request of its connection');
      this.send({ ev: 'pong', pid: process.pid });
      this.socket.end();
      this.starting = true; // nothing else is accepted on this connection
      return;
    }
    if (request.op === 'fs') {
      if (!first) throw new ProtocolError('fs must be the first request, once');
      this.starting = true;
      this.files = new FileConnection(this.socket, this.settings.files, request, this.settings.log);
      return;
    }
    if (request.op === 'start') {
      if (!first) throw new ProtocolError('start must be the first request, once');
      this.starting = true;
      this.startMessage = request;
      this.socket.pause();
      void this.start(request).finally(() => this.afterStart());
      return;
    }
    if (this.startMessage === undefined) throw new ProtocolError(`${request.op} before start`);
    const started = this.started;
    if (!started || this.exited) return; // not yet, or too late: nothing to act on
    switch (request.op) {
      case 'signal':
        // A kill stops the tree before it kills it, round after round, so that nothing forked
        // between a scan and the signal survives; other signals reach the tree once.
        if (request.signal === 'SIGKILL') void this.kill();
        else signalTree(started.pid, this.startMessage.id, request.signal);
        return;
      case 'resize':
        if (started.kind === 'pty') started.pty.resize(request.cols, request.rows);
        return;
      case 'close_stdin':
        if (started.kind === 'pipes' && this.stdinOpen) {
          this.stdinOpen = false;
          started.child.stdin?.end();
        }
        return;
    }
  }

  private onInput(bytes: Buffer): void {
    const started = this.started;
    if (!started || this.exited || bytes.length === 0) return;
    if (started.kind === 'pty') {
      // Typed as string, but on Unix it goes straight to a socket's write: bytes pass unchanged.
      started.pty.write(bytes as unknown as string);
      return;
    }
    const stdin = started.child.stdin;
    if (!this.stdinOpen || !stdin) return;
    // A process that does not read its input stops the API's writes: the socket stops being read.
    if (!stdin.write(bytes)) {
      this.socket.pause();
      // Or when stdin is gone (EPIPE: the process stopped reading for good): what it will never
      // take is dropped, and the connection must stay readable for the API's close.
      const resume = () => {
        stdin.off('drain', resume);
        stdin.off('close', resume);
        this.socket.resume();
      };
      stdin.on('drain', resume);
      stdin.on('close', resume);
    }
  }

  private async start(request: StartMessage): Promise<void> {
    const cwd = path.resolve(this.settings.workspace, request.cwd ?? '.');
    const refused = await this.checkCwd(cwd);
    if (refused) return this.fail(refused, `cwd '${request.cwd ?? cwd}': ${describe(refused)}`);
    if (this.socket.destroyed) return;
    // What the wrapper shell starts with: the kernels' environment and the markers; the caller's
    // envs come after the memory limit (see wrapper()).
    const env: Record<string, string> = { ...this.settings.baseEnv, [MARKER_VARIABLE]: request.id };
    const argv = wrapperArgv(request, this.settings.memoryLimit);
    try {
      if (request.pty) {
        const { spawn: spawnPty } = await loadPty();
        if (this.socket.destroyed) return;
        if (request.envs.TERM === undefined) env.TERM ??= 'xterm-256color';
        const pty = spawnPty('/bin/sh', argv, { cols: request.pty.cols, rows: request.pty.rows, cwd, env, encoding: null });
        this.started = { kind: 'pty', pty, pid: pty.pid };
        this.send({ ev: 'started', pid: pty.pid });
        const carry = new Carry();
        pty.onData((data: string | Buffer) => this.output(FrameKind.pty, carry, Buffer.from(data)));
        pty.onExit(({ exitCode, signal }) => {
          this.output(FrameKind.pty, carry, null);
          this.finish(signal ? null : exitCode, signal ? (SIGNAL_NAMES.get(signal) ?? `SIG${signal}`) : null);
        });
      } else {
        const child = spawn('/bin/sh', argv, { cwd, env, detached: true, stdio: [request.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
        const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
          child.once('spawn', () => resolve(undefined));
          child.once('error', resolve);
        });
        if (error || child.pid === undefined) return this.fail(errorCode(error), error?.message ?? 'the process did not start');
        this.started = { kind: 'pipes', child, pid: child.pid };
        this.stdinOpen = request.stdin;
        child.stdin?.on('error', () => (this.stdinOpen = false)); // EPIPE: it closed its input
        this.send({ ev: 'started', pid: child.pid });
        this.pipe(child.stdout!, FrameKind.stdout);
        this.pipe(child.stderr!, FrameKind.stderr);
        // 'close': the process is reaped and both pipes reached EOF (a grandchild that keeps them
        // open delays it, as with envd).
        child.once('close', (code, signal) => this.finish(code, signal));
      }
    } catch (error) {
      return this.fail(errorCode(error as NodeJS.ErrnoException), (error as Error).message);
    }
    this.settings.log('debug', 'process host: started', { pid: this.started.pid, pty: request.pty !== null });
    if (this.socket.destroyed) return this.kill();
    if (request.timeout_ms !== null)
      this.timer = setTimeout(() => {
        this.timedOut = true;
        void this.kill();
      }, request.timeout_ms);
  }

  private afterStart(): void {
    if (this.socket.destroyed) return;
    const queued = this.queued;
    this.queued = [];
    try {
      for (const frame of queued) this.onFrame(frame);
    } catch (error) {
      return this.protocolError(error);
    }
    this.socket.resume();
  }

  private async checkCwd(cwd: string): Promise<StartErrorCode | undefined> {
    try {
      if (!(await stat(cwd)).isDirectory()) return 'ENOTDIR';
      await access(cwd, fsConstants.X_OK);
      return undefined;
    } catch (error) {
      return errorCode(error as NodeJS.ErrnoException);
    }
  }

  private pipe(stream: Readable, kind: FrameKind): void {
    const carry = new Carry();
    stream.on('data', (chunk: Buffer) => {
      if (!this.output(kind, carry, chunk)) {
        stream.pause();
        this.paused.add(stream);
      }
    });
    stream.on('end', () => this.output(kind, carry, null));
  }

  /** Sends output (null: the end, flush what is held). false: the socket is full, pause. */
  private output(kind: FrameKind, carry: Carry, chunk: Buffer | null): boolean {
    let open = true;
    for (const frame of carry.take(chunk)) open = this.write(encodeFrame(kind, frame)) && open;
    if (!open && kind === FrameKind.pty && this.started?.kind === 'pty' && !this.ptyPaused) {
      this.ptyPaused = true;
      this.started.pty.pause();
    }
    return open;
  }

  private resumeOutput(): void {
    for (const stream of this.paused) stream.resume();
    this.paused.clear();
    if (this.ptyPaused && this.started?.kind === 'pty') {
      this.ptyPaused = false;
      this.started.pty.resume();
    }
  }

  private finish(code: number | null, signal: string | null): void {
    if (this.exited) return;
    this.exited = true;
    this.queued = [];
    clearTimeout(this.timer);
    const event: HostEvent =
      code === null ? { ev: 'exit', exit_code: null, signal: signal ?? 'SIGKILL' } : { ev: 'exit', exit_code: code & 0xff, signal: null };
    if (this.timedOut) event.timed_out = true;
    this.send(event);
    this.socket.end();
  }

  private fail(code: StartErrorCode, message: string): void {
    this.exited = true;
    this.send({ ev: 'error', code, message });
    this.socket.end();
  }

  private send(event: HostEvent): void {
    this.write(encodeControl(event));
  }

  private write(frame: Buffer): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return true;
    return this.socket.write(frame);
  }

  private onClose(): void {
    if (this.started && !this.exited) void this.kill();
  }

  private async kill(): Promise<void> {
    const started = this.started;
    if (!started) return;
    await killTree(started.pid, this.startMessage?.id ?? null);
    // A paused pipe never reaches EOF: let it drain into the void so the child can be reaped.
    if (this.socket.destroyed) for (const stream of this.paused) stream.resume();
  }
}

/**
 * Cuts output into frames of at most 64 KiB, holding back the ≤ 3 bytes of a character cut at
 * the end of a read, so that text never splits a character across frames.
 */
class Carry {
  private held: Buffer | undefined;

  take(chunk: Buffer | null): Buffer[] {
    if (chunk === null) {
      const rest = this.held;
      this.held = undefined;
      return rest ? [rest] : [];
    }
    const bytes = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    const complete = utf8CompleteLength(bytes);
    this.held = complete < bytes.length ? Buffer.from(bytes.subarray(complete)) : undefined;
    const frames: Buffer[] = [];
    let offset = 0;
    while (offset < complete) {
      let end = Math.min(complete, offset + MAX_OUTPUT_CHUNK_BYTES);
      if (end < complete) end = offset + (utf8CompleteLength(bytes.subarray(offset, end)) || end - offset);
      frames.push(bytes.subarray(offset, end));
      offset = end;
    }
    return frames;
  }
}

function errorCode(error: NodeJS.ErrnoException | undefined): StartErrorCode {
  const code = error?.code;
  return code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR' || code === 'EMFILE' ? code : 'EINVAL';
}

function describe(code: StartErrorCode): string {
  return {
    ENOENT: 'does not exist',
    EACCES: 'permission denied',
    ENOTDIR: 'not a directory',
    EMFILE: 'too many open files',
    EINVAL: 'invalid',
  }[code];
}
