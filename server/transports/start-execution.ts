import type { Static } from 'typebox';
import type { StartExecution } from '../executions/manager.js';
import type { ExecuteBody } from '../schemas/execute.js';

/**
 * The fields of an execute request as the API names them: POST /execute's body, which the
 * WebSocket's `execute` frame carries too and MCP's `execute_code` fills in part. Whether the
 * answer streams or not (`background`) is the HTTP door's business, not the execution's.
 */
export type ExecuteFields = Omit<Static<typeof ExecuteBody>, 'background'>;

/** What every door hands the execution manager: the one place an execute request is read. */
export function toStartExecution(fields: ExecuteFields): StartExecution {
  return {
    code: fields.code,
    contextId: fields.context_id,
    language: fields.language,
    envVars: fields.env_vars,
    timeoutSeconds: fields.timeout,
    stdin: fields.stdin,
    onDisconnect: fields.on_disconnect,
    stats: fields.stats,
  };
}
