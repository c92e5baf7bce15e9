import type { KernelOutput } from '../jupyter/kernel-output.js';
import type { EncodedText } from '../jupyter/wire.js';

/** The NDJSON lines of `POST /execute`, one object per line, in the reference's wire format. */
export type OutputEvent =
  | { type: 'number_of_executions'; execution_count: number; execution_id?: string }
  | StreamEvent
  | ResultEvent
  | ErrorEvent
  | { type: 'output_truncated'; stream_bytes_dropped: number; results_dropped?: number; limit_bytes: number }
  | { type: 'input_request'; input_id: string; prompt: string; password: boolean }
  | { type: 'events_dropped'; count: number }
  | ExecutionStatsEvent
  | ProcessStartedEvent
  | PtyEvent
  | ExitEvent
  | { type: 'keepalive' }
  | { type: 'end_of_execution' };

export interface StreamEvent {
  type: 'stdout' | 'stderr';
  text: string;
  timestamp: string;
}

export interface ResultEvent {
  type: 'result';
  is_main_result: boolean;
  text: string | null;
  html: string | null;
  markdown: string | null;
  svg: string | null;
  png: string | null;
  jpeg: string | null;
  pdf: string | null;
  latex: string | null;
  json: unknown;
  javascript: string | null;
  /**
   * A matplotlib figure's data (line, scatter, bar, pie, box and whisker, superchart), in the
   * shape e2b's SDKs read as `result.chart`. Only present when the kernel sent one.
   */
  chart?: unknown;
  /** MIME types without a field of their own, keyed by MIME type. */
  extra?: Record<string, unknown>;
}

export interface ExecutionStatsEvent {
  type: 'execution_stats';
  wall_ms: number;
  queue_ms: number;
  cpu_ms: number | null;
  peak_memory_bytes: number | null;
}

/** A process (commands and terminals, processes/) has started: the first event of its log. */
export interface ProcessStartedEvent {
  type: 'process_started';
  process_id: string;
  pid: number;
}

/** A terminal's output: raw bytes (escape sequences, split characters), so base64. */
export interface PtyEvent {
  type: 'pty';
  data: string;
  timestamp: string;
}

/**
 * How a process ended: its exit code, or the signal that killed it (then `exit_code` is null),
 * and `status` in the words of Go's ProcessState ("exit status 1", "signal: killed") which
 * e2b's clients show.
 */
export interface ExitEvent {
  type: 'exit';
  exit_code: number | null;
  signal: string | null;
  status: string;
}

export interface ErrorEvent {
  type: 'error';
  name: string;
  value: string;
  traceback: string;
}

/**
 * The MIME type under which a Python kernel sends a figure's chart
 * (image/code_interpreter_charts.py): e2b's own, so that an object with a `_repr_e2b_chart_`
 * method shows its chart here as it would in e2b's sandbox.
 */
export const CHART_MIME_TYPE = 'e2b/chart';

/** MIME type → result field. Everything else goes under `extra`. */
const RESULT_FIELDS = {
  'text/plain': 'text',
  'text/html': 'html',
  'text/markdown': 'markdown',
  'image/svg+xml': 'svg',
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'application/pdf': 'pdf',
  'text/latex': 'latex',
  'application/json': 'json',
  'application/javascript': 'javascript',
} as const satisfies Record<string, keyof ResultEvent>;

/**
 * The reference strips one pair of surrounding quotes from `text/plain`, so that a string
 * result `'abc'` reads `abc`. Clients rely on it.
 */
export function stripOuterQuotes(text: string): string {
  if (text.length >= 2) {
    const first = text[0];
    if ((first === "'" || first === '"') && text[text.length - 1] === first) return text.slice(1, -1);
  }
  return text;
}

function asText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  // nbformat allows multiline strings as arrays of lines.
  if (Array.isArray(value) && value.every((line) => typeof line === 'string')) return value.join('');
  return JSON.stringify(value);
}

export function toResultEvent(data: Record<string, unknown>, isMainResult: boolean): ResultEvent {
  const event: ResultEvent = {
    type: 'result',
    is_main_result: isMainResult,
    text: null,
    html: null,
    markdown: null,
    svg: null,
    png: null,
    jpeg: null,
    pdf: null,
    latex: null,
    json: null,
    javascript: null,
  };
  let extra: Record<string, unknown> | undefined;
  for (const [mime, value] of Object.entries(data)) {
    const field = RESULT_FIELDS[mime as keyof typeof RESULT_FIELDS];
    if (mime === CHART_MIME_TYPE) event.chart = value;
    else if (field === 'json') event.json = value;
    else if (field === 'text') event.text = stripOuterQuotes(asText(value) ?? '');
    else if (field !== undefined) event[field] = asText(value);
    else (extra ??= {})[mime] = value;
  }
  if (extra) event.extra = extra;
  return event;
}

/** The event a client sees for one output of the kernel. */
export function toOutputEvent(output: KernelOutput): OutputEvent {
  switch (output.kind) {
    case 'execution_count':
      return { type: 'number_of_executions', execution_count: output.count };
    case 'stream': {
      const event: StreamEvent = { type: output.name, text: output.text, timestamp: output.timestamp };
      if (output.encoded !== undefined) keepEncodedText(event, output.encoded);
      return event;
    }
    case 'result':
      return toResultEvent(output.data, output.main);
    case 'error':
      return toErrorEvent(output.name, output.value, output.traceback);
  }
}

export function toErrorEvent(name: string, value: string, traceback: string[] | string = []): ErrorEvent {
  return { type: 'error', name, value, traceback: Array.isArray(traceback) ? traceback.join('\n') : traceback };
}

/** One NDJSON line, as the UTF-8 bytes every transport writes. */
export function serializeEvent(event: OutputEvent): Buffer {
  if (event.type === 'stdout' || event.type === 'stderr') {
    const json = textJsonOf(event);
    if (json !== undefined) return streamLine(event, json);
  }
  // Encoded straight into a buffer of the right size: appending the newline to the string
  // first would make a second string to flatten and scan.
  const json = JSON.stringify(event);
  const size = Buffer.byteLength(json, 'utf8');
  const line = Buffer.allocUnsafe(size + 1);
  line.write(json, 0, 'utf8');
  line[size] = NEWLINE;
  return line;
}

const NEWLINE = 0x0a;

const TEXT_JSON = Symbol('text as JSON');

/**
 * Keeps the kernel's own encoding of a stream event's text (see jupyter/wire.ts) with the
 * event, where no serializer or comparison sees it, and the text's size when it is known.
 */
function keepEncodedText(event: StreamEvent, encoded: EncodedText): void {
  Object.defineProperty(event, TEXT_JSON, { value: { text: event.text, json: encoded.json } });
  if (encoded.utf8Bytes !== undefined) Object.defineProperty(event, TEXT_BYTES, { value: encoded.utf8Bytes });
}

/** The kept literal, while it still encodes the event's text. */
function textJsonOf(event: StreamEvent): Buffer | undefined {
  const kept = (event as StreamEvent & { [TEXT_JSON]?: { text: string; json: Buffer } })[TEXT_JSON];
  return kept !== undefined && kept.text === event.text ? kept.json : undefined;
}

/**
 * The line JSON.stringify would write for a stream event (the same keys in the same order),
 * with the kernel's literal for the text: a megabyte of output is copied once instead of being
 * escaped into a new string and encoded again. The literal may escape differently from
 * JSON.stringify (a kernel may write `\u00e9` for `é`); it parses to the same text.
 */
function streamLine(event: StreamEvent, json: Buffer): Buffer {
  const head = event.type === 'stderr' ? STDERR_HEAD : STDOUT_HEAD;
  const tail = `,"timestamp":${JSON.stringify(event.timestamp)}}\n`;
  const line = Buffer.allocUnsafe(head.length + json.length + Buffer.byteLength(tail, 'utf8'));
  head.copy(line, 0);
  json.copy(line, head.length);
  line.write(tail, head.length + json.length, 'utf8');
  return line;
}

const STDOUT_HEAD = Buffer.from('{"type":"stdout","text":');
const STDERR_HEAD = Buffer.from('{"type":"stderr","text":');

const TEXT_BYTES = Symbol('UTF-8 size of the text');

/**
 * The UTF-8 size of a stream event's text. The output budget and the metrics both count it, so
 * it is measured once per event and kept on the event (under a symbol no serializer sees).
 */
export function textBytes(event: StreamEvent): number {
  const measured = event as StreamEvent & { [TEXT_BYTES]?: number };
  let bytes = measured[TEXT_BYTES];
  if (bytes === undefined) {
    bytes = Buffer.byteLength(event.text, 'utf8');
    Object.defineProperty(measured, TEXT_BYTES, { value: bytes });
  }
  return bytes;
}
