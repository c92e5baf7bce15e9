import { Worker } from 'node:worker_threads';

/** What the reader found for one name: left out (gone, swapped, not a file), read whole, or opened. */
export type ReadFile =
  null | { size: number; mode: number; mtimeMs: number; data: Buffer } | { size: number; mode: number; mtimeMs: number; fd: number };

/** Archives reading through a thread of their own at once; more read in the main thread's way. */
const MAX_READERS = 2;
let readers = 0;

/**
 * The thread's code, plain CommonJS for an `eval` worker (so it runs the same from the sources,
 * under the tests, and from the bundle). For each name of a job: open with the flags given
 * (O_NOFOLLOW among them), fstat the descriptor, and read a regular file up to `inline` bytes
 * whole, exactly its size (padded with zeros if it shrank); a bigger one is handed back open.
 * Synchronous calls in a thread of their own: a system call each, rather than a round trip
 * through libuv's pool and the event loop for each of the four calls a small file takes.
 */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const SKIP = new Set(['ENOENT', 'ELOOP', 'ENOTDIR']);
parentPort.on('message', ({ id, dir, names, flags, inline }) => {
  // Two passes: open and fstat every name, then read the small files into one buffer, each
  // at its offset (no copy to gather them), closing as it goes.
  const entries = [];
  const fds = [];
  let bytes = 0;
  try {
    for (const name of names) {
      let fd;
      try {
        fd = fs.openSync(dir + '/' + name, flags);
      } catch (error) {
        if (SKIP.has(error.code)) { entries.push(null); fds.push(-1); continue; }
        throw error;
      }
      fds.push(fd);
      const stats = fs.fstatSync(fd);
      if (!stats.isFile()) { entries.push(null); continue; }
      const entry = { size: stats.size, mode: stats.mode, mtimeMs: stats.mtimeMs };
      if (stats.size > inline) entry.fd = fd;
      else bytes += stats.size;
      entries.push(entry);
    }
    const all = new Uint8Array(bytes);
    let offset = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (entry && entry.fd === undefined) {
        let filled = 0;
        while (filled < entry.size) {
          const count = fs.readSync(fds[i], all, offset + filled, entry.size - filled, filled);
          if (count === 0) break;
          filled += count;
        }
        // Shrunk while read: zeros, as the size in the header says.
        all.fill(0, offset + filled, offset + entry.size);
        offset += entry.size;
      }
      // Handed back open: the large files; every other descriptor is closed here.
      if (fds[i] >= 0 && !(entry && entry.fd !== undefined)) {
        const fd = fds[i];
        fds[i] = -1;
        fs.closeSync(fd);
      }
    }
    parentPort.postMessage({ id, entries, data: all }, [all.buffer]);
  } catch (error) {
    // Every descriptor still open, those of large files included.
    for (const fd of fds) if (fd >= 0) fs.closeSync(fd);
    parentPort.postMessage({ id, error: { message: error.message, code: error.code } });
  }
});
`;

interface Reply {
  id: number;
  entries?: ({ size: number; mode: number; mtimeMs: number; fd?: number } | null)[];
  data?: Uint8Array;
  error?: { message: string; code?: string };
}

/** Reader threads alive now (for tests: that a path was taken, that none is left behind). */
export function readersInUse(): number {
  return readers;
}

/**
 * A thread that opens and reads the small files of an archive, a job (a run of names in one
 * directory) at a time. At most MAX_READERS exist at once; {@link ArchiveReader.create} says
 * undefined past that and the archive reads through libuv's pool instead.
 */
export class ArchiveReader {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;

  private constructor() {
    // Its heap holds one job's names and stats at most; the file bytes are outside it.
    this.worker = new Worker(SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32 } });
    this.worker.on('message', (reply: Reply) => {
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      waiter?.resolve(reply);
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const waiter of this.waiting.values()) waiter.reject(this.failure);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', () => fail(new Error('the archive reader thread exited')));
  }

  static create(): ArchiveReader | undefined {
    if (readers >= MAX_READERS) return undefined;
    readers++;
    return new ArchiveReader();
  }

  /**
   * The names of `dir` (a path, /proc/self/fd/N), in order; descriptors handed back must be
   * closed. Names go as strings (only UTF-8 names are archived): a Buffer from readdir may be
   * a view of a larger one, which structured cloning would copy whole for each name.
   */
  async read(dir: string, names: string[], flags: number, inline: number): Promise<ReadFile[]> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, dir, names, flags, inline });
    });
    if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
    const data = Buffer.from(reply.data!.buffer, reply.data!.byteOffset, reply.data!.length);
    let offset = 0;
    return reply.entries!.map((entry) => {
      if (!entry) return null;
      if (entry.fd !== undefined) return { size: entry.size, mode: entry.mode, mtimeMs: entry.mtimeMs, fd: entry.fd };
      const content = data.subarray(offset, offset + entry.size);
      offset += entry.size;
      return { size: entry.size, mode: entry.mode, mtimeMs: entry.mtimeMs, data: content };
    });
  }

  /** Ends the thread once its jobs are answered (the caller has awaited them). */
  async close(): Promise<void> {
    readers--;
    this.failure ??= new Error('the archive reader is closed');
    await this.worker.terminate();
  }
}
