/**
 * The process host's wire protocol: one Unix-socket connection per process, frames both ways.
 *
 *   u32 BE length (of what follows, ≤ MAX_FRAME_BYTES) · u8 kind · body
 *
 * Kind 0 is a JSON control message (UTF-8 object); 1, 2 and 3 carry a process's stdout, stderr and
 * PTY output (host → API); 4 carries input bytes (API → host). The first frame from the API is a
 * `start`; closing the connection is how the API says "kill it": the connection owns the process.
 *
 * A connection whose first frame is an `fs` request is one file operation instead (see FsRequest):
 * kind 5 carries a file's bytes, host → API for a read, API → host for a write. Closing it early
 * abandons the operation (a write leaves nothing behind).
 *
 * Both the host and the API import this file, so it imports nothing but Node's built-ins and the
 * plain definitions of sandbox-files/types.ts. Each side treats the other as untrusted: lengths are
 * capped before a byte is buffered and every control message is checked field by field before it
 * is used.
 */
import { FILE_ERROR_CODES, type EntryInfo, type FileErrorCode, type WatchEvent, type WatchEventType } from '../sandbox-files/types.js';

/** The largest `length` field accepted: a peer cannot make the other side buffer more. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Output frames are at most this long, so that one busy process cannot hog a reader. */
export const MAX_OUTPUT_CHUNK_BYTES = 64 * 1024;

/**
 * File data frames (reads and writes of envd's files) are larger: one call owns its connection,
 * so there is no other reader to hog, and fewer, larger frames halve the relay's cost per byte.
 */
export const FILE_DATA_CHUNK_BYTES = 512 * 1024;

export const FrameKind = {
  control: 0,
  stdout: 1,
  stderr: 2,
  pty: 3,
  input: 4,
  data: 5,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  kind: FrameKind;
  body: Buffer;
}

/** The signals a caller may send to a process's tree. */
export const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL'] as const;
export type ProcessSignal = (typeof SIGNALS)[number];

export interface PtySize {
  cols: number;
  rows: number;
}

/** API → host, the first frame of a process connection. */
export interface StartMessage {
  op: 'start';
  /** The API's id of the process, given to its tree as CODE_INTERPRETER_PROCESS_ID. */
  id: string;
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  /** Relative to the workspace; null = the workspace. */
  cwd: string | null;
  pty: PtySize | null;
  /** false: stdin is /dev/null. */
  stdin: boolean;
  /** The host kills the tree after this long (the API's deadline, as a backstop); null = none. */
  timeout_ms: number | null;
}
export interface SignalMessage {
  op: 'signal';
  signal: ProcessSignal;
}
export interface ResizeMessage {
  op: 'resize';
  cols: number;
  rows: number;
}
export interface CloseStdinMessage {
  op: 'close_stdin';
}
/** The first and only frame of a health-check connection; answered by `pong`. */
export interface PingMessage {
  op: 'ping';
}
/**
 * API → host, the first frame of a file connection. Answers: `fs_result` (list: `fs_entries`
 * frames before it) or `fs_error`, then the host closes. read: `fs_opened`, data frames, `fs_end`
 * (or `fs_error`). write: the API sends data frames and `fs_end`, the host answers `fs_result`.
 * watch: `watch_started`, `watch_event`s, until `watch_error` or either side closes.
 */
export type FsRequest =
  | { op: 'fs'; call: 'stat' | 'make_dir' | 'remove' | 'read' | 'write'; path: string }
  | { op: 'fs'; call: 'move'; source: string; destination: string }
  | { op: 'fs'; call: 'list'; path: string; depth: number }
  | { op: 'fs'; call: 'watch'; path: string; recursive: boolean };
export type FsCall = FsRequest['call'];
/** API → host: a write's bytes are complete. */
export interface FsEndMessage {
  op: 'fs_end';
}
/**
 * API → host: a write's source failed; the host removes what it wrote and answers `fs_error`, so
 * the API answers its client only once nothing is left behind.
 */
export interface FsAbortMessage {
  op: 'fs_abort';
}
export type HostRequest =
  StartMessage | SignalMessage | ResizeMessage | CloseStdinMessage | PingMessage | FsRequest | FsEndMessage | FsAbortMessage;

/** The longest path either side accepts: PATH_MAX, in UTF-16 units (at most as many bytes). */
export const MAX_PATH_LENGTH = 4096;
/** A listing's deepest level the host walks: deeper is a walk of the whole disk anyway. */
export const MAX_LIST_DEPTH = 1024;

/** Why a start failed, as errno names, so the API can map them to its own errors. */
export const START_ERROR_CODES = ['ENOENT', 'EACCES', 'ENOTDIR', 'EMFILE', 'EINVAL'] as const;
export type StartErrorCode = (typeof START_ERROR_CODES)[number];

export interface StartedEvent {
  ev: 'started';
  pid: number;
}
/** A start that failed (the host closes the connection after it), or a request it refused. */
export interface ErrorEvent {
  ev: 'error';
  code: StartErrorCode;
  message: string;
}
/**
 * Sent once, after stdout and stderr reached EOF and the process was reaped (envd's order), then
 * the host closes the connection. Exactly one of exit_code and signal is non-null.
 */
export interface ExitEvent {
  ev: 'exit';
  exit_code: number | null;
  signal: string | null;
  /** true when the host killed the tree because timeout_ms passed. */
  timed_out?: boolean;
}
export interface PongEvent {
  ev: 'pong';
  pid: number;
}
/** The answer of a call with nothing else to say (entry absent: remove, or the end of a list). */
export interface FsResultEvent {
  ev: 'fs_result';
  entry?: EntryInfo;
}
/** Part of a listing; as many as it takes, each under the frame cap, before `fs_result`. */
export interface FsEntriesEvent {
  ev: 'fs_entries';
  entries: EntryInfo[];
}
export interface FsOpenedEvent {
  ev: 'fs_opened';
  entry: EntryInfo;
}
/** A read's last byte was sent. */
export interface FsEndEvent {
  ev: 'fs_end';
}
export interface FsErrorEvent {
  ev: 'fs_error';
  code: FileErrorCode;
  message: string;
}
export interface WatchStartedEvent {
  ev: 'watch_started';
}
export interface WatchEventEvent extends WatchEvent {
  ev: 'watch_event';
}
export interface WatchErrorEvent {
  ev: 'watch_error';
  code: FileErrorCode;
  message: string;
}
export type FsEvent =
  FsResultEvent | FsEntriesEvent | FsOpenedEvent | FsEndEvent | FsErrorEvent | WatchStartedEvent | WatchEventEvent | WatchErrorEvent;
export type HostEvent = StartedEvent | ErrorEvent | ExitEvent | PongEvent | FsEvent;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const KINDS = new Set<number>(Object.values(FrameKind));

/** One frame as bytes. Bodies above the limit are a bug of the caller: they throw. */
export function encodeFrame(kind: FrameKind, body: Uint8Array): Buffer {
  if (body.length + 1 > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${body.length + 1} bytes exceeds ${MAX_FRAME_BYTES}`);
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame.writeUInt32BE(body.length + 1, 0);
  frame.writeUInt8(kind, 4);
  frame.set(body, 5);
  return frame;
}

export function encodeControl(message: HostRequest | HostEvent): Buffer {
  return encodeFrame(FrameKind.control, Buffer.from(JSON.stringify(message), 'utf8'));
}

/**
 * Cuts a byte stream into frames. Holds at most one incomplete frame, and refuses a length above
 * MAX_FRAME_BYTES or an unknown kind before buffering it: a broken or hostile peer gets an error,
 * never memory.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): Frame[] {
    if (chunk.length === 0) return [];
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    let buffer = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const frames: Frame[] = [];
    let offset = 0;
    while (buffer.length - offset >= 5) {
      const length = buffer.readUInt32BE(offset);
      if (length < 1 || length > MAX_FRAME_BYTES) throw new ProtocolError(`frame length ${length} outside 1..${MAX_FRAME_BYTES}`);
      const kind = buffer.readUInt8(offset + 4);
      if (!KINDS.has(kind)) throw new ProtocolError(`unknown frame kind ${kind}`);
      if (buffer.length - offset < 4 + length) break;
      // A copy, so that a small frame does not keep a large read buffer alive.
      frames.push({ kind: kind as FrameKind, body: Buffer.from(buffer.subarray(offset + 5, offset + 4 + length)) });
      offset += 4 + length;
    }
    buffer = buffer.subarray(offset);
    this.pending = buffer.length > 0 ? [buffer] : [];
    this.pendingBytes = buffer.length;
    return frames;
  }

  /** Bytes of an incomplete frame still held: non-zero at end of stream means a cut frame. */
  get buffered(): number {
    return this.pendingBytes;
  }
}

function parseObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ProtocolError('control frame is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError('control frame is not a JSON object');
  return value as Record<string, unknown>;
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

/** A terminal size as PTYs take it: whole numbers, 1..65535 (a u16 in TIOCSWINSZ). */
function isDimension(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 0xffff;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(isString);
}

/** A request as the host accepts it; anything else throws ProtocolError. */
export function parseHostRequest(body: Buffer): HostRequest {
  const message = parseObject(body);
  switch (message.op) {
    case 'start': {
      const { id, cmd, args, envs, cwd, pty, stdin, timeout_ms } = message;
      if (!isString(id) || !isString(cmd) || cmd === '' || id === '' || id.length > 200)
        throw new ProtocolError('start: id (1..200 characters) and cmd (not empty) must be strings');
      if (!Array.isArray(args) || !args.every(isString)) throw new ProtocolError('start: args must be strings');
      if (!isStringRecord(envs)) throw new ProtocolError('start: envs must map strings to strings');
      if (cwd !== null && !isString(cwd)) throw new ProtocolError('start: cwd must be a string or null');
      if (typeof stdin !== 'boolean') throw new ProtocolError('start: stdin must be a boolean');
      if (timeout_ms !== null && !(Number.isInteger(timeout_ms) && (timeout_ms as number) > 0))
        throw new ProtocolError('start: timeout_ms must be a positive integer or null');
      let size: PtySize | null = null;
      if (pty !== null) {
        const { cols, rows } = typeof pty === 'object' && pty !== null ? (pty as Record<string, unknown>) : {};
        if (!isDimension(cols) || !isDimension(rows)) throw new ProtocolError('start: pty must be {cols, rows} or null');
        size = { cols, rows };
      }
      for (const text of [cmd, ...args, cwd ?? '', ...Object.keys(envs), ...Object.values(envs)])
        if (text.includes('\0')) throw new ProtocolError('start: strings must not contain NUL');
      return { op: 'start', id, cmd, args, envs, cwd, pty: size, stdin, timeout_ms: timeout_ms as number | null };
    }
    case 'signal':
      if (!SIGNALS.includes(message.signal as ProcessSignal)) throw new ProtocolError(`signal: one of ${SIGNALS.join(', ')}`);
      return { op: 'signal', signal: message.signal as ProcessSignal };
    case 'resize':
      if (!isDimension(message.cols) || !isDimension(message.rows)) throw new ProtocolError('resize: cols and rows must be 1..65535');
      return { op: 'resize', cols: message.cols, rows: message.rows };
    case 'close_stdin':
      return { op: 'close_stdin' };
    case 'ping':
      return { op: 'ping' };
    case 'fs':
      return parseFsRequest(message);
    case 'fs_end':
      return { op: 'fs_end' };
    case 'fs_abort':
      return { op: 'fs_abort' };
    default:
      throw new ProtocolError('unknown op');
  }
}

/** An event as the API accepts it from the host; anything else throws ProtocolError. */
export function parseHostEvent(body: Buffer): HostEvent {
  const message = parseObject(body);
  const isPid = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 0;
  switch (message.ev) {
    case 'started':
      if (!isPid(message.pid)) throw new ProtocolError('started: pid must be a positive integer');
      return { ev: 'started', pid: message.pid };
    case 'pong':
      if (!isPid(message.pid)) throw new ProtocolError('pong: pid must be a positive integer');
      return { ev: 'pong', pid: message.pid };
    case 'error':
      if (!START_ERROR_CODES.includes(message.code as StartErrorCode) || !isString(message.message))
        throw new ProtocolError('error: unknown code or message not a string');
      return { ev: 'error', code: message.code as StartErrorCode, message: message.message.slice(0, 1000) };
    case 'exit': {
      const { exit_code, signal, timed_out } = message;
      const codeOk = exit_code === null || (Number.isInteger(exit_code) && (exit_code as number) >= 0 && (exit_code as number) <= 255);
      const signalOk = signal === null || (isString(signal) && /^SIG[A-Z0-9]{1,10}$/.test(signal));
      if (!codeOk || !signalOk || (exit_code === null) === (signal === null))
        throw new ProtocolError('exit: exactly one of exit_code (0..255) and signal (SIG…) must be set');
      if (timed_out !== undefined && typeof timed_out !== 'boolean') throw new ProtocolError('exit: timed_out must be a boolean');
      return { ev: 'exit', exit_code: exit_code as number | null, signal: signal, ...(timed_out ? { timed_out } : {}) };
    }
    case 'fs_result':
      if (message.entry === undefined) return { ev: 'fs_result' };
      return { ev: 'fs_result', entry: parseEntry(message.entry) };
    case 'fs_entries':
      if (!Array.isArray(message.entries)) throw new ProtocolError('fs_entries: entries must be an array');
      return { ev: 'fs_entries', entries: message.entries.map(parseEntry) };
    case 'fs_opened':
      return { ev: 'fs_opened', entry: parseEntry(message.entry) };
    case 'fs_end':
      return { ev: 'fs_end' };
    case 'watch_started':
      return { ev: 'watch_started' };
    case 'fs_error':
    case 'watch_error':
      if (!FILE_ERROR_CODES.includes(message.code as FileErrorCode) || !isString(message.message))
        throw new ProtocolError(`${message.ev}: unknown code or message not a string`);
      return message.ev === 'fs_error'
        ? { ev: 'fs_error', code: message.code as FileErrorCode, message: message.message.slice(0, 1000) }
        : { ev: 'watch_error', code: message.code as FileErrorCode, message: message.message.slice(0, 1000) };
    case 'watch_event':
      if (!WATCH_EVENT_TYPES.includes(message.type as WatchEventType) || !isDeepPath(message.name))
        throw new ProtocolError('watch_event: type must be a known kind and name a path');
      return { ev: 'watch_event', type: message.type as WatchEventType, name: message.name };
    default:
      throw new ProtocolError('unknown ev');
  }
}

const WATCH_EVENT_TYPES: readonly WatchEventType[] = ['create', 'write', 'remove', 'rename', 'chmod'];
const ENTRY_TYPES: readonly string[] = ['file', 'directory', 'symlink'];

/** A path as either side accepts it: not empty, no NUL, at most MAX_PATH_LENGTH long. */
function isPath(value: unknown): value is string {
  return isString(value) && value !== '' && value.length <= MAX_PATH_LENGTH && !value.includes('\0');
}

/** A path the host found deep in a tree may outgrow PATH_MAX (made with relative names). */
function isDeepPath(value: unknown): value is string {
  return isString(value) && value !== '' && value.length <= 16 * MAX_PATH_LENGTH && !value.includes('\0');
}

function parseFsRequest(message: Record<string, unknown>): FsRequest {
  const { call } = message;
  const checkPath = (name: string): string => {
    const value = message[name];
    if (!isPath(value)) throw new ProtocolError(`fs ${String(call)}: ${name} must be a path (1..${MAX_PATH_LENGTH} characters, no NUL)`);
    return value;
  };
  switch (call) {
    case 'stat':
    case 'make_dir':
    case 'remove':
    case 'read':
    case 'write':
      return { op: 'fs', call, path: checkPath('path') };
    case 'move':
      return { op: 'fs', call, source: checkPath('source'), destination: checkPath('destination') };
    case 'list': {
      const { depth } = message;
      if (!Number.isInteger(depth) || (depth as number) < 1 || (depth as number) > MAX_LIST_DEPTH)
        throw new ProtocolError(`fs list: depth must be a whole number in 1..${MAX_LIST_DEPTH}`);
      return { op: 'fs', call, path: checkPath('path'), depth: depth as number };
    }
    case 'watch':
      if (typeof message.recursive !== 'boolean') throw new ProtocolError('fs watch: recursive must be a boolean');
      return { op: 'fs', call, path: checkPath('path'), recursive: message.recursive };
    default:
      throw new ProtocolError('fs: unknown call');
  }
}

/** An EntryInfo from the host, field by field; strings capped so that one entry stays small. */
export function parseEntry(value: unknown): EntryInfo {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError('entry must be an object');
  const entry = value as Record<string, unknown>;
  const { name, type, path, size, mode, permissions, owner, group, modifiedMs, symlinkTarget } = entry;
  const shortString = (text: unknown): text is string => isString(text) && text.length <= 256;
  if (!isString(name) || name.length > MAX_PATH_LENGTH || !isDeepPath(path))
    throw new ProtocolError('entry: name and path must be strings');
  if (!ENTRY_TYPES.includes(type as string)) throw new ProtocolError('entry: type must be file, directory or symlink');
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw new ProtocolError('entry: size must be a whole number ≥ 0');
  if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777)
    throw new ProtocolError('entry: mode must be 0..0o7777');
  if (!isString(permissions) || !/^[-dlbcps][-rwxsStT]{9}$/.test(permissions))
    throw new ProtocolError('entry: permissions must look like ls -l');
  if (!shortString(owner) || !shortString(group)) throw new ProtocolError('entry: owner and group must be short strings');
  if (typeof modifiedMs !== 'number' || !Number.isFinite(modifiedMs)) throw new ProtocolError('entry: modifiedMs must be a number');
  if (symlinkTarget !== undefined && !(isString(symlinkTarget) && symlinkTarget.length <= MAX_PATH_LENGTH))
    throw new ProtocolError('entry: symlinkTarget must be a string');
  const parsed: EntryInfo = {
    name,
    type: type as EntryInfo['type'],
    path,
    size: size as number,
    mode: mode as number,
    permissions,
    owner,
    group,
    modifiedMs,
  };
  if (symlinkTarget !== undefined) parsed.symlinkTarget = symlinkTarget;
  return parsed;
}

/**
 * How many leading bytes of `bytes` end on a UTF-8 character boundary: at most 3 trailing bytes of
 * an incomplete multi-byte character are held back, so text never splits a character. Bytes that
 * are not UTF-8 at all are not held (they go out as they are).
 */
export function utf8CompleteLength(bytes: Uint8Array): number {
  const length = bytes.length;
  for (let back = 1; back <= Math.min(3, length); back++) {
    const byte = bytes[length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    // A lead byte: how long its character is.
    const needed = byte >= 0xf8 ? 1 : byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return needed > back ? length - back : length;
  }
  return length;
}
