import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ErrorEvent, OutputEvent, ResultEvent } from '../../runs/events.js';

type Content = CallToolResult['content'][number];

/** Result blocks (images and texts) one answer carries at most; the rest are counted. */
export const MAX_RESULT_BLOCKS = 20;

/**
 * Text that arrives in pieces, kept within `limit` characters: the first half and the last
 * half, with the middle cut. The end of an output is where a traceback or a final figure is,
 * the beginning says what started; memory stays at `limit` however much arrives.
 */
export class BoundedText {
  private head = '';
  private tail = '';
  /** Characters dropped from the middle. */
  cut = 0;
  private readonly headLimit: number;
  private readonly tailLimit: number;

  constructor(limit: number) {
    this.headLimit = Math.ceil(limit / 2);
    this.tailLimit = Math.floor(limit / 2);
  }

  append(text: string): void {
    const room = this.headLimit - this.head.length;
    if (room > 0) {
      this.head += text.slice(0, room);
      text = text.slice(room);
    }
    if (text === '') return;
    this.tail += text;
    if (this.tail.length > this.tailLimit) {
      this.cut += this.tail.length - this.tailLimit;
      this.tail = this.tail.slice(this.tail.length - this.tailLimit);
    }
  }

  get length(): number {
    return this.head.length + this.tail.length + this.cut;
  }

  get empty(): boolean {
    return this.length === 0;
  }

  /** The text, with `marker(cut)` where the middle was cut. */
  render(marker: (cut: number) => string): string {
    return this.cut === 0 ? this.head + this.tail : `${this.head}${marker(this.cut)}${this.tail}`;
  }
}

/** IPython colours its tracebacks; a reader of plain text only sees the escape codes. */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '');
}

/** `text/plain` of objects without a repr of their own (`<IPython.core.display.HTML object>`). */
const DEFAULT_REPR = /^<[\w.]+ (object|at 0x[0-9a-f]+)[^>]*>$|^<Figure size [^>]*>$/;

/**
 * One result as a model reads it best: PNG and JPEG as images; otherwise one text, the most
 * useful representation first (SVG's markup, plain text unless it is only a default repr,
 * then HTML, Markdown, LaTeX, JSON).
 */
export function resultContent(event: ResultEvent, maxTextChars: number): Content {
  if (event.png) return { type: 'image', data: event.png, mimeType: 'image/png' };
  if (event.jpeg) return { type: 'image', data: event.jpeg, mimeType: 'image/jpeg' };
  const plain = event.text !== null && !DEFAULT_REPR.test(event.text.trim()) ? event.text : null;
  const text =
    event.svg ??
    plain ??
    event.html ??
    event.markdown ??
    event.latex ??
    (event.json !== null && event.json !== undefined ? JSON.stringify(event.json) : null) ??
    event.text ??
    (event.extra ? `(a result of type ${Object.keys(event.extra).join(', ')}, which has no text form)` : '');
  const bounded = new BoundedText(maxTextChars);
  bounded.append(text);
  return { type: 'text', text: bounded.render((cut) => `\n[... ${cut.toLocaleString('en-US')} characters cut ...]\n`) };
}

export interface OutputOptions {
  /** Characters kept of stdout, of stderr, of each text result and of a traceback. */
  maxTextChars: number;
}

/**
 * Gathers the events of one execution into the answer of `execute_code`: stdout, stderr, the
 * results, and the error that makes it `isError`. Everything is bounded while it arrives, so
 * a run that prints gigabytes costs this answer `maxTextChars` per stream.
 */
export class ExecutionOutput {
  readonly stdout: BoundedText;
  readonly stderr: BoundedText;
  private readonly results: Content[] = [];
  private resultsLeftOut = 0;
  private readonly errors: ErrorEvent[] = [];
  /** Bytes the execution itself dropped beyond MAX_OUTPUT_BYTES. */
  private droppedBytes = 0;
  private droppedLimit = 0;

  constructor(private readonly options: OutputOptions) {
    this.stdout = new BoundedText(options.maxTextChars);
    this.stderr = new BoundedText(options.maxTextChars);
  }

  add(event: OutputEvent | { type: string; [key: string]: unknown }): void {
    switch (event.type) {
      case 'stdout':
        this.stdout.append((event as { text: string }).text);
        break;
      case 'stderr':
        this.stderr.append((event as { text: string }).text);
        break;
      case 'result':
        if (this.results.length < MAX_RESULT_BLOCKS) this.results.push(resultContent(event as ResultEvent, this.options.maxTextChars));
        else this.resultsLeftOut++;
        break;
      case 'error':
        this.errors.push(event as ErrorEvent);
        break;
      case 'output_truncated': {
        const { stream_bytes_dropped: dropped, limit_bytes: limit } = event as { stream_bytes_dropped: number; limit_bytes: number };
        this.droppedBytes += dropped;
        this.droppedLimit = limit;
        break;
      }
      default:
        // number_of_executions, end_of_execution, input_request (stdin is off), events_dropped
        // (never for the requester), and whatever the stream adds later: nothing to show.
        break;
    }
  }

  /** True when something of the output is not in the answer. */
  get truncated(): boolean {
    return this.stdout.cut > 0 || this.stderr.cut > 0 || this.resultsLeftOut > 0;
  }

  /**
   * The tool answer. `fullOutput` says where all of the output can be read (the execution's
   * events URL), for the notices of what was cut.
   */
  toResult(fullOutput: string): CallToolResult {
    const content: Content[] = [];
    const marker = (stream: string) => (cut: number) =>
      `\n[... ${cut.toLocaleString('en-US')} characters of ${stream} cut here (the answer keeps ${this.options.maxTextChars.toLocaleString('en-US')}). ${fullOutput} ...]\n`;

    if (!this.stdout.empty) content.push({ type: 'text', text: this.stdout.render(marker('stdout')) });
    if (!this.stderr.empty) content.push({ type: 'text', text: `[stderr]\n${this.stderr.render(marker('stderr'))}` });
    if (this.droppedBytes > 0) {
      content.push({
        type: 'text',
        text: `[${this.droppedBytes.toLocaleString('en-US')} bytes of stdout/stderr beyond the server's limit of ${this.droppedLimit.toLocaleString('en-US')} bytes per execution were dropped and are lost]`,
      });
    }
    content.push(...this.results);
    if (this.resultsLeftOut > 0) {
      content.push({
        type: 'text',
        text: `[${this.resultsLeftOut} more results (display outputs or figures) left out: an answer carries at most ${MAX_RESULT_BLOCKS}. ${fullOutput}]`,
      });
    }
    for (const error of this.errors) {
      const traceback = new BoundedText(this.options.maxTextChars);
      traceback.append(stripAnsi(error.traceback));
      const header = `${error.name}: ${error.value}`;
      const body = traceback.render(marker('traceback')).trim();
      content.push({ type: 'text', text: body === '' ? header : `${header}\n${body}` });
    }
    if (content.length === 0) content.push({ type: 'text', text: '(no output)' });
    return this.errors.length > 0 ? { content, isError: true } : { content };
  }
}
