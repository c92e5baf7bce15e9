import { Type } from 'typebox';

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
      Type.Number({ exclusiveMinimum: 0, description: 'Time limit in seconds; on expiry the kernel is interrupted and a TimeoutError reported' }),
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
      { type: Type.Literal('number_of_executions'), execution_count: Type.Integer() },
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
        extra: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Other MIME types, keyed by MIME type' })),
      },
      { title: 'Result' },
    ),
    Type.Object(
      { type: Type.Literal('error'), name: Type.String(), value: Type.String(), traceback: Type.String() },
      { title: 'Error', description: 'An error raised by the code, or TimeoutError, KernelDied, ... raised around it' },
    ),
    Type.Object(
      { type: Type.Literal('output_truncated'), stream_bytes_dropped: Type.Integer(), limit_bytes: Type.Integer() },
      { title: 'OutputTruncated', description: 'stdout/stderr beyond the per-execution budget was dropped' },
    ),
    Type.Object({ type: Type.Literal('keepalive') }, { title: 'Keepalive', description: 'Sent during silent stretches' }),
    Type.Object({ type: Type.Literal('end_of_execution') }, { title: 'EndOfExecution', description: 'Always the last line' }),
  ],
  { $id: 'ExecutionEvent' },
);
