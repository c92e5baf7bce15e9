import { randomUUID } from 'node:crypto';
import type { OutputEvent } from '../runs/events.js';
import { EventLog, type LogBudget, type LogEntry } from '../executions/event-log.js';
import { ProcessInputError } from '../errors.js';
import type { ExitEvent as HostExit, ProcessSignal, PtySize } from '../process-host/protocol.js';
import type { HostConnection, OutputStream } from './host-connection.js';

/** Who a process belongs to: it dies with its owner (a context deleted, a session closed). */
export type ProcessOwner = { kind: 'server' } | { kind: 'context'; id: string } | { kind: 'mcp'; id: string } | { kind: 'ws'; id: string };

/** What becomes of a process whose requester (the reader that started it) goes away. */
export type ProcessDisconnectPolicy = 'kill' | 'continue';

export type ProcessState = 'starting' | 'running' | 'exited';

export type SignalName = 'interrupt' | 'terminate' | 'kill';

export interface ProcessConfig {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  /** As the request gave it; undefined: the workspace (or the context's cwd). */
  cwd: string | undefined;
}

export interface ProcessInfo {
  id: string;
  pid: number | null;
  tag: string | null;
  cmd: string;
  args: string[];
  cwd: string | null;
  pty: PtySize | null;
  stdin: 'enabled' | 'closed' | 'disabled';
  state: ProcessState;
  owner: ProcessOwner;
  exit_code: number | null;
  signal: string | null;
  created_at: string;
  finished_at: string | null;
  event_count: number;
}

export interface ProcessOptions {
  config: ProcessConfig;
  pty: PtySize | null;
  stdin: boolean;
  tag: string | undefined;
  owner: ProcessOwner;
  onDisconnect: ProcessDisconnectPolicy;
  /** 0: none. */
  timeoutMs: number;
  bufferBytes: number;
  budget?: LogBudget;
  onOutput?: (stream: OutputStream, bytes: number) => void;
}

/**
 * The reason to abort a reader's signal with when its client stops following the process but
 * is still there (a WebSocket's `process_detach`): the process then runs on, whatever its
 * disconnect policy, which applies when the client itself goes.
 */
export const READER_DETACHED: unknown = Object.freeze({ reason: 'detached' });

/** Largest input one write may carry: the rest of the API bounds bodies and frames alike. */
export const MAX_INPUT_BYTES = 1024 * 1024;

/** Input accepted but not yet taken by the host (a process that does not read): beyond it, writes are refused. */
export const MAX_QUEUED_INPUT_BYTES = 4 * MAX_INPUT_BYTES;

/**
 * Like an execution's requester: the process is paused (its host connection stops being read)
 * once the requester lags this far behind, and resumed under the low mark.
 */
const HIGH_WATER_BYTES = 1024 * 1024;
const LOW_WATER_BYTES = 256 * 1024;

const SIGNALS: Record<SignalName, ProcessSignal> = { interrupt: 'SIGINT', terminate: 'SIGTERM', kill: 'SIGKILL' };

/** Go's ProcessState.String() for a signal, which e2b's clients show as is. */
const SIGNAL_WORDS: Record<string, string> = {
  SIGINT: 'interrupt',
  SIGTERM: 'terminated',
  SIGKILL: 'killed',
  SIGHUP: 'hangup',
  SIGQUIT: 'quit',
  SIGABRT: 'aborted',
  SIGSEGV: 'segmentation fault',
  SIGPIPE: 'broken pipe',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGILL: 'illegal instruction',
  SIGUSR1: 'user defined signal 1',
  SIGUSR2: 'user defined signal 2',
  SIGALRM: 'alarm clock',
};

export function exitStatus(exitCode: number | null, signal: string | null): string {
  if (exitCode !== null) return `exit status ${exitCode}`;
  return `signal: ${SIGNAL_WORDS[signal ?? ''] ?? signal ?? 'unknown'}`;
}

/**
 * A command or a terminal run by the process host as the kernels' user: an execution of
 * another kind. It has an id, an event log of the same events (stdout and stderr lines, then
 * `exit`, then the `end_of_execution` that closes every execution's stream), readers that
 * re-attach from an index, and a requester that loses nothing: while it lags, the process is
 * paused, and when it goes away the process follows its disconnect policy.
 */
export class ManagedProcess {
  readonly id = randomUUID();
  readonly log: EventLog;
  readonly config: ProcessConfig;
  readonly tag: string | undefined;
  readonly owner: ProcessOwner;
  /** Settles once `end_of_execution` is in the log. */
  readonly finished: Promise<void>;

  private pidValue: number | undefined;
  private stateValue: ProcessState = 'starting';
  private ptySize: PtySize | null;
  private stdinState: ProcessInfo['stdin'];
  private exitCode: number | null = null;
  private exitSignal: string | null = null;
  private readonly createdAt = Date.now();
  private finishedAt: number | undefined;
  private requesterAttached = false;
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private resolveFinished!: () => void;
  private readonly onDisconnect: ProcessDisconnectPolicy;
  private readonly onOutput: ProcessOptions['onOutput'];
  private readonly timeoutMs: number;
  private connection: HostConnection | undefined;
  /** Rejects `attach` while the host has not said whether it started the process. */
  private rejectStart: ((error: Error) => void) | undefined;
  private inputQueued = 0;
  private inputChain: Promise<void> = Promise.resolve();

  constructor(options: ProcessOptions) {
    this.config = options.config;
    this.tag = options.tag;
    this.owner = options.owner;
    this.ptySize = options.pty;
    this.stdinState = options.stdin ? 'enabled' : 'disabled';
    this.onDisconnect = options.onDisconnect;
    this.onOutput = options.onOutput;
    this.timeoutMs = options.timeoutMs;
    this.log = new EventLog(options.bufferBytes, options.budget);
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  get pid(): number | undefined {
    return this.pidValue;
  }

  get state(): ProcessState {
    return this.stateValue;
  }

  get pty(): PtySize | null {
    return this.ptySize;
  }

  get isRunning(): boolean {
    return this.stateValue !== 'exited';
  }

  get finishedAtMs(): number | undefined {
    return this.finishedAt;
  }

  get info(): ProcessInfo {
    return {
      id: this.id,
      pid: this.pidValue ?? null,
      tag: this.tag ?? null,
      cmd: this.config.cmd,
      args: this.config.args,
      cwd: this.config.cwd ?? null,
      pty: this.ptySize,
      stdin: this.stdinState,
      state: this.stateValue,
      owner: this.owner,
      exit_code: this.exitCode,
      signal: this.exitSignal,
      created_at: new Date(this.createdAt).toISOString(),
      finished_at: this.finishedAt === undefined ? null : new Date(this.finishedAt).toISOString(),
      event_count: this.log.length,
    };
  }

  /**
   * Binds the host connection; resolves with the pid once the host started the process, or
   * rejects with what the host said (the process then never existed). Called once, by the
   * manager.
   */
  attach(connection: HostConnection): Promise<number> {
    this.connection = connection;
    return new Promise((resolve, reject) => {
      this.rejectStart = reject;
      connection.once('started', (pid) => {
        this.pidValue = pid;
        this.stateValue = 'running';
        this.append({ type: 'process_started', process_id: this.id, pid });
        if (this.timeoutMs > 0) {
          this.timer = setTimeout(() => {
            this.timedOut = true;
            this.signal('kill');
          }, this.timeoutMs);
          this.timer.unref();
        }
        resolve(pid);
      });
      connection.once('refused', (code, message) => {
        this.finish(null, null);
        reject(Object.assign(new Error(message), { code }));
      });
      connection.on('output', (stream, data) => this.onData(stream, data));
      connection.once('exit', (exit) => this.onExit(exit));
      connection.once('lost', (reason) => {
        if (this.stateValue === 'starting') {
          this.finish(null, null);
          reject(new Error(reason));
          return;
        }
        this.append({ type: 'error', name: 'ProcessHostLost', value: reason, traceback: '' });
        this.finish(null, null);
      });
    });
  }

  /** As `Execution.read`: from an index, live, to `end_of_execution`; the requester pauses the process instead of losing events. */
  async *read(options: { from?: number; requester?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<LogEntry> {
    const { signal, requester = false } = options;
    const from = Math.max(0, options.from ?? 0);
    if (requester) {
      this.requesterAttached = true;
      this.log.pin(from);
    }
    const onRead = requester
      ? (entry: LogEntry) => {
          if (!this.requesterAttached) return;
          this.log.advancePin(entry);
          if (this.log.lagBytes <= LOW_WATER_BYTES) this.resumeOutput();
        }
      : undefined;
    try {
      yield* this.log.read({ from, signal, onRead });
    } finally {
      // Aborted with READER_DETACHED, the requester stopped following on purpose: not a client gone.
      if (requester) this.detachRequester(signal?.aborted === true && signal.reason !== READER_DETACHED);
    }
  }

  /** Input to stdin (`stdin`) or the terminal (`pty`); resolves once the host took it. */
  async write(data: Buffer, target: 'stdin' | 'pty'): Promise<void> {
    if (data.length > MAX_INPUT_BYTES) throw new ProcessInputError(this.id, `takes at most ${MAX_INPUT_BYTES} bytes of input per call`);
    if (!this.isRunning || !this.connection) throw new ProcessInputError(this.id, 'has exited');
    if (target === 'pty' && !this.ptySize) throw new ProcessInputError(this.id, 'is not a terminal: send stdin');
    if (target === 'stdin' && this.ptySize) throw new ProcessInputError(this.id, 'is a terminal: send pty input');
    if (target === 'stdin' && this.stdinState !== 'enabled') throw new ProcessInputError(this.id, `has its stdin ${this.stdinState}`);
    if (this.inputQueued + data.length > MAX_QUEUED_INPUT_BYTES) {
      throw new ProcessInputError(
        this.id,
        `has not read the ${this.inputQueued} bytes of input it was sent yet; at most ${MAX_QUEUED_INPUT_BYTES} may wait`,
      );
    }
    // One write after another, so that concurrent callers' chunks never interleave; with none
    // pending it starts at once, so input and a close of stdin leave in the order they came.
    const connection = this.connection;
    const start = this.inputQueued === 0 ? connection.write(data) : this.inputChain.then(() => connection.write(data));
    this.inputQueued += data.length;
    const written = start.finally(() => (this.inputQueued -= data.length));
    this.inputChain = written.catch(() => undefined);
    await written;
  }

  /** EOF on stdin. Again is fine; a terminal has none to close (send Ctrl+D, 0x04). */
  closeStdin(): void {
    if (this.ptySize) throw new ProcessInputError(this.id, 'is a terminal: send Ctrl+D (0x04) instead of closing stdin');
    if (!this.isRunning || this.stdinState !== 'enabled') return;
    this.stdinState = 'closed';
    // After the input already accepted: EOF must not overtake it.
    const connection = this.connection;
    if (this.inputQueued === 0) connection?.closeStdin();
    else this.inputChain = this.inputChain.then(() => connection?.closeStdin());
  }

  /** Signals the whole tree of the process (the host finds it); a finished process is left as it is. */
  signal(name: SignalName): void {
    if (this.isRunning) this.connection?.signal(SIGNALS[name]);
  }

  resize(cols: number, rows: number): void {
    if (!this.ptySize) throw new ProcessInputError(this.id, 'is not a terminal: it has no size');
    if (!this.isRunning) throw new ProcessInputError(this.id, 'has exited');
    this.ptySize = { cols, rows };
    this.connection?.resize(cols, rows);
  }

  /** Ends the connection, which kills the tree, and ends the log if the process had not. */
  close(): void {
    this.connection?.close();
    if (this.stateValue === 'starting') {
      // Its owner went before the host answered: whatever the host started dies with the connection.
      this.finish(null, null);
      this.rejectStart?.(Object.assign(new Error('its owner went away before the process host had started it'), { code: 'ECANCELED' }));
      return;
    }
    if (this.isRunning) {
      this.append({ type: 'exit', exit_code: null, signal: 'SIGKILL', status: exitStatus(null, 'SIGKILL') });
      this.finish(null, 'SIGKILL');
    }
  }

  private onData(stream: OutputStream, data: Buffer): void {
    if (!this.isRunning) return;
    this.onOutput?.(stream, data.length);
    const timestamp = new Date().toISOString();
    if (stream === 'pty') this.append({ type: 'pty', data: data.toString('base64'), timestamp });
    // The host cuts output on UTF-8 boundaries, so text decodes whole characters; bytes that are
    // not UTF-8 at all become U+FFFD (terminals, whose output is anything, travel as base64).
    else this.append({ type: stream, text: data.toString('utf8'), timestamp });
  }

  private onExit(exit: HostExit): void {
    this.append({ type: 'exit', exit_code: exit.exit_code, signal: exit.signal, status: exitStatus(exit.exit_code, exit.signal) });
    if (this.timedOut || exit.timed_out) {
      this.append({
        type: 'error',
        name: 'TimeoutError',
        value: `The process ran longer than its timeout of ${this.timeoutMs} ms and was killed`,
        traceback: '',
      });
    }
    this.finish(exit.exit_code, exit.signal);
  }

  private append(event: OutputEvent): void {
    if (this.log.isClosed) return;
    this.log.append(event);
    if (this.requesterAttached && this.log.lagBytes > HIGH_WATER_BYTES && !this.paused) {
      this.paused = true;
      this.connection?.pause();
    }
  }

  private resumeOutput(): void {
    if (!this.paused) return;
    this.paused = false;
    this.connection?.resume();
  }

  private finish(exitCode: number | null, signal: string | null): void {
    if (this.stateValue === 'exited') return;
    clearTimeout(this.timer);
    this.stateValue = 'exited';
    this.exitCode = exitCode;
    this.exitSignal = signal;
    this.finishedAt = Date.now();
    if (this.stdinState === 'enabled') this.stdinState = 'closed';
    this.log.append({ type: 'end_of_execution' });
    this.resumeOutput();
    this.resolveFinished();
  }

  private detachRequester(gone: boolean): void {
    if (!this.requesterAttached) return;
    this.requesterAttached = false;
    this.log.unpin();
    this.resumeOutput();
    if (gone && this.isRunning && this.onDisconnect === 'kill') this.signal('kill');
  }
}
