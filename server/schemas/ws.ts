import { Type, type Static } from 'typebox';
import { ExecuteBody } from './execute.js';
import { WatchEventType, WatchQuery } from './files.js';
import { ProcessInputBody, ResizeBody, SignalBody, StartProcessBody } from './processes.js';

/** The subprotocol of `GET /ws`; the server answers with it whenever a client offers it. */
export const WS_SUBPROTOCOL = 'code-interpreter.v1';

/** Largest frame a client may send; a longer one closes the socket with 1009. */
export const WS_MAX_FRAME_BYTES = 32 * 1024 * 1024;

const requestId = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'Chosen by the client; echoed in `accepted` and `request_error` so it can match answers to frames',
});
const executionId = Type.String({ minLength: 1, maxLength: 128, description: 'As in `accepted`, or from `GET /executions`' });

/** `execute`: the fields of `POST /execute`, plus the frame's type and request id. */
export const ExecuteFrame = Type.Object(
  { type: Type.Literal('execute'), request_id: Type.Optional(requestId), ...ExecuteBody.properties },
  { additionalProperties: false, title: 'ExecuteFrame', description: 'Run code; answered by `accepted` then every event of the execution' },
);

export const InputFrame = Type.Object(
  {
    type: Type.Literal('input'),
    request_id: Type.Optional(requestId),
    execution_id: executionId,
    value: Type.String({ maxLength: 1024 * 1024, description: 'The answer to the pending input() or getpass(), without a newline' }),
    input_id: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: "The input_request's input_id this answers: refused (409) unless that prompt is pending",
      }),
    ),
  },
  { additionalProperties: false, title: 'InputFrame', description: 'Answer an `input_request`' },
);

export const InterruptFrame = Type.Object(
  { type: Type.Literal('interrupt'), request_id: Type.Optional(requestId), execution_id: executionId },
  {
    additionalProperties: false,
    title: 'InterruptFrame',
    description: 'Interrupt a running execution (KeyboardInterrupt in its stream), or cancel one still queued',
  },
);

export const AttachFrame = Type.Object(
  {
    type: Type.Literal('attach'),
    request_id: Type.Optional(requestId),
    execution_id: executionId,
    from: Type.Optional(Type.Integer({ minimum: 0, description: 'Index of the first event to send again; 0 (the default) is the start' })),
  },
  {
    additionalProperties: false,
    title: 'AttachFrame',
    description: 'Receive the events of an execution started elsewhere (another socket, POST /execute): from index `from`, then live ones',
  },
);

const processId = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'As in the `accepted` of `process_start`, or from `GET /processes`',
});

/** POST /processes's fields but `background`: over a socket, a process is followed until the client detaches. */
const { background: _background, ...startFields } = StartProcessBody.properties;

export const ProcessStartFrame = Type.Object(
  { type: Type.Literal('process_start'), request_id: Type.Optional(requestId), ...startFields },
  {
    additionalProperties: false,
    title: 'ProcessStartFrame',
    description: 'Run a command or a terminal; answered by `accepted` (with `process_id`) then every event of the process',
  },
);

export const ProcessInputFrame = Type.Object(
  { type: Type.Literal('process_input'), request_id: Type.Optional(requestId), process_id: processId, ...ProcessInputBody.properties },
  {
    additionalProperties: false,
    title: 'ProcessInputFrame',
    description: "Write to a process's stdin, or to its terminal: `data` or `data_base64`",
  },
);

export const ProcessCloseStdinFrame = Type.Object(
  { type: Type.Literal('process_close_stdin'), request_id: Type.Optional(requestId), process_id: processId },
  { additionalProperties: false, title: 'ProcessCloseStdinFrame', description: "Close a process's stdin (EOF)" },
);

export const ProcessResizeFrame = Type.Object(
  { type: Type.Literal('process_resize'), request_id: Type.Optional(requestId), process_id: processId, ...ResizeBody.properties },
  { additionalProperties: false, title: 'ProcessResizeFrame', description: "Resize a process's terminal" },
);

export const ProcessSignalFrame = Type.Object(
  { type: Type.Literal('process_signal'), request_id: Type.Optional(requestId), process_id: processId, ...SignalBody.properties },
  { additionalProperties: false, title: 'ProcessSignalFrame', description: 'Signal a process and its whole tree' },
);

export const ProcessAttachFrame = Type.Object(
  {
    type: Type.Literal('process_attach'),
    request_id: Type.Optional(requestId),
    process_id: processId,
    from: Type.Optional(Type.Integer({ minimum: 0, description: 'Index of the first event to send again; 0 (the default) is the start' })),
  },
  {
    additionalProperties: false,
    title: 'ProcessAttachFrame',
    description: 'Receive the events of a process (started on this socket or elsewhere): from index `from`, then live ones',
  },
);

export const ProcessDetachFrame = Type.Object(
  { type: Type.Literal('process_detach'), request_id: Type.Optional(requestId), process_id: processId },
  {
    additionalProperties: false,
    title: 'ProcessDetachFrame',
    description: "Stop receiving a process's events on this socket; the process runs on (answered by `detached`)",
  },
);

const watchId = Type.String({ minLength: 1, maxLength: 128, description: 'As in `watch_started`' });

export const WatchStartFrame = Type.Object(
  {
    type: Type.Literal('watch_start'),
    request_id: Type.Optional(requestId),
    ...WatchQuery.properties,
    recursive: Type.Optional(Type.Boolean({ description: 'Watch the whole tree under the directory (default: false)' })),
  },
  {
    additionalProperties: false,
    title: 'WatchStartFrame',
    description: 'Watch a workspace directory, as GET /watch does; answered by `watch_started`, then `watch_event` frames',
  },
);

export const WatchStopFrame = Type.Object(
  { type: Type.Literal('watch_stop'), request_id: Type.Optional(requestId), watch_id: watchId },
  { additionalProperties: false, title: 'WatchStopFrame', description: 'End a watch of this socket (answered by `watch_ended`)' },
);

export type ExecuteFrame = Static<typeof ExecuteFrame>;
export type InputFrame = Static<typeof InputFrame>;
export type InterruptFrame = Static<typeof InterruptFrame>;
export type AttachFrame = Static<typeof AttachFrame>;
export type ProcessStartFrame = Static<typeof ProcessStartFrame>;
export type ProcessInputFrame = Static<typeof ProcessInputFrame>;
export type ProcessCloseStdinFrame = Static<typeof ProcessCloseStdinFrame>;
export type ProcessResizeFrame = Static<typeof ProcessResizeFrame>;
export type ProcessSignalFrame = Static<typeof ProcessSignalFrame>;
export type ProcessAttachFrame = Static<typeof ProcessAttachFrame>;
export type ProcessDetachFrame = Static<typeof ProcessDetachFrame>;
export type WatchStartFrame = Static<typeof WatchStartFrame>;
export type WatchStopFrame = Static<typeof WatchStopFrame>;
export type ClientFrame =
  | ExecuteFrame
  | InputFrame
  | InterruptFrame
  | AttachFrame
  | ProcessStartFrame
  | ProcessInputFrame
  | ProcessCloseStdinFrame
  | ProcessResizeFrame
  | ProcessSignalFrame
  | ProcessAttachFrame
  | ProcessDetachFrame
  | WatchStartFrame
  | WatchStopFrame;

/** Every frame a client may send, by its `type`. */
export const CLIENT_FRAMES = {
  execute: ExecuteFrame,
  input: InputFrame,
  interrupt: InterruptFrame,
  attach: AttachFrame,
  process_start: ProcessStartFrame,
  process_input: ProcessInputFrame,
  process_close_stdin: ProcessCloseStdinFrame,
  process_resize: ProcessResizeFrame,
  process_signal: ProcessSignalFrame,
  process_attach: ProcessAttachFrame,
  process_detach: ProcessDetachFrame,
  watch_start: WatchStartFrame,
  watch_stop: WatchStopFrame,
} as const;

/** What the server sends besides the execution events (which are those of POST /execute plus `execution_id`). */
export const AcceptedFrame = Type.Object(
  {
    type: Type.Literal('accepted'),
    request_id: Type.Union([Type.String(), Type.Null()]),
    execution_id: Type.String(),
    context_id: Type.String(),
  },
  { title: 'AcceptedFrame', description: 'An `execute` or `attach` frame was accepted: the events of `execution_id` follow' },
);

export const ProcessAcceptedFrame = Type.Object(
  {
    type: Type.Literal('accepted'),
    request_id: Type.Union([Type.String(), Type.Null()]),
    process_id: Type.String(),
    pid: Type.Union([Type.Integer(), Type.Null()]),
  },
  {
    title: 'ProcessAcceptedFrame',
    description: 'A `process_start` or `process_attach` frame was accepted: the events of `process_id` follow',
  },
);

export const DetachedFrame = Type.Object(
  { type: Type.Literal('detached'), request_id: Type.Union([Type.String(), Type.Null()]), process_id: Type.String() },
  { title: 'DetachedFrame', description: 'No more events of `process_id` come on this socket (after any already sent)' },
);

export const RequestErrorFrame = Type.Object(
  {
    type: Type.Literal('request_error'),
    request_id: Type.Union([Type.String(), Type.Null()], {
      description: "The refused frame's, or null when it had none or could not be read",
    }),
    execution_id: Type.Optional(Type.String({ description: "The refused frame's, when it named one" })),
    process_id: Type.Optional(Type.String({ description: "The refused frame's, when it named one" })),
    watch_id: Type.Optional(Type.String({ description: "The refused frame's, when it named one" })),
    status: Type.Integer({ description: 'The HTTP status the same request gets over HTTP' }),
    code: Type.String({ description: 'The same stable code as over HTTP, e.g. ERR_CONTEXT_NOT_FOUND' }),
    message: Type.String(),
  },
  { title: 'RequestErrorFrame', description: 'A frame was refused; the socket stays open' },
);

export const WatchStartedFrame = Type.Object(
  {
    type: Type.Literal('watch_started'),
    request_id: Type.Union([Type.String(), Type.Null()]),
    watch_id: Type.String(),
    path: Type.String({ description: 'The watched directory, relative to the workspace' }),
    recursive: Type.Boolean(),
  },
  { title: 'WatchStartedFrame', description: 'The watch is in place: its changes follow as `watch_event` frames' },
);

export const WatchEventFrame = Type.Object(
  {
    type: Type.Literal('watch_event'),
    watch_id: Type.String(),
    event: WatchEventType,
    name: Type.String({ description: 'Path relative to the watched directory' }),
  },
  { title: 'WatchEventFrame', description: 'A change in a watched directory, in the order they happened' },
);

export const WatchEndedFrame = Type.Object(
  {
    type: Type.Literal('watch_ended'),
    request_id: Type.Union([Type.String(), Type.Null()], { description: "The `watch_stop` frame's, when one ended it" }),
    watch_id: Type.String(),
    code: Type.Optional(Type.String({ description: 'Why a watch ended on its own: ERR_WATCH_LIMIT, ERR_SERVER_SHUTTING_DOWN' })),
    message: Type.Optional(Type.String()),
  },
  { title: 'WatchEndedFrame', description: 'No more events of `watch_id` come' },
);

/** For the OpenAPI description of `GET /ws`. */
export const WsClientFrame = Type.Union(Object.values(CLIENT_FRAMES), { $id: 'WsClientFrame' });
export const WsServerFrame = Type.Union(
  [
    AcceptedFrame,
    ProcessAcceptedFrame,
    DetachedFrame,
    RequestErrorFrame,
    WatchStartedFrame,
    WatchEventFrame,
    WatchEndedFrame,
    Type.Intersect([Type.Ref('ExecutionEvent'), Type.Object({ execution_id: Type.String() })], {
      title: 'ExecutionEventFrame',
      description: 'An event of the execution, exactly as on POST /execute, with the execution it belongs to',
    }),
    Type.Intersect([Type.Ref('ProcessEvent'), Type.Object({ process_id: Type.String() })], {
      title: 'ProcessEventFrame',
      description: 'An event of the process, exactly as on POST /processes, with the process it belongs to',
    }),
  ],
  { $id: 'WsServerFrame' },
);
