import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KernelEvents, KernelPoolObserver } from '../contexts/events.js';
import { textBytes, type OutputEvent } from '../runs/events.js';
import type { ExecutionInfo } from '../executions/execution.js';
import { OUTCOMES } from '../runs/failures.js';
import type { ExecutionManager } from '../executions/manager.js';
import type { TransferObserver } from '../workspace/files.js';
import type { ProcessManager } from '../processes/manager.js';
import type { ProcessInfo } from '../processes/process.js';

/** Every metric name starts with this. */
export const PREFIX = 'code_interpreter_';

/** Transports whose open sessions are counted. */
export type SessionTransport = 'websocket' | 'mcp';

/** Where executions come from: a list of the current ones and their lifecycle events. */
export type ExecutionSource = Pick<ExecutionManager, 'list' | 'lifecycle'>;

/** Where commands and terminals come from: a list of them and their lifecycle events. */
export type ProcessSource = Pick<ProcessManager, 'list' | 'lifecycle'>;

/** A process is a terminal (a PTY) or a command (pipes). */
type ProcessKind = 'command' | 'terminal';
const PROCESS_KINDS: readonly ProcessKind[] = ['command', 'terminal'];
/** How a process ended: exit status 0, another status, or a signal (killed, timed out). */
const PROCESS_OUTCOMES = ['ok', 'error', 'signal'] as const;
const kindOf = (process: Pick<ProcessInfo, 'pty'>): ProcessKind => (process.pty ? 'terminal' : 'command');

/** Where contexts come from. */
export interface ContextSource {
  list(): { language: string }[];
  readonly kernelEvents: KernelEvents;
}

/** HTTP methods Node's parser accepts are a closed set already; anything else is folded. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/**
 * The server's Prometheus metrics, in a registry of their own (not prom-client's global one:
 * several apps may live in one process, in tests). Label values come only from closed sets
 * (route templates, status codes, outcomes, installed languages), never from what a client
 * sends, so the number of series stays bounded whatever the traffic.
 *
 * Knows nothing of Fastify: the domain reports through events and observers, and the metrics
 * plugin connects them.
 */
export class ServerMetrics {
  readonly registry = new Registry();

  private readonly executionsStarted: Counter<'language'>;
  private readonly executionsFinished: Counter<'language' | 'outcome'>;
  private readonly executionDuration: Histogram<'language' | 'outcome'>;
  private readonly queueWait: Histogram<'language'>;
  private readonly kernelStarts: Counter<'language'>;
  private readonly kernelRestarts: Counter<'language' | 'reason'>;
  private readonly kernelDeaths: Counter<'language'>;
  private readonly poolSize: Gauge<'language'>;
  private readonly poolHits: Counter<'language'>;
  private readonly poolMisses: Counter<'language'>;
  private readonly outputBytes: Counter<'stream'>;
  private readonly outputTruncations: Counter;
  private readonly outputDroppedBytes: Counter;
  private readonly fileBytes: Counter<'direction'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  private readonly processesStarted: Counter<'kind'>;
  private readonly processesFinished: Counter<'kind' | 'outcome'>;
  private readonly processOutputBytes: Counter<'stream'>;
  private processSource: ProcessSource | undefined;

  private executionSource: ExecutionSource | undefined;
  private contextSource: ContextSource | undefined;
  private readonly languages = new Set<string>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });

    this.executionsStarted = new Counter({
      name: `${PREFIX}executions_started_total`,
      help: 'Executions that reached the kernel (left the queue and began running)',
      labelNames: ['language'],
      registers,
    });
    this.executionsFinished = new Counter({
      name: `${PREFIX}executions_finished_total`,
      help: 'Executions that finished, by outcome (cancelled ones never started)',
      labelNames: ['language', 'outcome'],
      registers,
    });
    this.executionDuration = new Histogram({
      name: `${PREFIX}execution_duration_seconds`,
      help: 'Wall time of executions, from start in the kernel to the end, by outcome',
      labelNames: ['language', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.queueWait = new Histogram({
      name: `${PREFIX}execution_queue_wait_seconds`,
      help: 'Time executions waited behind others in their context before they started',
      labelNames: ['language'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    });
    const source = () => this.executionSource;
    new Gauge({
      name: `${PREFIX}executions_running`,
      help: 'Executions running in a kernel now (awaiting input included)',
      labelNames: ['language'],
      registers,
      collect: countByLanguage(() =>
        source()
          ?.list()
          .filter((execution) => execution.state === 'running' || execution.state === 'awaiting_input'),
      ),
    });
    new Gauge({
      name: `${PREFIX}executions_queued`,
      help: 'Executions waiting behind another one in their context now',
      labelNames: ['language'],
      registers,
      collect: countByLanguage(() =>
        source()
          ?.list()
          .filter((execution) => execution.state === 'queued'),
      ),
    });
    const contexts = () => this.contextSource;
    new Gauge({
      name: `${PREFIX}contexts`,
      help: 'Contexts that exist now, by language',
      labelNames: ['language'],
      registers,
      collect: countByLanguage(() => contexts()?.list()),
    });
    this.kernelStarts = new Counter({
      name: `${PREFIX}kernel_starts_total`,
      help: 'Kernels that new contexts and replacements of lost kernels got, started for them or taken from the pool',
      labelNames: ['language'],
      registers,
    });
    this.kernelRestarts = new Counter({
      name: `${PREFIX}kernel_restarts_total`,
      help: 'Kernels restarted under their context: requested, unresponsive (ignored an interrupt) or died',
      labelNames: ['language', 'reason'],
      registers,
    });
    this.kernelDeaths = new Counter({
      name: `${PREFIX}kernel_deaths_total`,
      help: 'Kernel processes that died under a context (crashed, exited, killed)',
      labelNames: ['language'],
      registers,
    });
    this.poolSize = new Gauge({
      name: `${PREFIX}kernel_pool_size`,
      help: 'Pre-started kernels ready to be handed out, by language',
      labelNames: ['language'],
      registers,
    });
    this.poolHits = new Counter({
      name: `${PREFIX}kernel_pool_hits_total`,
      help: 'Kernels served from the pool',
      labelNames: ['language'],
      registers,
    });
    this.poolMisses = new Counter({
      name: `${PREFIX}kernel_pool_misses_total`,
      help: 'Kernels that had to be started because the pool had none ready',
      labelNames: ['language'],
      registers,
    });
    this.outputBytes = new Counter({
      name: `${PREFIX}output_bytes_total`,
      help: 'stdout and stderr bytes (UTF-8) streamed to clients',
      labelNames: ['stream'],
      registers,
    });
    this.outputTruncations = new Counter({
      name: `${PREFIX}output_truncations_total`,
      help: 'Executions whose stdout/stderr went beyond MAX_OUTPUT_BYTES and was cut',
      registers,
    });
    this.outputDroppedBytes = new Counter({
      name: `${PREFIX}output_dropped_bytes_total`,
      help: 'stdout and stderr bytes dropped beyond MAX_OUTPUT_BYTES',
      registers,
    });
    this.fileBytes = new Counter({
      name: `${PREFIX}file_bytes_total`,
      help: 'Bytes of workspace files uploaded (in) and downloaded (out)',
      labelNames: ['direction'],
      registers,
    });
    this.processesStarted = new Counter({
      name: `${PREFIX}commands_started_total`,
      help: 'Commands and terminals the process host started',
      labelNames: ['kind'],
      registers,
    });
    this.processesFinished = new Counter({
      name: `${PREFIX}commands_finished_total`,
      help: 'Commands and terminals that ended: exit status 0 (ok), another status (error), or a signal',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    for (const kind of PROCESS_KINDS) {
      this.processesStarted.inc({ kind }, 0);
      for (const outcome of PROCESS_OUTCOMES) this.processesFinished.inc({ kind, outcome }, 0);
    }
    const processes = () => this.processSource;
    new Gauge({
      name: `${PREFIX}commands_running`,
      help: 'Commands and terminals running now',
      labelNames: ['kind'],
      registers,
      collect(this: Gauge<'kind'>) {
        const counts = new Map<ProcessKind, number>(PROCESS_KINDS.map((kind) => [kind, 0]));
        for (const process of processes()?.list({ running: true }) ?? [])
          counts.set(kindOf(process), (counts.get(kindOf(process)) ?? 0) + 1);
        for (const [kind, count] of counts) this.set({ kind }, count);
      },
    });
    this.processOutputBytes = new Counter({
      name: `${PREFIX}command_output_bytes_total`,
      help: 'Bytes commands wrote to stdout and stderr, and terminals to their PTY',
      labelNames: ['stream'],
      registers,
    });
    for (const stream of ['stdout', 'stderr', 'pty']) this.processOutputBytes.inc({ stream }, 0);
    this.httpRequests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests by method, route template and status; "unmatched" for paths no route serves',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from request to the end of the response (whole streams for executions)',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    const sessions = this.sessions;
    new Gauge({
      name: `${PREFIX}open_sessions`,
      help: 'Open WebSocket connections and MCP sessions',
      labelNames: ['transport'],
      registers,
      collect() {
        for (const [transport, { open, counters }] of sessions) {
          this.set(
            { transport },
            counters.reduce((sum, count) => sum + count(), open),
          );
        }
      },
    });

    // Zeros rather than absent series, so that rates and alerts work from the first scrape.
    for (const direction of ['in', 'out']) this.fileBytes.inc({ direction }, 0);
    for (const stream of ['stdout', 'stderr']) this.outputBytes.inc({ stream }, 0);
  }

  /** Counts executions from their lifecycle events; the gauges read `list()` at each scrape. */
  observeExecutions(source: ExecutionSource): void {
    this.executionSource = source;
    source.lifecycle.on('started', (execution: ExecutionInfo) => {
      this.executionsStarted.inc({ language: execution.language });
      if (execution.queue_ms !== undefined) this.queueWait.observe({ language: execution.language }, execution.queue_ms / 1000);
    });
    source.lifecycle.on('finished', (execution: ExecutionInfo) => {
      const labels = { language: execution.language, outcome: execution.outcome ?? 'failed' };
      this.executionsFinished.inc(labels);
      // One that never started (cancelled or abandoned in the queue) has no duration to tell.
      if (execution.started_at !== undefined && execution.wall_ms !== undefined)
        this.executionDuration.observe(labels, execution.wall_ms / 1000);
    });
    source.lifecycle.on('output', (_language: string, event: OutputEvent) => {
      if (event.type === 'stdout' || event.type === 'stderr') this.output(event.type, textBytes(event));
      else if (event.type === 'output_truncated') this.truncated(event.stream_bytes_dropped);
    });
  }

  /** Counts commands and terminals as they start and end, and their output as it comes. */
  observeProcesses(source: ProcessSource): void {
    this.processSource = source;
    source.lifecycle.on('started', (process) => this.processesStarted.inc({ kind: kindOf(process) }));
    source.lifecycle.on('finished', (process) => {
      const outcome = process.signal !== null ? 'signal' : process.exit_code === 0 ? 'ok' : 'error';
      this.processesFinished.inc({ kind: kindOf(process), outcome });
    });
    source.lifecycle.on('output', (stream, bytes) => this.processOutputBytes.inc({ stream }, bytes));
  }

  /** Counts contexts at each scrape and kernel events as they happen. */
  observeContexts(source: ContextSource): void {
    this.contextSource = source;
    for (const language of new Set(source.list().map((context) => context.language))) this.initLanguage(language);
    source.kernelEvents.on('kernel_started', ({ language }) => {
      this.initLanguage(language);
      this.kernelStarts.inc({ language });
    });
    source.kernelEvents.on('kernel_restarted', ({ language, reason }) => this.kernelRestarts.inc({ language, reason }));
    source.kernelEvents.on('kernel_died', ({ language }) => this.kernelDeaths.inc({ language }));
  }

  /** Series of a language at zero, so that its first event is seen as an increase. */
  initLanguage(language: string): void {
    if (this.languages.has(language)) return;
    this.languages.add(language);
    for (const outcome of OUTCOMES) this.executionsFinished.inc({ language, outcome }, 0);
    this.executionsStarted.inc({ language }, 0);
    this.kernelStarts.inc({ language }, 0);
    this.kernelDeaths.inc({ language }, 0);
  }

  /** For the kernel pool. */
  readonly pool: KernelPoolObserver = {
    size: (language, ready) => this.poolSize.set({ language }, ready),
    hit: (language) => this.poolHits.inc({ language }),
    miss: (language) => this.poolMisses.inc({ language }),
  };

  /** For the workspace file operations. */
  readonly files: TransferObserver = {
    bytesIn: (count) => this.fileBytes.inc({ direction: 'in' }, count),
    bytesOut: (count) => this.fileBytes.inc({ direction: 'out' }, count),
  };

  /** stdout/stderr text sent to a client, in UTF-8 bytes. */
  output(stream: 'stdout' | 'stderr', bytes: number): void {
    if (bytes > 0) this.outputBytes.inc({ stream }, bytes);
  }

  /** An execution's stream output was cut at the limit; `droppedBytes` were not sent. */
  truncated(droppedBytes: number): void {
    this.outputTruncations.inc();
    this.outputDroppedBytes.inc(droppedBytes);
  }

  /**
   * One HTTP request, answered. `route` must be a route template (`/contexts/:context_id`) or
   * undefined for a path no route serves: never the raw URL.
   */
  httpRequest(method: string, route: string | undefined, status: number, seconds: number): void {
    const labels = { method: METHODS.has(method) ? method : 'OTHER', route: route ?? 'unmatched' };
    this.httpRequests.inc({ ...labels, status: String(status) });
    this.httpDuration.observe(labels, seconds);
  }

  /** Open sessions per transport: those told by openSession, plus what the counters say at each scrape. */
  private readonly sessions = new Map<SessionTransport, { open: number; counters: Array<() => number> }>([
    ['websocket', { open: 0, counters: [] }],
    ['mcp', { open: 0, counters: [] }],
  ]);

  /**
   * A WebSocket connection or MCP session opened. Call the returned function when it closes;
   * calling it more than once counts once.
   */
  openSession(transport: SessionTransport): () => void {
    const entry = this.sessions.get(transport)!;
    entry.open++;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      entry.open--;
    };
  }

  /** For a transport that keeps its own sessions: `count` is asked at each scrape. */
  countSessions(transport: SessionTransport, count: () => number): void {
    this.sessions.get(transport)!.counters.push(count);
  }

  /** The text exposition format and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * A collect function that sets a language-labelled gauge to the count of each language in
 * what `items` returns. Languages seen before stay at zero rather than vanishing from the scrape.
 */
function countByLanguage(items: () => { language: string }[] | undefined): (this: Gauge<'language'>) => void {
  const seen = new Set<string>();
  return function (this: Gauge<'language'>) {
    const counts = new Map<string, number>([...seen].map((language) => [language, 0]));
    for (const item of items() ?? []) counts.set(item.language, (counts.get(item.language) ?? 0) + 1);
    for (const [language, count] of counts) {
      seen.add(language);
      this.set({ language }, count);
    }
  };
}
