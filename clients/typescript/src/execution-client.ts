import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConnectionError, ExecutionError, NotFoundError, TimeoutError, UnavailableError } from './errors.js';
import type { components } from './generated/openapi.js';
import { HttpConnection, type ServerOptions } from './http.js';
import { ndjson } from './ndjson.js';

/** One line of an execution's NDJSON stream, as the server describes it. */
export type ExecutionEvent = components['schemas']['ExecutionEvent'];
/** A context as the server answers it. */
export type Context = components['schemas']['Context'];
/** An execution's state as the server answers it. */
export type ExecutionInfo = components['schemas']['ExecutionInfo'];

export interface ExecutionResult {
  /** The output text: stdout, stderr and the text of results, in the order they came. */
  text: string;
  /** The PNG bytes of every image the code displayed (matplotlib figures included). */
  images: Uint8Array[];
  /** Where the images were saved, when `imagesDir` was given. */
  imagePaths?: string[];
  /**
   * Events this reader never got: an execution read again after the server's buffer for it
   * (EXECUTION_BUFFER_BYTES) let its oldest events go. 0 when nothing is missing; otherwise the
   * text and images are only the part the server still had.
   */
  eventsDropped: number;
}

export interface InputRequest {
  prompt: string;
  /** `getpass()`: the answer is a secret. */
  password: boolean;
  inputId: string;
}

/** Answers the code's `input()` and `getpass()`. */
export type InputHandler = (request: InputRequest) => string | Promise<string>;

export interface ExecuteOptions {
  /** Seconds before the server interrupts the code and the execution fails with `TimeoutError`. Default 120. */
  timeout?: number;
  /** Environment variables for this execution only; the kernel's are restored afterwards. */
  envVars?: Record<string, string>;
  /** Saves every image there too (as `<uuid>.png`); `ExecutionResult.imagePaths` lists them. */
  imagesDir?: string;
  /** Answers `input()` and `getpass()`; without it they fail in the code. */
  onInput?: InputHandler;
  /**
   * What the server does with the code when the connection drops: `continue` (the default here)
   * keeps it running so that the execution re-attaches and reads the rest; `interrupt` stops it.
   */
  onDisconnect?: 'continue' | 'interrupt';
}

export interface AttachOptions {
  /** The index of the first event to read again (0: all of them). */
  from?: number;
  imagesDir?: string;
  onInput?: InputHandler;
}

export interface ConnectOptions {
  /** How many times to try again while the server cannot be reached or is not ready. Default 10. */
  retries?: number;
  /** Seconds between tries. Default 1. */
  retryInterval?: number;
}

export interface ExecutionClientOptions extends ServerOptions {
  /** The kernel's language: `python` (default), `r`, `javascript` or `typescript`. */
  language?: string;
  /** The kernel's working directory: absolute, or relative to the workspace. */
  cwd?: string;
  /** Where every execution saves its images unless it names its own `imagesDir`. */
  imagesDir?: string;
}

const RE_ATTACH_TRIES = 5;
const RE_ATTACH_INTERVAL_MS = 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** An error while reading a stream that a new request may get past: a dropped connection. */
function isConnectionLoss(error: unknown): boolean {
  if (error instanceof ConnectionError) return true;
  // Node's fetch reports a body cut short as a TypeError ("terminated") or a socket error.
  return (
    error instanceof TypeError ||
    (error instanceof Error && 'code' in error && /^(ECONNRESET|UND_ERR_SOCKET|EPIPE)/.test(String(error.code)))
  );
}

/**
 * An execution on its way: `stream()` yields its output as it comes, `result()` waits for the
 * whole of it. It reads the server's events in the background from the start, so nothing is
 * missed whenever `stream()` is called; a dropped connection is re-attached to by the execution's
 * id, from the next event it did not get.
 */
export class Execution {
  private readonly chunks: string[] = [];
  private readonly images: Uint8Array[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly opened: Promise<unknown>;
  private readonly finished: Promise<ExecutionResult>;
  private settled = false;
  private failure: Error | undefined;
  private eventCount: number;
  private eventsDropped = 0;
  private executionId: string | undefined;

  /** @internal */
  constructor(
    private readonly http: HttpConnection,
    open: Promise<Response>,
    private readonly options: { imagesDir?: string; onInput?: InputHandler; from?: number; id?: string },
  ) {
    this.executionId = options.id;
    this.eventCount = options.from ?? 0;
    this.opened = open.then((response) => {
      this.executionId ??= response.headers.get('x-execution-id') ?? undefined;
    });
    this.opened.catch(() => {});
    this.finished = this.pump(open).finally(() => {
      this.settled = true;
      this.wake();
    });
    // Whoever never asks for the result must not crash the process with an unhandled rejection.
    this.finished.catch(() => {});
  }

  /** The execution's id, once the server answered: for `ExecutionClient.attach()` after a lost connection. */
  get id(): string | undefined {
    return this.executionId;
  }

  /** The number of events read so far: where a re-attach would go on from. */
  get eventsRead(): number {
    return this.eventCount;
  }

  /** The output text as it comes, chunk by chunk; throws the execution's error at the end, if any. */
  async *stream(): AsyncGenerator<string> {
    let index = 0;
    for (;;) {
      while (index < this.chunks.length) yield this.chunks[index++]!;
      if (this.settled) break;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    await this.finished;
  }

  /** The whole result; rejects with `ExecutionError` or `TimeoutError` when the code failed. */
  result(): Promise<ExecutionResult> {
    return this.finished;
  }

  /** Interrupts this execution (a queued one leaves the queue). */
  async interrupt(): Promise<ExecutionInfo> {
    await this.opened;
    if (this.executionId === undefined) throw new Error('the server did not name this execution: it cannot be interrupted by id');
    return this.http.json<ExecutionInfo>(`/executions/${encodeURIComponent(this.executionId)}/interrupt`, { method: 'POST' });
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  private async pump(open: Promise<Response>): Promise<ExecutionResult> {
    let response = await open;
    let retries = 0;
    for (;;) {
      const events = ndjson<ExecutionEvent>(response.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
      let lost: unknown;
      for (;;) {
        let next: IteratorResult<ExecutionEvent>;
        try {
          next = await events.next();
        } catch (error) {
          lost = error;
          break;
        }
        if (next.done) {
          lost = new ConnectionError('the stream ended before end_of_execution');
          break;
        }
        retries = 0;
        const event = next.value;
        if (event.type === 'keepalive') continue;
        this.eventCount += event.type === 'events_dropped' ? event.count : 1;
        if (event.type === 'events_dropped') this.eventsDropped += event.count;
        if (event.type === 'end_of_execution') return this.finish();
        await this.handle(event);
      }
      if (!isConnectionLoss(lost) || this.executionId === undefined || retries >= RE_ATTACH_TRIES) throw lost;
      response = await this.reopen(++retries);
    }
  }

  private async reopen(attempt: number): Promise<Response> {
    for (let tries = attempt; ; tries++) {
      await sleep(RE_ATTACH_INTERVAL_MS);
      try {
        return await this.http.request(`/executions/${encodeURIComponent(this.executionId!)}/events`, { query: { from: this.eventCount } });
      } catch (error) {
        if (!(error instanceof ConnectionError || error instanceof UnavailableError) || tries >= RE_ATTACH_TRIES) throw error;
      }
    }
  }

  private push(chunk: string): void {
    this.chunks.push(chunk);
    this.wake();
  }

  private async handle(event: ExecutionEvent): Promise<void> {
    switch (event.type) {
      case 'number_of_executions':
        this.executionId ??= event.execution_id;
        break;
      case 'stdout':
      case 'stderr':
        this.push(event.text);
        break;
      case 'result':
        if (event.png) this.images.push(Uint8Array.from(Buffer.from(event.png, 'base64')));
        else if (event.text !== null) this.push(event.text.endsWith('\n') ? event.text : `${event.text}\n`);
        break;
      case 'error':
        // The first error is the one that ended the code; what follows reports around it.
        this.failure ??=
          event.name === 'TimeoutError' ? new TimeoutError(event.value) : new ExecutionError(event.name, event.value, event.traceback);
        break;
      case 'input_request':
        await this.answer(event);
        break;
      default:
        break;
    }
  }

  private async answer(event: { input_id: string; prompt: string; password: boolean }): Promise<void> {
    const { onInput } = this.options;
    if (!onInput || this.executionId === undefined) return;
    let value: string;
    try {
      value = await onInput({ prompt: event.prompt, password: event.password, inputId: event.input_id });
      if (typeof value !== 'string') throw new TypeError(`onInput must answer a string, got ${typeof value}`);
    } catch (error) {
      this.failure ??= error instanceof Error ? error : new Error(String(error));
      await this.interrupt().catch(() => {});
      return;
    }
    await this.http.request(`/executions/${encodeURIComponent(this.executionId)}/input`, {
      method: 'POST',
      json: { value, input_id: event.input_id },
    });
  }

  private async finish(): Promise<ExecutionResult> {
    if (this.failure) throw this.failure;
    const result: ExecutionResult = { text: this.chunks.join('').trimEnd(), images: this.images, eventsDropped: this.eventsDropped };
    const { imagesDir } = this.options;
    if (imagesDir !== undefined) {
      await mkdir(imagesDir, { recursive: true });
      result.imagePaths = [];
      for (const image of this.images) {
        const file = path.join(imagesDir, `${randomUUID()}.png`);
        await writeFile(file, image);
        result.imagePaths.push(file);
      }
    }
    return result;
  }
}

/**
 * Runs code in a kernel of its own (a context on the server): `connect()` creates it,
 * `disconnect()` deletes it, and executions share its state in between.
 */
export class ExecutionClient {
  private readonly http: HttpConnection;
  private readonly language: string;
  private readonly cwd: string | undefined;
  private readonly imagesDir: string | undefined;
  private contextId: string | undefined;

  constructor(options: ExecutionClientOptions) {
    this.http = new HttpConnection(options);
    this.language = options.language ?? 'python';
    this.cwd = options.cwd;
    this.imagesDir = options.imagesDir;
  }

  /** The id of the kernel's context. */
  get kernelId(): string {
    return this.context();
  }

  /** Creates the kernel, trying again while the server cannot be reached or Jupyter is not ready. */
  async connect(options: ConnectOptions = {}): Promise<this> {
    const retries = options.retries ?? 10;
    const interval = options.retryInterval ?? 1;
    if (!Number.isInteger(retries) || retries < 0) throw new TypeError(`retries must be a whole number ≥ 0, got ${retries}`);
    if (!(interval >= 0)) throw new TypeError(`retryInterval must be a number of seconds ≥ 0, got ${interval}`);
    if (this.contextId !== undefined) return this;
    for (let attempt = 0; ; attempt++) {
      try {
        const context = await this.http.json<Context>('/contexts', {
          method: 'POST',
          json: { language: this.language, ...(this.cwd === undefined ? {} : { cwd: this.cwd }) },
        });
        this.contextId = context.id;
        return this;
      } catch (error) {
        if (!(error instanceof ConnectionError || error instanceof UnavailableError) || attempt >= retries) throw error;
        await sleep(interval * 1000);
      }
    }
  }

  /** Deletes the kernel; nothing happens when it is gone already. */
  async disconnect(): Promise<void> {
    const id = this.contextId;
    if (id === undefined) return;
    this.contextId = undefined;
    try {
      await this.http.request(`/contexts/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.disconnect();
  }

  /** Runs the code and waits for its result. */
  async execute(code: string, options: ExecuteOptions = {}): Promise<ExecutionResult> {
    return this.submit(code, options).result();
  }

  /** Starts the code and answers at once with the execution, to stream or await. */
  submit(code: string, options: ExecuteOptions = {}): Execution {
    if (typeof code !== 'string') throw new TypeError(`code must be a string, got ${typeof code}`);
    const timeout = options.timeout ?? 120;
    if (!(typeof timeout === 'number' && timeout > 0))
      throw new TypeError(`timeout must be a positive number of seconds, got ${String(timeout)}`);
    const open = this.http.request('/execute', {
      method: 'POST',
      json: {
        code,
        context_id: this.context(),
        timeout,
        ...(options.envVars ? { env_vars: options.envVars } : {}),
        ...(options.onInput ? { stdin: true } : {}),
        on_disconnect: options.onDisconnect ?? 'continue',
      },
    });
    return new Execution(this.http, open, { imagesDir: options.imagesDir ?? this.imagesDir, onInput: options.onInput });
  }

  /** Streams the output text chunk by chunk, then yields the result. */
  async *stream(code: string, options: ExecuteOptions = {}): AsyncGenerator<string | ExecutionResult> {
    const execution = this.submit(code, options);
    yield* execution.stream();
    yield await execution.result();
  }

  /** Reads an execution again by its id, from event `from` on (after a lost connection, say). */
  attach(executionId: string, options: AttachOptions = {}): Execution {
    const from = options.from ?? 0;
    if (!Number.isInteger(from) || from < 0) throw new TypeError(`from must be a whole number ≥ 0, got ${from}`);
    const open = this.http.request(`/executions/${encodeURIComponent(executionId)}/events`, { query: { from } });
    return new Execution(this.http, open, {
      imagesDir: options.imagesDir ?? this.imagesDir,
      onInput: options.onInput,
      from,
      id: executionId,
    });
  }

  /** Interrupts whatever runs in the kernel. */
  async interrupt(): Promise<void> {
    await this.http.request(`/contexts/${encodeURIComponent(this.context())}/interrupt`, { method: 'POST' });
  }

  /** Restarts the kernel: its state is wiped, its id and cwd stay. */
  async restart(): Promise<void> {
    await this.http.request(`/contexts/${encodeURIComponent(this.context())}/restart`, { method: 'POST' });
  }

  private context(): string {
    if (this.contextId === undefined) throw new Error('the client is not connected: call connect() first');
    return this.contextId;
  }
}
