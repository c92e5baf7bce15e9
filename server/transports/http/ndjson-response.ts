import { once } from 'node:events';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { serializeEvent } from '../../runs/events.js';
import type { LogEntry } from '../../executions/event-log.js';

/** What streams as NDJSON: an execution, or a process (an execution of another kind). */
export interface EventSource {
  read(options: { from?: number; requester?: boolean; signal?: AbortSignal }): AsyncGenerator<LogEntry>;
}

/**
 * The body of a `POST /execute` response, written straight to the socket: each event is one
 * NDJSON line, sent as it comes. No stream sits in between, so a line costs one write, and the
 * last line goes out in the same write as the end of the response.
 *
 * `write` returns false once the socket's buffer is full (the client reads slower than the
 * kernel prints); the writer then waits for `waitForDrain` before taking the next event.
 */
export class NdjsonResponse {
  private corked = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, number | string | string[] | undefined>,
  ) {}

  private get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Writes one serialized line; false when the socket's buffer is full. */
  writeLine(line: Buffer): boolean {
    if (this.closed) return true;
    this.sendHeaders();
    this.corkUntilTickEnds();
    return this.res.write(line);
  }

  /**
   * Kernel messages that arrive together (a result, the reply, the idle status) are handled in
   * one tick: corking until it ends sends their lines, and the end of the response, in one
   * packet rather than one each, which the client reads with one wake-up instead of several.
   * The socket is corked, not the response: on Node 24 a response ended while corked never
   * sends what it held.
   */
  private corkUntilTickEnds(): void {
    const socket = this.res.socket;
    if (this.corked || !socket) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  async waitForDrain(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return;
    // One signal removes both listeners whichever fires, so pause/resume cycles leave none behind.
    const done = new AbortController();
    try {
      await Promise.race([once(this.res, 'drain', { signal: done.signal }), once(this.res, 'close', { signal: done.signal })]);
    } catch {
      // Aborted by the finally below, or the response errored: either way stop waiting.
    } finally {
      done.abort();
    }
  }

  /** Writes `end_of_execution` and ends the response, in one write. */
  finish(): void {
    if (this.closed) return;
    this.sendHeaders();
    this.corkUntilTickEnds();
    this.res.end(END_LINE);
  }

  private sendHeaders(): void {
    if (!this.res.headersSent) this.res.writeHead(200, this.headers as OutgoingHttpHeaders);
  }
}

export interface StreamOptions {
  /** Index of the first event to send. */
  from?: number;
  /** This response started the execution: it loses nothing and its going away counts. */
  requester?: boolean;
  /** `{"type":"keepalive"}` after this long without a line; 0 for none. */
  keepaliveMs: number;
  /** Headers to send with the 200 (CORS, the execution id, ...). */
  headers: Record<string, number | string | string[] | undefined>;
}

/**
 * Writes an execution's events to an HTTP response as NDJSON, from `from` to
 * `end_of_execution`, with keepalives in silences. Honours backpressure: while the socket's
 * buffer is full no further event is taken from the execution (which, for the requester, makes
 * the kernel wait). Resolves when the response has ended or the client went away.
 */
export async function streamExecution(execution: EventSource, res: ServerResponse, options: StreamOptions): Promise<void> {
  const response = new NdjsonResponse(res, {
    ...options.headers,
    'content-type': 'application/x-ndjson',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  const gone = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) gone.abort(new Error('client disconnected'));
  };
  res.on('close', onClose);
  // A client that left while the execution or process was being started: 'close' came already.
  if (res.destroyed) onClose();
  const keepalive = options.keepaliveMs > 0 ? new Keepalive(options.keepaliveMs, () => response.writeLine(KEEPALIVE_LINE)) : undefined;
  try {
    for await (const entry of execution.read({ from: options.from ?? 0, requester: options.requester === true, signal: gone.signal })) {
      if (entry.type === 'end_of_execution') {
        response.finish();
        return;
      }
      keepalive?.lineWritten();
      if (!response.writeLine(entry.line)) await response.waitForDrain();
    }
  } finally {
    keepalive?.stop();
    res.off('close', onClose);
    // Ended early (the client left): make sure the socket goes.
    if (!res.writableEnded) res.destroy();
  }
}

/**
 * Calls `send` after `intervalMs` without a line, and again after each further `intervalMs` of
 * silence: keepalives only fill silences. A line costs a clock reading, not a timer moved (a
 * refresh re-inserts the timer in Node's lists, once per event of every execution): when the
 * timer fires early because lines came meanwhile, it is set again for the rest of the silence.
 */
class Keepalive {
  private lastLine = performance.now();
  private timer: NodeJS.Timeout;

  constructor(
    private readonly intervalMs: number,
    private readonly send: () => void,
  ) {
    this.timer = setTimeout(() => this.fire(), intervalMs);
  }

  lineWritten(): void {
    this.lastLine = performance.now();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private fire(): void {
    const silentMs = performance.now() - this.lastLine;
    // Timers may fire up to a millisecond early: what is left below that counts as due.
    if (silentMs < this.intervalMs - 1) {
      this.timer = setTimeout(() => this.fire(), this.intervalMs - silentMs);
      return;
    }
    this.send();
    this.lastLine = performance.now();
    this.timer = setTimeout(() => this.fire(), this.intervalMs);
  }
}

const KEEPALIVE_LINE = serializeEvent({ type: 'keepalive' });
const END_LINE = serializeEvent({ type: 'end_of_execution' });
