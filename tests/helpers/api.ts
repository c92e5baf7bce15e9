import { Ajv, type ValidateFunction } from 'ajv';
import { afterAll, inject } from 'vitest';

export const baseUrl = inject('baseUrl');
export const accessToken = inject('accessToken');
export const workspaceDir = inject('workspaceDir');

/** Headers every request carries: the access token when the server requires one. */
export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return accessToken ? { authorization: `Bearer ${accessToken}`, ...extra } : extra;
}

export interface ExecutionEvent {
  type: string;
  [key: string]: unknown;
}

export async function request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${baseUrl}${path}`, {
    method,
    headers: authHeaders(body === undefined ? headers : { 'content-type': 'application/json', ...headers }),
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export async function json<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await request(method, path, body);
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

let eventValidator: Promise<ValidateFunction> | undefined;

/**
 * The `ExecutionEvent` schema as the server documents it in /openapi.json, compiled: every
 * event the suite reads is checked against it, so the stream cannot drift from its description.
 */
function documentedEventSchema(): Promise<ValidateFunction> {
  eventValidator ??= (async () => {
    const response = await fetch(`${baseUrl}/openapi.json`, { headers: authHeaders() });
    if (response.status !== 200) throw new Error(`GET /openapi.json answered ${response.status}`);
    const document = (await response.json()) as { components: unknown };
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addSchema({ $id: 'openapi', components: document.components });
    return ajv.compile({ $ref: 'openapi#/components/schemas/ExecutionEvent' });
  })();
  return eventValidator;
}

/**
 * Reads an NDJSON response, calling `onEvent` as each line arrives. Every event from the suite's
 * server must match the documented ExecutionEvent schema.
 */
export async function readEvents(response: Response, onEvent?: (event: ExecutionEvent) => void): Promise<ExecutionEvent[]> {
  // The suite's server is checked; servers a test starts for itself, or the container tests'
  // own containers, have addresses (and tokens) of their own.
  const validate = baseUrl && response.url.startsWith(`${baseUrl}/`) ? await documentedEventSchema() : undefined;
  const events: ExecutionEvent[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim() === '') continue;
      const event = JSON.parse(line) as ExecutionEvent;
      if (validate && !validate(event)) {
        throw new Error(
          `event does not match the documented ExecutionEvent schema: ${line.slice(0, 300)}\n${JSON.stringify(validate.errors?.slice(0, 5))}`,
        );
      }
      events.push(event);
      onEvent?.(event);
    }
  }
  if (buffered.trim() !== '') throw new Error(`stream ended inside a line: ${buffered.slice(0, 200)}`);
  return events;
}

/** Runs code and returns every event, keepalives left out. Fails on a non-200 answer. */
export async function execute(body: Record<string, unknown>): Promise<ExecutionEvent[]> {
  const response = await request('POST', '/execute', body);
  if (response.status !== 200) throw new Error(`POST /execute answered ${response.status}: ${await response.text()}`);
  return (await readEvents(response)).filter((event) => event.type !== 'keepalive');
}

/**
 * Starts `code` in the background, interrupts it `delayMs` after POST /execute answered (0 for
 * at once) and returns the names of the errors it ended with.
 */
export async function interruptAfterStart(contextId: string, code: string, delayMs: number): Promise<string[]> {
  const started = await json<{ execution_id: string }>('POST', '/execute', { context_id: contextId, code, background: true });
  if (started.status !== 202) throw new Error(`POST /execute answered ${started.status}: ${JSON.stringify(started.body)}`);
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  const interrupted = await json('POST', `/executions/${started.body.execution_id}/interrupt`);
  if (interrupted.status !== 200) throw new Error(`interrupt answered ${interrupted.status}: ${JSON.stringify(interrupted.body)}`);
  const events = await readEvents(await request('GET', `/executions/${started.body.execution_id}/events`));
  return errorsOf(events).map((event) => String(event.name));
}

export function stdoutOf(events: ExecutionEvent[]): string {
  return events
    .filter((event) => event.type === 'stdout')
    .map((event) => event.text as string)
    .join('');
}

export function errorsOf(events: ExecutionEvent[]): ExecutionEvent[] {
  return events.filter((event) => event.type === 'error');
}

export function mainResult(events: ExecutionEvent[]): ExecutionEvent | undefined {
  return events.find((event) => event.type === 'result' && event.is_main_result === true);
}

export async function createContext(body: Record<string, unknown> = {}): Promise<{ id: string; language: string; cwd: string }> {
  const { status, body: context } = await json<{ id: string; language: string; cwd: string }>('POST', '/contexts', body);
  if (status !== 200) throw new Error(`POST /contexts answered ${status}: ${JSON.stringify(context)}`);
  return context;
}

export async function deleteContext(id: string): Promise<void> {
  await request('DELETE', `/contexts/${id}`);
}

/**
 * The contexts one test file makes, deleted once the file is done: `newContext(language)` creates
 * one, `track(id)` adopts one created another way. Call it at the top of the file.
 */
export function fileContexts(): { newContext: (language: string) => Promise<string>; track: (id: string) => void } {
  const created: string[] = [];
  afterAll(async () => {
    await Promise.all(created.map((id) => deleteContext(id)));
  });
  return {
    newContext: async (language) => {
      const { id } = await createContext({ language });
      created.push(id);
      return id;
    },
    track: (id) => void created.push(id),
  };
}
