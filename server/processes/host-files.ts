import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import {
  FrameDecoder,
  FrameKind,
  MAX_LIST_DEPTH,
  FILE_DATA_CHUNK_BYTES,
  MAX_PATH_LENGTH,
  encodeControl,
  encodeFrame,
  parseHostEvent,
  type FsEvent,
  type FsRequest,
} from '../process-host/protocol.js';
import { DEFAULT_MAX_QUEUED_EVENTS, WatchQueue } from '../sandbox-files/watch-queue.js';
import { SandboxFileError, type EntryInfo, type SandboxFiles, type Watch, type WatchOptions } from '../sandbox-files/types.js';

export interface HostFilesOptions {
  /** The most entries one listing may bring back (the host has its own bound, too). */
  maxListEntries?: number;
  /** Events a watch holds for a consumer that does not read them, before it ends with ELIMIT. */
  maxQueuedEvents?: number;
}

export const DEFAULT_MAX_LIST_ENTRIES = 100_000;

/** The errors a caller sees for its own input, before anything is sent. */
function checkPath(value: string, what: string): void {
  if (typeof value !== 'string' || value === '') throw new SandboxFileError('EINVAL', `${what} must not be empty`);
  if (value.includes('\0')) throw new SandboxFileError('EINVAL', `${what} must not contain NUL bytes`);
  if (value.length > MAX_PATH_LENGTH) throw new SandboxFileError('ENAMETOOLONG', `${what} is longer than ${MAX_PATH_LENGTH} characters`);
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('This operation was aborted', 'AbortError');
}

/**
 * SandboxFiles for the API: every call runs in the process host (as the kernels' user), on a
 * connection of its own (process-host/protocol.ts). Closing the connection is how a call is
 * abandoned: an abort signal, a reader that stops reading, a watch that is closed. What the host
 * sends is checked like any input, and a host that breaks the protocol fails the call with EIO.
 */
/** How long a write whose source failed waits for the host to say it removed what it wrote. */
const ABORT_ANSWER_MS = 5000;

export class HostFiles implements SandboxFiles {
  private readonly maxListEntries: number;
  private readonly maxQueuedEvents: number;

  constructor(
    private readonly socketPath: string,
    options: HostFilesOptions = {},
  ) {
    this.maxListEntries = options.maxListEntries ?? DEFAULT_MAX_LIST_ENTRIES;
    this.maxQueuedEvents = options.maxQueuedEvents ?? DEFAULT_MAX_QUEUED_EVENTS;
  }

  async stat(path: string): Promise<EntryInfo> {
    checkPath(path, 'path');
    return this.entryCall({ op: 'fs', call: 'stat', path });
  }

  async makeDir(path: string): Promise<EntryInfo> {
    checkPath(path, 'path');
    return this.entryCall({ op: 'fs', call: 'make_dir', path });
  }

  async move(source: string, destination: string): Promise<EntryInfo> {
    checkPath(source, 'source');
    checkPath(destination, 'destination');
    return this.entryCall({ op: 'fs', call: 'move', source, destination });
  }

  async remove(path: string): Promise<void> {
    checkPath(path, 'path');
    await this.call({ op: 'fs', call: 'remove', path });
  }

  async list(path: string, depth: number, signal?: AbortSignal): Promise<EntryInfo[]> {
    checkPath(path, 'path');
    if (!Number.isInteger(depth) || depth < 1) throw new SandboxFileError('EINVAL', `depth must be a whole number ≥ 1, not ${depth}`);
    const entries: EntryInfo[] = [];
    await this.call({ op: 'fs', call: 'list', path, depth: Math.min(depth, MAX_LIST_DEPTH) }, signal, (event) => {
      if (event.ev !== 'fs_entries') return false;
      if (entries.length + event.entries.length > this.maxListEntries)
        throw new SandboxFileError(
          'ELIMIT',
          `list '${path}': more than ${this.maxListEntries} entries; list a smaller depth or a subdirectory`,
        );
      entries.push(...event.entries);
      return true;
    });
    return entries;
  }

  read(path: string, signal?: AbortSignal): Promise<{ entry: EntryInfo; stream: Readable }> {
    checkPath(path, 'path');
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      let stream: Readable | undefined;
      let finished = false;
      const channel = new FileChannel(this.socketPath, { op: 'fs', call: 'read', path }, signal, {
        onEvent: (event) => {
          if (!stream && event.ev === 'fs_opened') {
            // Reading is paused while the consumer's buffer is full: the host's socket fills and
            // it pauses the file, so a slow reader holds one buffer's worth, not the file.
            const opened = new Readable({
              highWaterMark: 256 * 1024,
              read: () => channel.resume(),
              destroy: (error, callback) => {
                if (!finished) channel.close();
                callback(error);
              },
            });
            stream = opened;
            resolve({ entry: event.entry, stream: opened });
            return;
          }
          if (stream && event.ev === 'fs_end') {
            finished = true;
            stream.push(null);
            channel.close();
            return;
          }
          if (event.ev === 'fs_error') return channel.fail(new SandboxFileError(event.code, event.message));
          channel.unexpected(event.ev);
        },
        onData: (body) => {
          if (!stream || finished) return channel.unexpected('data');
          if (!stream.push(body)) channel.pause();
        },
        onEnd: (error) => {
          if (!error) return;
          if (stream) {
            finished = true;
            stream.destroy(error);
          } else reject(error);
        },
      });
    });
  }

  async write(path: string, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<EntryInfo> {
    checkPath(path, 'path');
    if (signal?.aborted) throw abortReason(signal);
    let answer: ((entry: EntryInfo) => void) | undefined;
    let failed: ((error: Error) => void) | undefined;
    const settled = new Promise<EntryInfo>((resolve, reject) => {
      answer = resolve;
      failed = reject;
    });
    let done = false;
    const channel = new FileChannel(this.socketPath, { op: 'fs', call: 'write', path }, signal, {
      onEvent: (event) => {
        if (event.ev === 'fs_result' && event.entry) {
          done = true;
          answer!(event.entry);
          channel.close();
          return;
        }
        if (event.ev === 'fs_error') return channel.fail(new SandboxFileError(event.code, event.message));
        channel.unexpected(event.ev);
      },
      onData: () => channel.unexpected('data'),
      onEnd: (error) => {
        done = true;
        if (error) failed!(sourceFailure ?? error);
      },
    });
    let sourceFailure: Error | undefined;
    // The host may answer early (EISDIR, EACCES…): its answer wins, and the source is left at
    // its next chunk rather than waited for (it may never send one).
    void (async () => {
      try {
        for await (const chunk of source) {
          if (done) return;
          for (let offset = 0; offset < chunk.length; offset += FILE_DATA_CHUNK_BYTES)
            await channel.send(encodeFrame(FrameKind.data, chunk.subarray(offset, offset + FILE_DATA_CHUNK_BYTES)));
        }
        if (!done) await channel.send(encodeControl({ op: 'fs_end' }));
      } catch (error) {
        // A source that fails leaves nothing behind: the host removes its temporary file, then
        // answers, and only then does the write fail, so that whoever answers the client next
        // finds nothing of it. A host that does not answer in time is left (closing makes it
        // clean up all the same).
        sourceFailure = error instanceof Error ? error : new SandboxFileError('EIO', String(error));
        if (done) return;
        const timer = setTimeout(() => channel.fail(sourceFailure!), ABORT_ANSWER_MS);
        void settled.catch(() => undefined).finally(() => clearTimeout(timer));
        await channel.send(encodeControl({ op: 'fs_abort' }));
      }
    })();
    return settled;
  }

  watch(path: string, options: WatchOptions): Promise<Watch> {
    checkPath(path, 'path');
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      let watch: WatchQueue | undefined;
      const channel = new FileChannel(this.socketPath, { op: 'fs', call: 'watch', path, recursive: options.recursive }, undefined, {
        onEvent: (event) => {
          if (!watch && event.ev === 'watch_started') {
            watch = new WatchQueue(this.maxQueuedEvents, () => channel.close());
            resolve(watch);
            return;
          }
          if (watch && event.ev === 'watch_event') {
            watch.push({ type: event.type, name: event.name });
            return;
          }
          if (event.ev === 'watch_error') return channel.fail(new SandboxFileError(event.code, event.message));
          channel.unexpected(event.ev);
        },
        onData: () => channel.unexpected('data'),
        onEnd: (error) => {
          if (!watch) return reject(error ?? new SandboxFileError('EIO', 'the process host ended the watch before it started'));
          if (error) watch.fail(error instanceof SandboxFileError ? error : new SandboxFileError('EIO', error.message));
          else watch.close();
        },
      });
      // The signal ends a running watch as close() does; before it runs, it fails the call.
      signal?.addEventListener(
        'abort',
        () => {
          if (watch) watch.close();
          else channel.fail(abortReason(signal));
        },
        { once: true },
      );
    });
  }

  private async entryCall(request: FsRequest): Promise<EntryInfo> {
    const entry = await this.call(request);
    if (!entry) throw new SandboxFileError('EIO', `the process host answered ${request.call} without an entry`);
    return entry;
  }

  /**
   * A call answered by `fs_result` (or `fs_error`); `other` takes what else the call may bring
   * (a listing's parts) and says whether it did.
   */
  private call(request: FsRequest, signal?: AbortSignal, other?: (event: FsEvent) => boolean): Promise<EntryInfo | undefined> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const channel = new FileChannel(this.socketPath, request, signal, {
        onEvent: (event) => {
          if (event.ev === 'fs_result') {
            resolve(event.entry);
            channel.close();
            return;
          }
          if (event.ev === 'fs_error') return channel.fail(new SandboxFileError(event.code, event.message));
          if (!other?.(event)) channel.unexpected(event.ev);
        },
        onData: () => channel.unexpected('data'),
        onEnd: (error) => {
          if (error) reject(error);
        },
      });
    });
  }
}

interface ChannelHandlers {
  onEvent(event: FsEvent): void;
  onData(body: Buffer): void;
  /** Once, when the connection is gone: with the error that ended it, or none (closed by us). */
  onEnd(error: Error | undefined): void;
}

/**
 * One file call's connection. Handlers run in arrival order; one that throws ends the call with
 * that error. A connection that ends before the call was done is EIO.
 */
class FileChannel {
  private readonly socket: Socket;
  private readonly decoder = new FrameDecoder();
  private ended = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    socketPath: string,
    request: FsRequest,
    private readonly signal: AbortSignal | undefined,
    private readonly handlers: ChannelHandlers,
  ) {
    const frame = encodeControl(request);
    this.socket = connect(socketPath);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error: Error) => this.fail(new SandboxFileError('EIO', `process host connection failed: ${error.message}`)));
    this.socket.on('close', () => this.fail(new SandboxFileError('EIO', 'the process host closed the connection before it answered')));
    this.socket.write(frame);
    if (signal) {
      this.onAbort = () => this.fail(abortReason(signal));
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.ended) this.socket.resume();
  }

  /** Sends a frame; resolves once the socket took it (after a drain when it was full). */
  async send(frame: Buffer): Promise<void> {
    if (this.ended) return;
    if (this.socket.write(frame)) return;
    const waiting = new AbortController();
    await Promise.race([once(this.socket, 'drain', waiting), once(this.socket, 'close', waiting)]).catch(() => undefined);
    waiting.abort();
  }

  /** The call is done: the connection goes, and nothing more is reported. */
  close(): void {
    this.end(undefined);
  }

  /** The call failed: the connection goes (the host abandons it) and the handlers hear why. */
  fail(error: Error): void {
    this.end(error);
  }

  /** Something the host had no business sending now. */
  unexpected(what: string): never {
    throw new SandboxFileError('EIO', `the process host broke the protocol: unexpected ${what}`);
  }

  private end(error: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    this.socket.destroy();
    this.handlers.onEnd(error);
  }

  private onData(chunk: Buffer): void {
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (this.ended) return;
        if (frame.kind === FrameKind.data) this.handlers.onData(frame.body);
        else if (frame.kind === FrameKind.control) {
          const event = parseHostEvent(frame.body);
          if (!event.ev.startsWith('fs_') && !event.ev.startsWith('watch_')) this.unexpected(event.ev);
          this.handlers.onEvent(event as FsEvent);
        } else this.unexpected(`a frame of kind ${frame.kind}`);
      }
    } catch (error) {
      this.fail(
        error instanceof SandboxFileError
          ? error
          : new SandboxFileError('EIO', `the process host broke the protocol: ${(error as Error).message}`),
      );
    }
  }
}
