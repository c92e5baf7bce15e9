import type { Static } from 'typebox';
import { InvalidRequestError } from '../errors.js';
import type { StartProcess } from '../processes/manager.js';
import type { ProcessOwner } from '../processes/process.js';
import type { StartProcessBody } from '../schemas/processes.js';

/**
 * The fields of a start request as the API names them: POST /processes's body, which the
 * WebSocket's `process_start` frame carries too and MCP's command tools fill in part. Whether
 * the answer streams or not (`background`) is the HTTP door's business.
 */
export type ProcessFields = Omit<Static<typeof StartProcessBody>, 'background' | 'context_id'>;

/** The context a request binds its process to, as the door found it. */
export interface BoundContext {
  id: string;
  cwd: string;
}

/** What every door hands the process manager: the one place a start request is read. */
export function toStartProcess(
  fields: ProcessFields,
  options: { owner: ProcessOwner; context?: BoundContext | undefined; background?: boolean | undefined },
): StartProcess {
  if ((fields.command === undefined) === (fields.cmd === undefined))
    throw new InvalidRequestError('send either command or cmd (with args)');
  if (fields.command !== undefined && fields.args !== undefined) throw new InvalidRequestError('args go with cmd, not with command');
  const { context } = options;
  return {
    ...(fields.command !== undefined ? { cmd: '/bin/bash', args: ['-c', fields.command] } : { cmd: fields.cmd!, args: fields.args }),
    envs: fields.envs,
    cwd: fields.cwd ?? context?.cwd,
    pty: fields.pty ?? undefined,
    tag: fields.tag,
    stdin: fields.stdin,
    timeoutMs: fields.timeout === undefined ? undefined : Math.max(1, Math.ceil(fields.timeout * 1000)),
    // Bound to a context, it dies with the context; otherwise with the door's owner.
    owner: context ? { kind: 'context', id: context.id } : options.owner,
    // Nobody follows a background process as it runs: the client's going away ends nothing.
    onDisconnect: options.background ? 'continue' : (fields.on_disconnect ?? 'kill'),
  };
}
