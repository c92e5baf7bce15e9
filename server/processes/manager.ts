import { EventEmitter } from 'node:events';
import {
  InvalidCwdError,
  InvalidEnvVarError,
  InvalidRequestError,
  PermissionDeniedError,
  ProcessHostUnavailableError,
  ProcessNotFoundError,
  ShuttingDownError,
  TooManyProcessesError,
} from '../errors.js';
import type { Logger } from '../logger.js';
import { invalidEnvVarName, invalidEnvVarValue } from '../runs/env-vars.js';
import { MAX_FRAME_BYTES, ProtocolError, type PtySize, type StartErrorCode, type StartMessage } from '../process-host/protocol.js';
import { HostConnection, type OutputStream } from './host-connection.js';
import { RetainedLogs, type SharedLogBudget } from '../executions/retained-logs.js';
import { ManagedProcess, type ProcessDisconnectPolicy, type ProcessInfo, type ProcessOwner } from './process.js';

/** What a door asks for; field names are the domain's, in camelCase. */
export interface StartProcess {
  cmd: string;
  args?: string[] | undefined;
  envs?: Record<string, string> | undefined;
  /** Absolute, or relative to the workspace; undefined: the workspace. */
  cwd?: string | undefined;
  pty?: PtySize | undefined;
  tag?: string | undefined;
  /** A pipe for stdin (true, the default) or /dev/null. */
  stdin?: boolean | undefined;
  /** The process is killed with its tree after this long; 0 or undefined: no limit. */
  timeoutMs?: number | undefined;
  owner?: ProcessOwner | undefined;
  /** What its requester's going away does; `kill` unless given. */
  onDisconnect?: ProcessDisconnectPolicy | undefined;
}

export interface ProcessManagerOptions {
  /** The process host's socket; undefined: this server runs no commands. */
  hostSocket: string | undefined;
  logger: Logger;
  /** Processes starting or running at once. */
  maxProcesses: number;
  /** Events kept per process, in bytes. */
  bufferBytes: number;
  /** Events kept over all processes, in bytes, unless they share `logBudget`. */
  totalBufferBytes: number;
  /** The executions' bound on buffered events, shared: one setting bounds both kinds. */
  logBudget?: SharedLogBudget | undefined;
  /** How long a finished process is kept, in ms. */
  retentionMs: number;
  /** How many finished processes are kept at most. */
  maxRetained: number;
}

export interface ProcessLifecycle {
  started: [ProcessInfo];
  finished: [ProcessInfo];
  output: [stream: OutputStream, bytes: number];
}

/** Arguments, envs and cwd together: what one start may carry to the host. */
export const MAX_START_BYTES = 512 * 1024;
const MAX_ARGS = 4096;
const MAX_TAG_LENGTH = 256;
/** The longest delay a Node timer can hold (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Every process of the server, as `ExecutionManager` holds every execution: starts them (after
 * every check that can refuse a request, and once the host said it started), finds them by id,
 * pid or tag, kills those of an owner that goes, keeps finished ones for a while, and kills all
 * of them at shutdown.
 */
export class ProcessManager {
  readonly lifecycle = new EventEmitter<ProcessLifecycle>();
  private readonly processes: RetainedLogs<ManagedProcess>;
  /** Processes the host has not yet said it started, with the promise that says it. */
  private readonly starting = new Map<ManagedProcess, Promise<number>>();
  private running = 0;
  private closing = false;

  constructor(private readonly options: ProcessManagerOptions) {
    this.processes = new RetainedLogs(options, options.logBudget);
  }

  /** Resolves once the process runs (its pid known); refuses with a coded error otherwise. */
  async start(request: StartProcess): Promise<ManagedProcess> {
    if (this.closing) throw new ShuttingDownError();
    const socket = this.options.hostSocket;
    if (socket === undefined) throw new ProcessHostUnavailableError('PROCESS_HOST_SOCKET is not set: this server runs no commands');
    const args = request.args ?? [];
    const envs = request.envs ?? {};
    this.check(request, args, envs);
    if (this.running >= this.options.maxProcesses) throw new TooManyProcessesError(this.running);

    const process = new ManagedProcess({
      config: { cmd: request.cmd, args, envs, cwd: request.cwd },
      pty: request.pty ?? null,
      stdin: request.stdin ?? true,
      tag: request.tag,
      owner: request.owner ?? { kind: 'server' },
      onDisconnect: request.onDisconnect ?? 'kill',
      timeoutMs: request.timeoutMs ?? 0,
      bufferBytes: this.options.bufferBytes,
      budget: this.processes.budget,
      onOutput: (stream, bytes) => this.lifecycle.emit('output', stream, bytes),
    });
    const timeoutMs = request.timeoutMs ?? 0;
    const connection = this.connect(socket, {
      op: 'start',
      id: process.id,
      cmd: request.cmd,
      args,
      envs,
      cwd: request.cwd ?? null,
      pty: request.pty ?? null,
      stdin: request.stdin ?? true,
      // A backstop a little after the API's own deadline, which is the one that reports TimeoutError.
      timeout_ms: timeoutMs > 0 ? Math.min(timeoutMs + 5000, MAX_TIMER_MS) : null,
    });
    this.running++;
    // Held from now on, so that an owner that goes (or the server closing) meanwhile finds it.
    this.processes.add(process);
    const attached = process.attach(connection);
    this.starting.set(process, attached);
    try {
      await attached;
    } catch (error) {
      this.running--;
      this.processes.forget(process);
      throw this.startError(error as Error & { code?: StartErrorCode | 'ECANCELED' }, request.cwd);
    } finally {
      this.starting.delete(process);
    }
    this.options.logger.debug({ process: process.id, pid: process.pid }, 'process started');
    this.lifecycle.emit('started', process.info);
    void process.finished.then(() => {
      this.running--;
      this.options.logger.debug({ process: process.id, exit_code: process.info.exit_code }, 'process finished');
      this.lifecycle.emit('finished', process.info);
      this.processes.finished(process);
    });
    return process;
  }

  get(id: string): ManagedProcess {
    const process = this.processes.get(id);
    if (!process) throw new ProcessNotFoundError(id);
    return process;
  }

  /** The process of this pid, the running one first (pids are reused). */
  findByPid(pid: number): ManagedProcess | undefined {
    return this.newestFirst().find((process) => process.pid === pid && process.isRunning) ?? this.newestFirst().find((p) => p.pid === pid);
  }

  findByTag(tag: string): ManagedProcess | undefined {
    return this.newestFirst().find((process) => process.tag === tag && process.isRunning) ?? this.newestFirst().find((p) => p.tag === tag);
  }

  /** The processes still held, newest first; `running` only those not yet exited. */
  list(options: { running?: boolean } = {}): ManagedProcess[] {
    const all = this.newestFirst();
    return options.running ? all.filter((process) => process.isRunning) : all;
  }

  /** Kills a process's tree and forgets it. */
  async remove(id: string, graceMs = 5000): Promise<void> {
    const process = this.get(id);
    await this.kill(process, graceMs);
    this.processes.forget(process);
  }

  /** Kills every process of an owner that goes (a deleted context, a closed session). */
  async killOwnedBy(owner: ProcessOwner, graceMs = 5000): Promise<void> {
    const owned = this.list().filter(
      (process) =>
        process.owner.kind === owner.kind && (owner.kind === 'server' || ('id' in process.owner && process.owner.id === owner.id)),
    );
    await Promise.all(owned.map((process) => this.kill(process, graceMs)));
  }

  get runningCount(): number {
    return this.running;
  }

  get totalBufferedBytes(): number {
    return this.processes.totalBufferedBytes;
  }

  /** Shutdown: every tree is killed, and waited for up to `graceMs`. */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    this.processes.stop();
    await Promise.all(this.list().map((process) => this.kill(process, graceMs)));
  }

  /**
   * SIGKILL to the tree and a wait for the host's exit (so the log says how it ended); past
   * `graceMs` the connection is closed, which makes the host kill what is left.
   */
  async kill(process: ManagedProcess, graceMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    // One still starting is waited for (it then has a pid to kill), up to the grace period.
    const starting = this.starting.get(process);
    if (starting) await Promise.race([starting.then(noop, noop), grace]);
    clearTimeout(timer);
    if (process.state === 'starting') return process.close();
    if (!process.isRunning) return;
    process.signal('kill');
    await Promise.race([process.finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    process.close();
  }

  /** The start goes out in one frame: one whose JSON (escapes included) does not fit is refused before anything opens. */
  private connect(socket: string, start: StartMessage): HostConnection {
    try {
      return new HostConnection(socket, start);
    } catch (error) {
      if (error instanceof ProtocolError) {
        throw new InvalidRequestError(`cmd, args, cwd and envs take more than ${MAX_FRAME_BYTES} bytes once encoded as JSON`);
      }
      throw error;
    }
  }

  private check(request: StartProcess, args: string[], envs: Record<string, string>): void {
    if (typeof request.cmd !== 'string' || request.cmd === '') throw new InvalidRequestError('cmd must be a non-empty string');
    if (args.length > MAX_ARGS) throw new InvalidRequestError(`at most ${MAX_ARGS} args`);
    let bytes = Buffer.byteLength(request.cmd) + Buffer.byteLength(request.cwd ?? '');
    for (const text of [request.cmd, ...args]) {
      if (text.includes('\0')) throw new InvalidRequestError('cmd and args must not contain NUL bytes');
      bytes += Buffer.byteLength(text);
    }
    if (request.cwd?.includes('\0')) throw new InvalidCwdError('must not contain NUL bytes');
    for (const [name, value] of Object.entries(envs)) {
      const nameProblem = invalidEnvVarName(name);
      if (nameProblem) throw new InvalidEnvVarError(`name ${JSON.stringify(name)}`, nameProblem);
      const valueProblem = invalidEnvVarValue(value);
      if (valueProblem) throw new InvalidEnvVarError(`value of ${JSON.stringify(name)}`, valueProblem);
      bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
    }
    if (bytes > MAX_START_BYTES) throw new InvalidRequestError(`cmd, args, cwd and envs must total at most ${MAX_START_BYTES} bytes`);
    if (request.tag !== undefined && (request.tag.length > MAX_TAG_LENGTH || request.tag.includes('\0'))) {
      throw new InvalidRequestError(`tag must be at most ${MAX_TAG_LENGTH} characters, without NUL`);
    }
    const timeout = request.timeoutMs ?? 0;
    if (!Number.isFinite(timeout) || timeout < 0 || timeout > MAX_TIMER_MS) {
      throw new InvalidRequestError(`timeout must be between 0 and ${Math.floor(MAX_TIMER_MS / 1000)} seconds`);
    }
    const size = request.pty;
    if (size && !([size.cols, size.rows] as number[]).every((n) => Number.isInteger(n) && n >= 1 && n <= 0xffff)) {
      throw new InvalidRequestError('pty cols and rows must be whole numbers from 1 to 65535');
    }
  }

  private startError(error: Error & { code?: StartErrorCode | 'ECANCELED' }, cwd: string | undefined): Error {
    switch (error.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return new InvalidCwdError(`${cwd ?? '(the workspace)'}: ${error.message}`);
      case 'EACCES':
        return new PermissionDeniedError(error.message);
      case 'EINVAL':
        return new InvalidRequestError(error.message);
      case 'ECANCELED':
        return this.closing ? new ShuttingDownError() : new ProcessHostUnavailableError(error.message);
      case 'EMFILE':
        return new ProcessHostUnavailableError(error.message);
      default:
        return new ProcessHostUnavailableError(error.message);
    }
  }

  private newestFirst(): ManagedProcess[] {
    return this.processes.values().reverse();
  }
}

function noop(): void {}
