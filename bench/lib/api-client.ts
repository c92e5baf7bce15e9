import { createReadStream } from 'node:fs';
import { Agent, request } from 'undici';
import { now, sleep } from './stats.js';

export interface ExecuteOutcome {
  events: number;
  /** Characters of stdout/stderr text received (bytes, for the ASCII output the benchmarks print). */
  streamChars: number;
  /** `text` of the main result, if any. */
  result: string | null | undefined;
  /** Bytes of NDJSON read. */
  bodyBytes: number;
}

/** What a foreground `POST /processes` sent back. */
export interface ProcessOutcome {
  /** Bytes of stdout/stderr text received (UTF-8). */
  outputBytes: number;
  /** stdout/stderr events those bytes came in. */
  outputEvents: number;
  exitCode: number | null;
  /** Bytes of NDJSON read. */
  bodyBytes: number;
}

export interface ExecuteOptions {
  /** Read the response no faster than this many bytes per second (a slow client). */
  readBytesPerSecond?: number;
}

/** Splits NDJSON into parsed events without re-scanning a long line for every chunk. */
class NdjsonParser {
  private partial: Buffer[] = [];

  push(chunk: Buffer, onEvent: (event: Record<string, unknown>) => void): void {
    let start = 0;
    let newline: number;
    while ((newline = chunk.indexOf(0x0a, start)) !== -1) {
      const piece = chunk.subarray(start, newline);
      const line = this.partial.length > 0 ? Buffer.concat([...this.partial, piece]) : piece;
      this.partial = [];
      start = newline + 1;
      if (line.length > 0) onEvent(JSON.parse(line.toString('utf8')) as Record<string, unknown>);
    }
    if (start < chunk.length) this.partial.push(chunk.subarray(start));
  }

  get pending(): boolean {
    return this.partial.length > 0;
  }
}

/**
 * A lean HTTP client for the API: undici with keep-alive connections, so the numbers are the
 * server's and not the client's (Node's fetch costs a few hundred microseconds more per call).
 */
export class ApiClient {
  // A benchmark must end with an error, never hang: no answer, or no byte, for 2 minutes is one.
  private readonly agent = new Agent({ keepAliveTimeout: 60_000, bodyTimeout: 120_000, headersTimeout: 120_000 });

  constructor(readonly baseUrl: string) {}

  async json<T>(method: 'GET' | 'POST' | 'DELETE', route: string, body?: unknown): Promise<T> {
    const response = await request(`${this.baseUrl}${route}`, {
      method,
      dispatcher: this.agent,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`${method} ${route} answered ${response.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  async createContext(): Promise<string> {
    return (await this.json<{ id: string }>('POST', '/contexts', {})).id;
  }

  async deleteContext(id: string): Promise<void> {
    await this.json('DELETE', `/contexts/${id}`);
  }

  /**
   * POST /execute and read the NDJSON to its end. Throws on a non-200 answer, an `error` event
   * or a stream that does not end with `end_of_execution`: a benchmark run must not count those.
   */
  async execute(body: { code: string; context_id?: string; language?: string }, options: ExecuteOptions = {}): Promise<ExecuteOutcome> {
    const response = await request(`${this.baseUrl}/execute`, {
      method: 'POST',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.statusCode !== 200) {
      throw new Error(`POST /execute answered ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`);
    }
    const outcome: ExecuteOutcome = { events: 0, streamChars: 0, result: undefined, bodyBytes: 0 };
    let last: Record<string, unknown> | undefined;
    let error: Record<string, unknown> | undefined;
    const parser = new NdjsonParser();
    const onEvent = (event: Record<string, unknown>) => {
      outcome.events += 1;
      last = event;
      if (event.type === 'stdout' || event.type === 'stderr') outcome.streamChars += (event.text as string).length;
      else if (event.type === 'result' && event.is_main_result === true) outcome.result = event.text as string | null;
      else if (event.type === 'error' || event.type === 'output_truncated') error ??= event;
    };
    const rate = options.readBytesPerSecond;
    const started = now();
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      outcome.bodyBytes += buffer.length;
      parser.push(buffer, onEvent);
      if (rate !== undefined) {
        const due = started + (outcome.bodyBytes / rate) * 1000;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
      }
    }
    if (error) throw new Error(`the execution reported ${JSON.stringify(error).slice(0, 300)}`);
    if (parser.pending || last?.type !== 'end_of_execution') throw new Error('the NDJSON stream did not end with end_of_execution');
    return outcome;
  }

  /**
   * `POST /processes` in the foreground, NDJSON read to its end. Throws on a non-200 answer, an
   * `error` event or a stream that does not end with `end_of_execution`, as {@link execute} does.
   */
  async runProcess(body: Record<string, unknown>): Promise<ProcessOutcome> {
    const response = await request(`${this.baseUrl}/processes`, {
      method: 'POST',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.statusCode !== 200) {
      throw new Error(`POST /processes answered ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`);
    }
    const outcome: ProcessOutcome = { outputBytes: 0, outputEvents: 0, exitCode: null, bodyBytes: 0 };
    let last: Record<string, unknown> | undefined;
    let error: Record<string, unknown> | undefined;
    const parser = new NdjsonParser();
    const onEvent = (event: Record<string, unknown>) => {
      last = event;
      if (event.type === 'stdout' || event.type === 'stderr') {
        outcome.outputBytes += Buffer.byteLength(event.text as string);
        outcome.outputEvents += 1;
      } else if (event.type === 'exit') outcome.exitCode = event.exit_code as number | null;
      else if (event.type === 'error' || event.type === 'output_truncated' || event.type === 'events_dropped') error ??= event;
    };
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      outcome.bodyBytes += buffer.length;
      parser.push(buffer, onEvent);
    }
    if (error) throw new Error(`the process reported ${JSON.stringify(error).slice(0, 300)}`);
    if (parser.pending || last?.type !== 'end_of_execution') throw new Error('the NDJSON stream did not end with end_of_execution');
    return outcome;
  }

  /** `POST /processes` with `background: true`: the 202's process id and pid. */
  async startProcess(body: Record<string, unknown>): Promise<{ process_id: string; pid: number }> {
    const response = await request(`${this.baseUrl}/processes`, {
      method: 'POST',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, background: true }),
    });
    const text = await response.body.text();
    if (response.statusCode !== 202) throw new Error(`POST /processes (background) answered ${response.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as { process_id: string; pid: number };
  }

  /** PUT /files/{path} with the body streamed from a file on disk. Returns the status (200 or 201). */
  async putFile(route: string, sourceFile: string, size: number): Promise<number> {
    const response = await request(`${this.baseUrl}/files/${route}`, {
      method: 'PUT',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: createReadStream(sourceFile, { highWaterMark: 1024 * 1024 }),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200 && response.statusCode !== 201) {
      throw new Error(`PUT /files/${route} answered ${response.statusCode}: ${text.slice(0, 300)}`);
    }
    return response.statusCode;
  }

  /** GET /files/{path}, reading (and dropping) the body. Returns the number of bytes read. */
  async getFile(route: string): Promise<number> {
    const response = await request(`${this.baseUrl}/files/${route}`, { method: 'GET', dispatcher: this.agent });
    if (response.statusCode !== 200) {
      throw new Error(`GET /files/${route} answered ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`);
    }
    let bytes = 0;
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    return bytes;
  }

  /** e2b's envd `POST /files?path=` with a raw body (what the SDK streams): `absolute` is any path the sandbox's user may write. */
  async envdUpload(absolute: string, sourceFile: string, size: number): Promise<void> {
    const response = await request(`${this.baseUrl}/files?path=${encodeURIComponent(absolute)}`, {
      method: 'POST',
      dispatcher: this.agent,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: createReadStream(sourceFile, { highWaterMark: 1024 * 1024 }),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`envd POST /files answered ${response.statusCode}: ${text.slice(0, 300)}`);
  }

  /** e2b's envd `GET /files?path=`, reading (and dropping) the body. Returns the number of bytes read. */
  async envdDownload(absolute: string): Promise<number> {
    const response = await request(`${this.baseUrl}/files?path=${encodeURIComponent(absolute)}`, { method: 'GET', dispatcher: this.agent });
    if (response.statusCode !== 200) {
      throw new Error(`envd GET /files answered ${response.statusCode}: ${(await response.body.text()).slice(0, 300)}`);
    }
    let bytes = 0;
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    return bytes;
  }

  async deleteFile(route: string): Promise<void> {
    const response = await request(`${this.baseUrl}/files/${route}`, { method: 'DELETE', dispatcher: this.agent });
    await response.body.dump();
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
