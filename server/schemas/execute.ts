import { Type, type TLiteral } from 'typebox';
import { OUTCOMES } from '../runs/failures.js';

export const ExecuteBody = Type.Object(
  {
    code: Type.String({ description: 'Code to execute', maxLength: 16 * 1024 * 1024 }),
    context_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Run in this context' })),
    language: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Run in the default context of this language' })),
    env_vars: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: 'Environment variables for this execution only; restored afterwards',
        maxProperties: 1024,
      }),
    ),
    timeout: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description:
          'Time limit in seconds (at least 1 ms, at most MAX_EXECUTION_TIMEOUT); on expiry the kernel is interrupted and a TimeoutError reported',
      }),
    ),
    stdin: Type.Optional(
      Type.Boolean({
        description:
          'Let the code ask for input (input(), getpass()): the stream emits input_request, answered by POST /executions/{id}/input',
      }),
    ),
    on_disconnect: Type.Optional(
      Type.Union([Type.Literal('interrupt'), Type.Literal('continue')], {
        description:
          'What happens when the client goes away: interrupt the code (default) or let it run on, to be re-attached through /executions/{id}/events',
      }),
    ),
    background: Type.Optional(
      Type.Boolean({ description: 'Answer at once with 202 {execution_id, context_id, events_url} and run the code detached' }),
    ),
    stats: Type.Optional(Type.Boolean({ description: 'Add an execution_stats event before end_of_execution' })),
  },
  { additionalProperties: false },
);

export const ExecutionState = Type.Union(
  [Type.Literal('queued'), Type.Literal('running'), Type.Literal('awaiting_input'), Type.Literal('finished')],
  { description: 'queued: waiting for its context; awaiting_input: the code waits for POST /executions/{id}/input' },
);

/** One literal per value, typed as the tuple it is, so that the union's static type is the values' union. */
function literals<const T extends readonly string[]>(values: T): { -readonly [K in keyof T]: TLiteral<T[K] & string> } {
  return values.map((value) => Type.Literal(value)) as { -readonly [K in keyof T]: TLiteral<T[K] & string> };
}

export const ExecutionOutcome = Type.Union(literals(OUTCOMES), {
  description:
    'ok: ran to the end; error: the code raised; timeout: the time limit was hit; interrupted: somebody interrupted it; ' +
    'kernel_died / out_of_memory: the kernel died under it; abandoned: its client went away and it was interrupted; ' +
    'cancelled: interrupted while still queued; failed: ended by a failure around the code (context deleted or restarted, Jupyter lost, shutdown)',
});

export const ExecutionInfo = Type.Object(
  {
    id: Type.String(),
    context_id: Type.String(),
    language: Type.String(),
    state: ExecutionState,
    outcome: Type.Optional(ExecutionOutcome),
    created_at: Type.String({ description: 'ISO 8601' }),
    started_at: Type.Optional(Type.String({ description: 'When it left the queue (ISO 8601)' })),
    finished_at: Type.Optional(Type.String({ description: 'ISO 8601' })),
    event_count: Type.Integer({ description: 'Events so far; the index the next one gets' }),
    queue_ms: Type.Optional(Type.Integer({ description: 'Time spent waiting for the context' })),
    wall_ms: Type.Optional(Type.Integer({ description: 'Time from start to end' })),
  },
  { $id: 'ExecutionInfo', description: 'An execution and its state' },
);

export const BackgroundExecution = Type.Object(
  {
    execution_id: Type.String(),
    context_id: Type.String(),
    events_url: Type.String({ description: 'Where to read its events: GET this URL (NDJSON)' }),
  },
  { description: 'The execution runs detached' },
);

export const ExecutionParams = Type.Object({ execution_id: Type.String({ minLength: 1, maxLength: 128 }) });

export const EventsQuery = Type.Object(
  {
    from: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,15}$',
        description:
          'Index of the first event to send: the number of events already held (an events_dropped line counts as its count). Default 0',
      }),
    ),
  },
  { additionalProperties: false },
);

export const InputBody = Type.Object(
  {
    value: Type.String({ maxLength: 1024 * 1024, description: 'The answer, without a trailing newline' }),
    input_id: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description:
          "The input_request's input_id this answers: 409 unless that very prompt is pending (a retried answer never lands in the next prompt). Without it, the pending prompt, whichever it is",
      }),
    ),
  },
  { additionalProperties: false },
);

const timestamp = Type.String({ description: 'When the kernel emitted it (ISO 8601)' });
const nullableString = Type.Union([Type.String(), Type.Null()]);

/** The NDJSON events of POST /execute, one per line. */
export const ExecutionEvent = Type.Union(
  [
    Type.Object(
      {
        type: Type.Literal('number_of_executions'),
        execution_count: Type.Integer(),
        execution_id: Type.Optional(Type.String({ description: 'The execution (also in the X-Execution-Id header)' })),
      },
      { title: 'NumberOfExecutions', description: 'The execution counter; first line of a run' },
    ),
    Type.Object({ type: Type.Literal('stdout'), text: Type.String(), timestamp }, { title: 'Stdout' }),
    Type.Object({ type: Type.Literal('stderr'), text: Type.String(), timestamp }, { title: 'Stderr' }),
    Type.Object(
      {
        type: Type.Literal('result'),
        is_main_result: Type.Boolean({ description: "true for the cell's value, false for display() output" }),
        text: nullableString,
        html: nullableString,
        markdown: nullableString,
        svg: nullableString,
        png: Type.Union([Type.String({ description: 'base64' }), Type.Null()]),
        jpeg: Type.Union([Type.String({ description: 'base64' }), Type.Null()]),
        pdf: Type.Union([Type.String({ description: 'base64' }), Type.Null()]),
        latex: nullableString,
        json: Type.Unknown(),
        javascript: nullableString,
        chart: Type.Optional(
          Type.Record(Type.String(), Type.Unknown(), {
            description:
              "A matplotlib figure's data in e2b's chart shape: type (line, scatter, bar, pie, box_and_whisker, superchart, unknown), title, axis labels, units, ticks and scales, elements. Only when the kernel sent one",
          }),
        ),
        extra: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Other MIME types, keyed by MIME type' })),
      },
      { title: 'Result' },
    ),
    Type.Object(
      { type: Type.Literal('error'), name: Type.String(), value: Type.String(), traceback: Type.String() },
      { title: 'Error', description: 'An error raised by the code, or TimeoutError, KernelDied, ... raised around it' },
    ),
    Type.Object(
      {
        type: Type.Literal('output_truncated'),
        stream_bytes_dropped: Type.Integer({ description: 'stdout/stderr bytes dropped' }),
        results_dropped: Type.Optional(Type.Integer({ description: 'results (display data, plots) dropped, when any' })),
        limit_bytes: Type.Integer(),
      },
      {
        title: 'OutputTruncated',
        description: 'Output beyond the per-execution budget (MAX_OUTPUT_BYTES, text and results together) was dropped',
      },
    ),
    Type.Object(
      {
        type: Type.Literal('input_request'),
        input_id: Type.String({ description: 'Names this prompt; an answer may name it (input_id) so that it cannot land in another one' }),
        prompt: Type.String(),
        password: Type.Boolean({ description: 'getpass(): the answer is a secret' }),
      },
      { title: 'InputRequest', description: 'The code waits for input: answer with POST /executions/{id}/input (only with stdin: true)' },
    ),
    Type.Object(
      { type: Type.Literal('events_dropped'), count: Type.Integer({ minimum: 1 }) },
      { title: 'EventsDropped', description: 'This many events left the bounded buffer before this reader got them' },
    ),
    Type.Object(
      {
        type: Type.Literal('execution_stats'),
        wall_ms: Type.Number(),
        queue_ms: Type.Number(),
        cpu_ms: Type.Union([Type.Number(), Type.Null()]),
        peak_memory_bytes: Type.Union([Type.Number(), Type.Null()]),
      },
      { title: 'ExecutionStats', description: 'Usage of the execution (only with stats: true)' },
    ),
    Type.Object({ type: Type.Literal('keepalive') }, { title: 'Keepalive', description: 'Sent during silent stretches' }),
    Type.Object({ type: Type.Literal('end_of_execution') }, { title: 'EndOfExecution', description: 'Always the last line' }),
  ],
  { $id: 'ExecutionEvent' },
);
