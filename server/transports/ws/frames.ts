import { Compile } from 'typebox/compile';
import { InvalidFrameError, InvalidJsonError, ValidationError } from '../../errors.js';
import { CLIENT_FRAMES, type ClientFrame } from '../../schemas/ws.js';

const FRAME_TYPES = Object.keys(CLIENT_FRAMES) as Array<keyof typeof CLIENT_FRAMES>;
const validators = Object.fromEntries(FRAME_TYPES.map((type) => [type, Compile(CLIENT_FRAMES[type])])) as {
  [T in keyof typeof CLIENT_FRAMES]: ReturnType<typeof Compile<(typeof CLIENT_FRAMES)[T]>>;
};

/** What a refused frame still tells: enough to address the `request_error` to it. */
export interface FrameIds {
  request_id: string | null;
  execution_id?: string;
  process_id?: string;
  watch_id?: string;
}

/** A frame that cannot be acted on: the coded error to answer with, and the ids it carried. */
export class FrameRefusal {
  constructor(
    readonly error: Error,
    readonly ids: FrameIds,
  ) {}
}

/**
 * Reads one text frame: JSON, an object, a known `type`, the fields of that type. Anything else
 * is a {@link FrameRefusal} carrying the code HTTP gives the same mistake in a request body
 * (ERR_INVALID_JSON, ERR_VALIDATION), so that one client-side error path serves both transports.
 */
export function parseFrame(text: string): ClientFrame | FrameRefusal {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return new FrameRefusal(new InvalidJsonError(`The frame is not valid JSON: ${(error as Error).message}`), { request_id: null });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new FrameRefusal(new ValidationError('frame must be an object with a "type"'), { request_id: null });
  }
  const record = value as Record<string, unknown>;
  const ids = idsOf(record);
  const type = record.type;
  if (typeof type !== 'string' || !(FRAME_TYPES as string[]).includes(type)) {
    const got = type === undefined ? 'no "type"' : `"type" ${JSON.stringify(type).slice(0, 64)}`;
    return new FrameRefusal(new InvalidFrameError(`Unknown frame: ${got}; expected one of ${FRAME_TYPES.join(', ')}`), ids);
  }
  const validator = validators[type as keyof typeof CLIENT_FRAMES];
  if (validator.Check(record)) return record;
  return new FrameRefusal(new ValidationError(describeFirstError(type, validator.Errors(record))), ids);
}

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** "execute frame/code must be string", worded like Fastify's "body/code must be string". */
function describeFirstError(type: string, errors: readonly SchemaError[]): string {
  // A property the schema does not allow is reported twice (as `false` and as the object's
  // additionalProperties); the object's own wording names it.
  const error = errors.find((candidate) => candidate.keyword !== 'boolean') ?? errors[0];
  if (!error) return `${type} frame is invalid`;
  const where = `${type} frame${error.instancePath}`;
  if (error.keyword === 'required') {
    const missing = (error.params.requiredProperties as string[] | undefined) ?? [];
    return `${where} must have required ${missing.length === 1 ? 'property' : 'properties'} ${missing.map((name) => `'${name}'`).join(', ')}`;
  }
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params.additionalProperties as string[] | undefined) ?? [];
    return `${where} must not have additional properties: ${extra.map((name) => `'${name}'`).join(', ')}`;
  }
  return `${where} ${error.message}`;
}

/** The ids of a frame, when they are strings, so that even a refused frame's answer can be matched. */
function idsOf(record: Record<string, unknown>): FrameIds {
  const ids: FrameIds = { request_id: typeof record.request_id === 'string' ? record.request_id.slice(0, 128) : null };
  if (typeof record.execution_id === 'string') ids.execution_id = record.execution_id.slice(0, 128);
  if (typeof record.process_id === 'string') ids.process_id = record.process_id.slice(0, 128);
  if (typeof record.watch_id === 'string') ids.watch_id = record.watch_id.slice(0, 128);
  return ids;
}
