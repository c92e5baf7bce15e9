import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { ApiError, ProcessInputError } from '../../errors.js';
import type { ProcessManager } from '../../processes/manager.js';
import type { ManagedProcess } from '../../processes/process.js';
import {
  ConnectResponseSchema,
  Process,
  ProcessEvent_EndEventSchema,
  ProcessEventSchema,
  Signal,
  StartResponseSchema,
  type ProcessEvent,
  type ProcessInput,
  type ProcessSelector,
} from './gen/envd/process/process_pb.js';
import { endFields, KEEPALIVE, keepaliveMs, withKeepalive } from './wire.js';

/** The longest a Node timer holds (2^31 - 1 ms, ~24.8 days): a longer deadline is no deadline to keep. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * envd's `process.Process` over the processes domain, as e2b's SDKs call it (docs/e2b.md):
 * commands.run/start and pty.create are `Start`, re-attaching is `Connect`, and the rest act on a
 * process found by pid or tag. Processes started here belong to the server and outlive the
 * stream that started them, as envd's do; `Connect-Timeout-Ms` is a process's lifetime.
 */
export function processService(processes: ProcessManager): ServiceImpl<typeof Process> {
  const find = (selector: ProcessSelector | undefined): ManagedProcess => {
    const chosen = selector?.selector;
    if (chosen?.case === 'pid') {
      const found = processes.findByPid(chosen.value);
      if (found) return found;
      throw new ConnectError(`process with pid ${chosen.value} not found`, Code.NotFound);
    }
    if (chosen?.case === 'tag') {
      const found = processes.findByTag(chosen.value);
      if (found) return found;
      throw new ConnectError(`process with tag ${JSON.stringify(chosen.value.slice(0, 256))} not found`, Code.NotFound);
    }
    throw new ConnectError('a process selector (pid or tag) is required', Code.InvalidArgument);
  };

  const write = async (process: ManagedProcess, input: ProcessInput | undefined): Promise<void> => {
    const chosen = input?.input;
    if (chosen?.case !== 'stdin' && chosen?.case !== 'pty')
      throw new ConnectError('input (stdin or pty) is required', Code.InvalidArgument);
    await process.write(Buffer.from(chosen.value.buffer, chosen.value.byteOffset, chosen.value.byteLength), chosen.case).catch(rethrow);
  };

  return {
    async *start(request, context) {
      const config = request.process;
      if (!config) throw new ConnectError('process (cmd, args, envs, cwd) is required', Code.InvalidArgument);
      const size = request.pty?.size;
      const deadline = context.timeoutMs();
      const process = await processes
        .start({
          cmd: config.cmd,
          args: config.args,
          envs: config.envs,
          cwd: config.cwd,
          pty: request.pty ? { cols: size?.cols ?? 80, rows: size?.rows ?? 24 } : undefined,
          tag: request.tag,
          stdin: request.stdin ?? true,
          timeoutMs: deadline === undefined ? undefined : Math.min(Math.max(deadline, 1), MAX_TIMEOUT_MS),
          owner: { kind: 'server' },
          onDisconnect: 'continue',
        })
        .catch(rethrow);
      for await (const event of events(process, { from: 0, requester: true }, context)) yield create(StartResponseSchema, { event });
    },

    async *connect(request, context) {
      const process = find(request.process);
      // Output from now on, as envd sends it: what nobody was reading is not replayed.
      for await (const event of events(process, { from: process.log.length, requester: false }, context)) {
        yield create(ConnectResponseSchema, { event });
      }
    },

    async list() {
      return {
        processes: processes
          .list({ running: true })
          .filter((process) => process.pid !== undefined)
          .map((process) => ({
            config: { cmd: process.config.cmd, args: process.config.args, envs: process.config.envs, cwd: process.config.cwd },
            pid: process.pid,
            tag: process.tag,
          })),
      };
    },

    async update(request) {
      const process = find(request.process);
      const size = request.pty?.size;
      if (!size) throw new ConnectError('pty.size (cols, rows) is required', Code.InvalidArgument);
      try {
        process.resize(size.cols, size.rows);
      } catch (error) {
        rethrow(error);
      }
      return {};
    },

    async streamInput(requests) {
      let process: ManagedProcess | undefined;
      for await (const message of requests) {
        const event = message.event;
        if (event.case === 'start') process = find(event.value.process);
        else if (event.case === 'data') {
          if (!process) throw new ConnectError('the first message must be start, naming the process', Code.InvalidArgument);
          await write(process, event.value.input);
        }
      }
      return {};
    },

    async sendInput(request) {
      await write(find(request.process), request.input);
      return {};
    },

    async sendSignal(request) {
      const process = find(request.process);
      // envd knows these two; the tree goes with the process here, not the process alone.
      if (request.signal === Signal.SIGTERM) process.signal('terminate');
      else if (request.signal === Signal.SIGKILL) process.signal('kill');
      else throw new ConnectError(`invalid signal: ${Signal[request.signal] ?? request.signal}`, Code.Unimplemented);
      return {};
    },

    async closeStdin(request) {
      const process = find(request.process);
      try {
        process.closeStdin();
      } catch (error) {
        // envd's code for a terminal, whose input ends with Ctrl+D instead.
        if (error instanceof ProcessInputError) throw new ConnectError(error.message, Code.Unknown);
        rethrow(error);
      }
      return {};
    },
  };
}

/**
 * A process's events as envd streams them: `start` with the pid first, then its output as
 * `data`, then one `end`; `keepalive` whenever nothing else went out for the client's
 * `Keepalive-Ping-Interval`. A process killed at its deadline ends the stream with
 * `deadline_exceeded` (the SDK's TimeoutError) rather than an end event.
 */
async function* events(
  process: ManagedProcess,
  options: { from: number; requester: boolean },
  context: HandlerContext,
): AsyncGenerator<ProcessEvent> {
  yield event({ case: 'start', value: { pid: process.pid ?? 0 } });
  let ended = false;
  let end: ReturnType<typeof endFields> | undefined;
  const entries = process.read({ ...options, signal: context.signal });
  for await (const entry of withKeepalive(entries, keepaliveMs(context.requestHeader.get('keepalive-ping-interval')))) {
    if (entry === KEEPALIVE) {
      yield event({ case: 'keepalive', value: {} });
      continue;
    }
    const output = entry.event;
    switch (output.type) {
      case 'stdout':
      case 'stderr':
        yield event({ case: 'data', value: { output: { case: output.type, value: Buffer.from(output.text, 'utf8') } } });
        break;
      case 'pty':
        yield event({ case: 'data', value: { output: { case: 'pty', value: Buffer.from(output.data, 'base64') } } });
        break;
      case 'exit':
        // Held until the log says whether the deadline killed it.
        end = endFields(output.exit_code, output.signal);
        break;
      case 'error':
        if (output.name === 'TimeoutError') throw new ConnectError(output.value, Code.DeadlineExceeded);
        throw new ConnectError(output.value, Code.Internal);
      case 'end_of_execution':
        ended = true;
        break;
      default:
        break;
    }
    if (ended) break;
  }
  // The deadline (or the client's going) ended the reading: say so, never a clean end without `end`.
  if (context.signal.aborted) throw ConnectError.from(context.signal.reason, Code.Canceled);
  // A process that had ended before this reader came (Connect to a finished one) has its end
  // in the part of the log the reader skipped: its info has the same.
  if (end === undefined && process.state === 'exited') end = endFields(process.info.exit_code, process.info.signal ?? 'SIGKILL');
  if (end) yield event({ case: 'end', value: create(ProcessEvent_EndEventSchema, end) });
}

function event(value: MessageInitShape<typeof ProcessEventSchema>['event']): ProcessEvent {
  return create(ProcessEventSchema, { event: value });
}

/** The domain's refusals in Connect's codes, with their messages. */
function rethrow(error: unknown): never {
  if (error instanceof ConnectError) throw error;
  // envd answers input to a process that cannot take it (and a resize of a non-terminal) with `internal`.
  if (error instanceof ProcessInputError) throw new ConnectError(error.message, Code.Internal);
  if (error instanceof ApiError) throw new ConnectError(error.message, codeOf(error.statusCode), undefined, undefined, error);
  throw ConnectError.from(error);
}

function codeOf(status: number): Code {
  switch (status) {
    case 400:
    case 413:
      return Code.InvalidArgument;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.NotFound;
    case 409:
      return Code.FailedPrecondition;
    case 429:
      return Code.ResourceExhausted;
    case 503:
      return Code.Unavailable;
    default:
      return Code.Internal;
  }
}
