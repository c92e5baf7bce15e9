import { Type, type Static } from 'typebox';
import { ExecuteBody } from './execute.js';

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

export type ExecuteFrame = Static<typeof ExecuteFrame>;
export type InputFrame = Static<typeof InputFrame>;
export type InterruptFrame = Static<typeof InterruptFrame>;
export type AttachFrame = Static<typeof AttachFrame>;
export type ClientFrame = ExecuteFrame | InputFrame | InterruptFrame | AttachFrame;

/** Every frame a client may send, by its `type`. */
export const CLIENT_FRAMES = { execute: ExecuteFrame, input: InputFrame, interrupt: InterruptFrame, attach: AttachFrame } as const;

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

export const RequestErrorFrame = Type.Object(
  {
    type: Type.Literal('request_error'),
    request_id: Type.Union([Type.String(), Type.Null()], {
      description: "The refused frame's, or null when it had none or could not be read",
    }),
    execution_id: Type.Optional(Type.String({ description: "The refused frame's, when it named one" })),
    status: Type.Integer({ description: 'The HTTP status the same request gets over HTTP' }),
    code: Type.String({ description: 'The same stable code as over HTTP, e.g. ERR_CONTEXT_NOT_FOUND' }),
    message: Type.String(),
  },
  { title: 'RequestErrorFrame', description: 'A frame was refused; the socket stays open' },
);

/** For the OpenAPI description of `GET /ws`. */
export const WsClientFrame = Type.Union([ExecuteFrame, InputFrame, InterruptFrame, AttachFrame], { $id: 'WsClientFrame' });
export const WsServerFrame = Type.Union(
  [
    AcceptedFrame,
    RequestErrorFrame,
    Type.Intersect([Type.Ref('ExecutionEvent'), Type.Object({ execution_id: Type.String() })], {
      title: 'ExecutionEventFrame',
      description: 'An event of the execution, exactly as on POST /execute, with the execution it belongs to',
    }),
  ],
  { $id: 'WsServerFrame' },
);
