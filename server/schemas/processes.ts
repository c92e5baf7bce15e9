import { Type } from 'typebox';

const ptySize = Type.Object(
  {
    cols: Type.Integer({ minimum: 1, maximum: 65535 }),
    rows: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  { additionalProperties: false },
);

export const StartProcessBody = Type.Object(
  {
    command: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256 * 1024, description: 'A shell command line, run by `/bin/bash -c` (send this or cmd)' }),
    ),
    cmd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'A program, found on PATH, run with args (no shell)' })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 256 * 1024 }), { maxItems: 4096, description: 'Arguments of cmd' })),
    cwd: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description: "Working directory: absolute, or relative to the workspace; default the context's cwd, else the workspace",
      }),
    ),
    envs: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        maxProperties: 1024,
        description: "Environment variables added to the kernels' environment",
      }),
    ),
    timeout: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Seconds; the tree is killed after it and the stream ends with a TimeoutError event',
      }),
    ),
    stdin: Type.Optional(Type.Boolean({ description: 'A pipe for stdin (default true), written with /input; false: /dev/null' })),
    pty: Type.Optional(Type.Union([ptySize, Type.Null()], { description: 'Run in a terminal of this size (output comes as pty events)' })),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'A name of your own, listed with the process' })),
    context_id: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description: 'Bind the process to a context: its cwd is the default, and it dies with it',
      }),
    ),
    background: Type.Optional(Type.Boolean({ description: 'Answer 202 at once; read the events from events_url' })),
    on_disconnect: Type.Optional(
      Type.Union([Type.Literal('kill'), Type.Literal('continue')], {
        description: 'What the client going away does to a foreground process: kill its tree (the default) or let it run',
      }),
    ),
  },
  { additionalProperties: false },
);

export const ProcessParams = Type.Object({ process_id: Type.String({ minLength: 1, maxLength: 128 }) });

export const ProcessEventsQuery = Type.Object(
  {
    from: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,15}$',
        description: 'Index of the first event to send: the number of events already read. Default 0',
      }),
    ),
  },
  { additionalProperties: false },
);

export const ProcessInputBody = Type.Object(
  {
    data: Type.Optional(Type.String({ maxLength: 1024 * 1024, description: 'Text, sent as UTF-8' })),
    data_base64: Type.Optional(Type.String({ maxLength: 1400 * 1024, description: 'Bytes, base64' })),
  },
  { additionalProperties: false },
);

export const SignalBody = Type.Object(
  {
    signal: Type.Union([Type.Literal('interrupt'), Type.Literal('terminate'), Type.Literal('kill')], {
      description: 'SIGINT, SIGTERM or SIGKILL, to the process and its whole tree',
    }),
  },
  { additionalProperties: false },
);

export const ResizeBody = ptySize;

export const ListProcessesQuery = Type.Object(
  { running: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true: only those still running' })) },
  { additionalProperties: false },
);

export const ProcessInfo = Type.Object(
  {
    id: Type.String(),
    pid: Type.Union([Type.Integer(), Type.Null()]),
    tag: Type.Union([Type.String(), Type.Null()]),
    cmd: Type.String(),
    args: Type.Array(Type.String()),
    cwd: Type.Union([Type.String(), Type.Null()], { description: 'As requested; null: the default' }),
    pty: Type.Union([ptySize, Type.Null()]),
    stdin: Type.Union([Type.Literal('enabled'), Type.Literal('closed'), Type.Literal('disabled')]),
    state: Type.Union([Type.Literal('starting'), Type.Literal('running'), Type.Literal('exited')]),
    context_id: Type.Union([Type.String(), Type.Null()], { description: 'The context it is bound to' }),
    exit_code: Type.Union([Type.Integer(), Type.Null()]),
    signal: Type.Union([Type.String(), Type.Null()], { description: 'The signal that ended it (SIGKILL, ...)' }),
    created_at: Type.String(),
    finished_at: Type.Union([Type.String(), Type.Null()]),
    event_count: Type.Integer(),
  },
  { $id: 'ProcessInfo' },
);

export const BackgroundProcess = Type.Object(
  { process_id: Type.String(), pid: Type.Integer(), events_url: Type.String() },
  { description: 'The process runs; its events are at events_url' },
);

const timestamp = Type.String({ description: 'When the host read it (ISO 8601)' });

/** The NDJSON events of a process, one per line. */
export const ProcessEvent = Type.Union(
  [
    Type.Object(
      { type: Type.Literal('process_started'), process_id: Type.String(), pid: Type.Integer() },
      { title: 'ProcessStarted', description: 'Always the first line' },
    ),
    Type.Object({ type: Type.Literal('stdout'), text: Type.String(), timestamp }, { title: 'ProcessStdout' }),
    Type.Object({ type: Type.Literal('stderr'), text: Type.String(), timestamp }, { title: 'ProcessStderr' }),
    Type.Object(
      { type: Type.Literal('pty'), data: Type.String({ description: 'base64' }), timestamp },
      { title: 'PtyOutput', description: "A terminal's output, as bytes" },
    ),
    Type.Object(
      {
        type: Type.Literal('exit'),
        exit_code: Type.Union([Type.Integer(), Type.Null()]),
        signal: Type.Union([Type.String(), Type.Null()]),
        status: Type.String({ description: '"exit status 1", "signal: killed", ...' }),
      },
      { title: 'Exit', description: 'How the process ended' },
    ),
    Type.Object(
      { type: Type.Literal('error'), name: Type.String(), value: Type.String(), traceback: Type.String() },
      { title: 'ProcessError', description: 'TimeoutError after the exit of a process killed at its timeout; ProcessHostLost' },
    ),
    Type.Object(
      { type: Type.Literal('events_dropped'), count: Type.Integer({ minimum: 1 }) },
      { title: 'ProcessEventsDropped', description: 'This many events left the bounded buffer before this reader got them' },
    ),
    Type.Object({ type: Type.Literal('keepalive') }, { title: 'ProcessKeepalive' }),
    Type.Object({ type: Type.Literal('end_of_execution') }, { title: 'ProcessEnd', description: 'Always the last line' }),
  ],
  { $id: 'ProcessEvent' },
);
