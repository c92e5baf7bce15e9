import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { SandboxFileError, type EntryInfo, type SandboxFiles } from '../sandbox-files/types.js';
import { toFileError } from './files.js';
import {
  FrameKind,
  FILE_DATA_CHUNK_BYTES,
  ProtocolError,
  encodeControl,
  encodeFrame,
  parseHostRequest,
  type Frame,
  type FsRequest,
  type HostEvent,
} from './protocol.js';

/**
 * Bytes of a write the host holds while the file takes them; above this the socket stops being
 * read, so a fast sender waits for the disk instead of filling the host's memory.
 */
const WRITE_HIGH_WATER = 1024 * 1024;
/**
 * What a watch may leave unsent in the socket's buffer: beyond it the API is not reading, and the
 * watch ends rather than buffer without bound.
 */
export const MAX_WATCH_BACKLOG = 1024 * 1024;
/** A listing goes out in frames of about this much JSON, well under the frame cap. */
const ENTRIES_FRAME_BYTES = 256 * 1024;

type Log = (level: 'debug' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/**
 * One file operation on a connection whose first frame was an `fs` request (protocol.ts). Each
 * call answers once and the host closes; a read or write streams between, a watch lasts until
 * either side closes. The API closing the connection early aborts whatever is under way.
 */
export class FileConnection {
  private readonly abort = new AbortController();
  private readonly upload: ByteQueue | undefined;
  private closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly files: SandboxFiles,
    private readonly request: FsRequest,
    private readonly log: Log,
  ) {
    socket.on('close', () => this.onClose());
    if (request.call === 'write') this.upload = new ByteQueue(socket);
    void this.run().catch((error: unknown) => this.fail(error));
  }

  /** A frame after the request: a write's bytes and its end, nothing else. */
  onFrame(frame: Frame): void {
    const upload = this.upload;
    if (frame.kind === FrameKind.data) {
      if (!upload) throw new ProtocolError(`data frames belong to a write, not a ${this.request.call}`);
      upload.push(frame.body);
      return;
    }
    if (frame.kind !== FrameKind.control) throw new ProtocolError(`frame kind ${frame.kind} does not belong to a file connection`);
    const request = parseHostRequest(frame.body);
    if ((request.op !== 'fs_end' && request.op !== 'fs_abort') || !upload) {
      throw new ProtocolError(`${request.op} does not belong to a file ${this.request.call}`);
    }
    if (request.op === 'fs_abort') upload.fail(new SandboxFileError('EIO', 'the upload was abandoned'));
    else upload.end();
  }

  private async run(): Promise<void> {
    const { request, files } = this;
    const signal = this.abort.signal;
    switch (request.call) {
      case 'stat':
        return this.answer(await files.stat(request.path));
      case 'make_dir':
        return this.answer(await files.makeDir(request.path));
      case 'move':
        return this.answer(await files.move(request.source, request.destination));
      case 'remove':
        await files.remove(request.path);
        return this.answer(undefined);
      case 'list':
        return this.sendEntries(await files.list(request.path, request.depth, signal));
      case 'read': {
        const { entry, stream } = await files.read(request.path, signal);
        return this.sendFile(entry, stream);
      }
      case 'write':
        return this.answer(await files.write(request.path, this.upload!, signal));
      case 'watch':
        return this.watch(request.path, request.recursive);
    }
  }

  private answer(entry: EntryInfo | undefined): void {
    this.upload?.discard();
    this.send(entry ? { ev: 'fs_result', entry } : { ev: 'fs_result' });
    this.socket.end();
  }

  private async sendEntries(entries: EntryInfo[]): Promise<void> {
    let batch: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      // Joined by hand: each entry is serialized once, to measure and to send.
      const frame = encodeFrame(FrameKind.control, Buffer.from(`{"ev":"fs_entries","entries":[${batch.join(',')}]}`, 'utf8'));
      batch = [];
      bytes = 0;
      if (!this.write(frame)) await this.drained();
    };
    for (const entry of entries) {
      if (this.closed) return;
      const json = JSON.stringify(entry);
      if (bytes + json.length > ENTRIES_FRAME_BYTES) await flush();
      batch.push(json);
      bytes += Buffer.byteLength(json) + 1;
    }
    await flush();
    this.answer(undefined);
  }

  private sendFile(entry: EntryInfo, stream: Readable): void {
    if (this.closed) {
      stream.destroy();
      return;
    }
    this.send({ ev: 'fs_opened', entry });
    const resume = () => stream.resume();
    this.socket.on('drain', resume);
    stream.on('data', (chunk: Buffer) => {
      let open = true;
      for (let offset = 0; offset < chunk.length; offset += FILE_DATA_CHUNK_BYTES)
        open = this.write(encodeFrame(FrameKind.data, chunk.subarray(offset, offset + FILE_DATA_CHUNK_BYTES))) && open;
      if (!open) stream.pause();
    });
    stream.once('end', () => {
      this.send({ ev: 'fs_end' });
      this.socket.end();
    });
    stream.once('error', (error) => this.fail(error));
    this.socket.once('close', () => stream.destroy());
  }

  private async watch(root: string, recursive: boolean): Promise<void> {
    const watch = await this.files.watch(root, { recursive, signal: this.abort.signal });
    if (this.closed) return watch.close();
    this.socket.once('close', () => watch.close());
    this.send({ ev: 'watch_started' });
    for await (const event of watch.events) {
      if (this.closed) break;
      this.send({ ev: 'watch_event', type: event.type, name: event.name });
      if (this.socket.writableLength > MAX_WATCH_BACKLOG) {
        watch.close();
        throw new SandboxFileError(
          'ELIMIT',
          `more than ${MAX_WATCH_BACKLOG} bytes of watch events were unsent: the reader did not keep up`,
        );
      }
    }
    this.socket.end();
  }

  private fail(error: unknown): void {
    this.upload?.discard();
    if (this.closed || this.socket.writableEnded) return;
    const subject = this.request.call === 'move' ? this.request.source : this.request.path;
    const failure = toFileError(error, this.request.call.replace('_', ' '), subject);
    if (!(error instanceof SandboxFileError))
      this.log('warn', 'process host: a file operation failed unexpectedly', { call: this.request.call, code: failure.code });
    const { code, message } = failure;
    this.send(this.request.call === 'watch' ? { ev: 'watch_error', code, message } : { ev: 'fs_error', code, message });
    this.socket.end();
  }

  private onClose(): void {
    this.closed = true;
    this.abort.abort();
    this.upload?.fail(new SandboxFileError('EIO', 'the connection closed before the write ended'));
  }

  private drained(): Promise<void> {
    const waiting = new AbortController();
    return Promise.race([once(this.socket, 'drain', waiting), once(this.socket, 'close', waiting)])
      .catch(() => undefined)
      .then(() => waiting.abort());
  }

  private send(event: HostEvent): void {
    this.write(encodeControl(event));
  }

  private write(frame: Buffer): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return true;
    return this.socket.write(frame);
  }
}

/**
 * A write's bytes as they arrive, as the AsyncIterable the file takes. Holding more than
 * WRITE_HIGH_WATER pauses the socket; the file taking them resumes it.
 */
class ByteQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private paused = false;
  private discarding = false;

  constructor(private readonly socket: Socket) {}

  push(chunk: Buffer): void {
    if (this.ended) throw new ProtocolError('data after fs_end');
    if (chunk.length === 0 || this.discarding) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes > WRITE_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.notify();
  }

  /** The write is over (answered or failed): what still comes is dropped, not held. */
  discard(): void {
    this.discarding = true;
    this.chunks.length = 0;
    this.bytes = 0;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  end(): void {
    if (this.ended) throw new ProtocolError('fs_end twice');
    this.ended = true;
    this.notify();
  }

  fail(error: Error): void {
    if (this.ended && this.chunks.length === 0) return;
    this.failure = error;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.chunks.shift();
      if (chunk) {
        this.bytes -= chunk.length;
        if (this.paused && this.bytes <= WRITE_HIGH_WATER / 2) {
          this.paused = false;
          this.socket.resume();
        }
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
