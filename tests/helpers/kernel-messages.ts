import type { KernelMessage } from '@jupyterlab/services';
import { toExecuteReply, toKernelOutput } from '../../server/jupyter/kernel-output.js';
import { toOutputEvent as outputEventOf, type OutputEvent } from '../../server/runs/events.js';

/** The event a client sees for one IOPub message, through both steps the server takes. */
export function toOutputEvent(msg: KernelMessage.IIOPubMessage): OutputEvent | undefined {
  const output = toKernelOutput(msg);
  return output === undefined ? undefined : outputEventOf(output);
}

/** The user expressions of an execute_reply as the kernel sends them, as the run layer gets them. */
export function userExpressionsOf(userExpressions: Record<string, unknown>): Record<string, string> {
  const content = { status: 'ok', execution_count: 1, user_expressions: userExpressions } as KernelMessage.IExecuteReplyMsg['content'];
  return toExecuteReply(content).userExpressions;
}
