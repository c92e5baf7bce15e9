import type { KernelMessage } from '@jupyterlab/services';
import { encodedStreamText, type EncodedText } from './wire.js';

/**
 * What a kernel emits while it runs a request, in words of its own rather than Jupyter's
 * message types: the rest of the server knows outputs, not IOPub messages.
 */
export type KernelOutput =
  /** The kernel took the request and numbered it (Jupyter's execute_input echo). */
  | { kind: 'execution_count'; count: number }
  | StreamOutput
  /** A value to show: the last expression's (`main`) or one displayed along the way. */
  | { kind: 'result'; main: boolean; data: Record<string, unknown> }
  | { kind: 'error'; name: string; value: string; traceback: string[] };

export interface StreamOutput {
  kind: 'stream';
  name: 'stdout' | 'stderr';
  text: string;
  /** When the kernel wrote it (ISO 8601), or when it arrived if the kernel did not say. */
  timestamp: string;
  /** The text as the kernel encoded it, when the socket decoder kept it (see wire.ts). */
  encoded?: EncodedText;
}

/** How the kernel answered a request to run code. */
export interface ExecuteReply {
  /**
   * `dropped`: the kernel went idle without a reply. ipykernel does that when a KeyboardInterrupt
   * (or another exception) is raised in its own handler rather than in the code: an interrupt
   * that lands just before the code starts or just after it ended. The code ran partly or not at all.
   */
  status: 'ok' | 'error' | 'aborted' | 'dropped';
  /** The text/plain value of each user expression the kernel evaluated without an error. */
  userExpressions: Record<string, string>;
  /** With status `error`: what was raised. */
  error?: { name: string; value: string };
}

/**
 * The output an IOPub message carries, or undefined for messages that carry none for a client
 * (status, clear_output, comms).
 */
export function toKernelOutput(msg: KernelMessage.IIOPubMessage): KernelOutput | undefined {
  switch (msg.header.msg_type) {
    case 'execute_input': {
      const content = msg.content as KernelMessage.IExecuteInputMsg['content'];
      return { kind: 'execution_count', count: Number(content.execution_count) };
    }
    case 'stream': {
      const content = msg.content as KernelMessage.IStreamMsg['content'];
      const output: StreamOutput = {
        kind: 'stream',
        name: content.name === 'stderr' ? 'stderr' : 'stdout',
        text: multilineText(content.text),
        timestamp: timestampOf(msg),
      };
      const encoded = encodedStreamText(content);
      if (encoded !== undefined) output.encoded = encoded;
      return output;
    }
    case 'execute_result': {
      const content = msg.content as KernelMessage.IExecuteResultMsg['content'];
      return { kind: 'result', main: true, data: content.data };
    }
    case 'display_data':
    case 'update_display_data': {
      const content = msg.content as KernelMessage.IDisplayDataMsg['content'];
      return { kind: 'result', main: false, data: content.data };
    }
    case 'error': {
      const content = msg.content as KernelMessage.IErrorMsg['content'];
      return { kind: 'error', name: content.ename, value: content.evalue, traceback: content.traceback };
    }
    default:
      return undefined;
  }
}

/** The neutral form of an execute_reply's content. */
export function toExecuteReply(content: KernelMessage.IExecuteReplyMsg['content']): ExecuteReply {
  const userExpressions: Record<string, string> = {};
  if (content.status === 'ok') {
    for (const [name, value] of Object.entries(content.user_expressions ?? {})) {
      const entry = value as { status?: unknown; data?: Record<string, unknown> } | null;
      const plain = entry?.status === 'ok' ? entry.data?.['text/plain'] : undefined;
      if (typeof plain === 'string') userExpressions[name] = plain;
    }
  }
  // 'abort' is the older protocol's spelling of 'aborted'.
  const status = content.status === 'ok' || content.status === 'error' ? content.status : 'aborted';
  const reply: ExecuteReply = { status, userExpressions };
  if (content.status === 'error') reply.error = { name: content.ename, value: content.evalue };
  return reply;
}

/** nbformat allows multiline strings as arrays of lines. */
function multilineText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((line) => typeof line === 'string')) return value.join('');
  return JSON.stringify(value);
}

function timestampOf(msg: KernelMessage.IMessage): string {
  const date = msg.header.date;
  return typeof date === 'string' && date !== '' ? date : new Date().toISOString();
}
