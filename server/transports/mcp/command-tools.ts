import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import type { ProcessManager } from '../../processes/manager.js';
import type { ManagedProcess, ProcessOwner } from '../../processes/process.js';
import type { OutputEvent } from '../../runs/events.js';
import { toStartProcess } from '../start-process.js';
import { json, text } from './answers.js';
import { BoundedText, stripAnsi } from './output.js';
import type { ProgressReporter } from './progress.js';

type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;
type Guard = <A>(
  name: string,
  handler: (args: A, extra: ToolExtra) => Promise<CallToolResult>,
) => (args: A, extra: ToolExtra) => Promise<CallToolResult>;

/** What the command tools of one MCP session act on. */
export interface CommandToolHost {
  processes: ProcessManager;
  /** The session: every process it starts is killed when it ends. */
  processOwner(): ProcessOwner;
  options: { maxTextChars: number };
  baseUrl(): string;
}

/** run_command's timeout unless the call gives one: a model waiting on a server that never exits would wait forever. */
export const DEFAULT_RUN_TIMEOUT_SECONDS = 60;
/** The longest read_command_output waits for new output. */
const MAX_WAIT_SECONDS = 60;
/** How long kill_command waits for the tree to be reaped before it answers. */
const KILL_WAIT_MS = 5000;

const processId = z.string().min(1).max(128).describe('Id of a process, as start_command or list_commands gave it.');
const commandFields = {
  command: z
    .string()
    .min(1)
    .max(256 * 1024)
    .describe('A shell command line, run by /bin/bash -c as the kernels\' user, e.g. "pytest -q tests/".'),
  cwd: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe('Working directory: absolute, or relative to the workspace root. Default: the workspace root.'),
  envs: z.record(z.string(), z.string()).optional().describe('Environment variables added for this command.'),
};

/** Registers the tools that run commands as the kernels' user: in the foreground, and in the background. */
export function registerCommandTools(
  server: McpServer,
  host: CommandToolHost,
  helpers: { guard: Guard; progress: (extra: ToolExtra) => ProgressReporter | undefined },
): void {
  const { guard } = helpers;

  server.registerTool(
    'run_command',
    {
      title: 'Run a shell command',
      description:
        "Run a shell command (bash) in the workspace as the kernels' user and wait for it: returns its stdout, its stderr and its exit code. " +
        `It is killed with every process it started after timeout seconds (default ${DEFAULT_RUN_TIMEOUT_SECONDS}). Not for servers or anything that keeps running: use start_command for those. ` +
        'A command that does not exit 0 comes back as an error. Very long output is cut in the middle; send it to a file instead.',
      inputSchema: z
        .object({
          ...commandFields,
          timeout: z
            .number()
            .positive()
            .max(24 * 3600)
            .default(DEFAULT_RUN_TIMEOUT_SECONDS)
            .describe('Seconds after which the command and its children are killed.'),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    },
    guard('run_command', async ({ command, cwd, envs, timeout }, extra) => {
      const progress = helpers.progress(extra);
      try {
        // The call is the requester: nothing is dropped for it, and a cancelled call kills the command.
        const process = await host.processes.start(
          toStartProcess({ command, cwd, envs, timeout, stdin: false }, { owner: host.processOwner() }),
        );
        const output = new CommandOutput(host.options.maxTextChars);
        for await (const { event } of process.read({ requester: true, signal: extra.signal })) {
          output.add(event);
          progress?.observe(event);
        }
        return output.toResult(`All of the output: GET ${host.baseUrl()}/processes/${process.id}/events, while the server keeps it`);
      } finally {
        progress?.stop();
      }
    }),
  );

  server.registerTool(
    'start_command',
    {
      title: 'Start a command in the background',
      description:
        'Start a shell command (bash) in the background, e.g. a server or a long build, and return its process_id at once. ' +
        'Read its output with read_command_output, write to its stdin with send_command_input, stop it with kill_command. ' +
        'It is killed when this session ends.',
      inputSchema: z
        .object({
          ...commandFields,
          timeout: z
            .number()
            .positive()
            .max(7 * 24 * 3600)
            .optional()
            .describe('Seconds after which it is killed. Default: none.'),
          tag: z.string().min(1).max(256).optional().describe('A name of your own, shown by list_commands.'),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    },
    guard('start_command', async ({ command, cwd, envs, timeout, tag }) => {
      const process = await host.processes.start(
        toStartProcess({ command, cwd, envs, timeout, tag, stdin: true }, { owner: host.processOwner(), background: true }),
      );
      return json({ process_id: process.id, pid: process.pid, next: 'read_command_output with this process_id and from 0' });
    }),
  );

  server.registerTool(
    'read_command_output',
    {
      title: 'Read the output of a background command',
      description:
        'Read what a command printed since index `from` (0: from the start), whether it still runs, and its exit code once it ended. ' +
        'The answer says which `from` to pass next. With wait, waits up to that many seconds for new output or the end.',
      inputSchema: z
        .object({
          process_id: processId,
          from: z.number().int().min(0).default(0).describe('Index to read from: 0, or the `from` the previous answer gave.'),
          wait: z
            .number()
            .min(0)
            .max(MAX_WAIT_SECONDS)
            .default(0)
            .describe(`Seconds to wait for new output when there is none yet (at most ${MAX_WAIT_SECONDS}). Default 0: answer at once.`),
        })
        .strict(),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guard('read_command_output', async ({ process_id: id, from, wait }, extra) => {
      const process = host.processes.get(id);
      if (wait > 0) {
        const stop = AbortSignal.any([extra.signal, AbortSignal.timeout(wait * 1000)]);
        while (process.isRunning && !stop.aborted && !hasOutput(process, from)) await process.log.changed(stop);
      }
      return readOutput(process, from, host.options.maxTextChars);
    }),
  );

  server.registerTool(
    'send_command_input',
    {
      title: "Write to a background command's stdin",
      description:
        'Write text to the stdin of a command started with start_command (add "\\n" to end a line); close_stdin sends EOF after it.',
      inputSchema: z
        .object({
          process_id: processId,
          data: z
            .string()
            .max(1024 * 1024)
            .describe('Text to write, as UTF-8.'),
          close_stdin: z.boolean().default(false).describe('Close stdin after writing (EOF), for programs that read to the end.'),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    guard('send_command_input', async ({ process_id: id, data, close_stdin: close }) => {
      const process = host.processes.get(id);
      const target = process.pty ? 'pty' : 'stdin';
      if (data !== '') await process.write(Buffer.from(data, 'utf8'), target);
      if (close) process.closeStdin();
      return text(`Wrote ${Buffer.byteLength(data)} bytes to ${process.id}${close ? ' and closed its stdin' : ''}.`);
    }),
  );

  server.registerTool(
    'kill_command',
    {
      title: 'Stop a command',
      description:
        'Stop a command and every process it started: kill (default) ends them at once; interrupt (Ctrl-C) or terminate ask them to stop. ' +
        'Answers how it ended.',
      inputSchema: z
        .object({
          process_id: processId,
          signal: z
            .enum(['kill', 'terminate', 'interrupt'])
            .default('kill')
            .describe('kill (SIGKILL), terminate (SIGTERM) or interrupt (SIGINT).'),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guard('kill_command', async ({ process_id: id, signal }) => {
      const process = host.processes.get(id);
      if (!process.isRunning) return text(`${process.id} had ended already: ${describeEnd(process)}.`);
      process.signal(signal);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([process.finished, new Promise((resolve) => (timer = setTimeout(resolve, KILL_WAIT_MS)))]);
      clearTimeout(timer);
      return text(
        process.isRunning
          ? `Sent ${signal} to ${process.id}; it still runs after ${KILL_WAIT_MS / 1000} s (a program may ignore interrupt and terminate: use kill).`
          : `${process.id} ended: ${describeEnd(process)}.`,
      );
    }),
  );

  server.registerTool(
    'list_commands',
    {
      title: 'List commands',
      description:
        'List the commands and terminals on this server, newest first: process_id, pid, command, state, exit code, and whether this session started it. ' +
        'Ended ones are kept for a while.',
      inputSchema: z.object({ running: z.boolean().default(false).describe('Only those still running.') }).strict(),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guard('list_commands', async ({ running }) => {
      const owner = host.processOwner();
      return json(
        host.processes.list({ running }).map((process) => {
          const info = process.info;
          return {
            process_id: info.id,
            pid: info.pid,
            command: info.cmd === '/bin/bash' && info.args[0] === '-c' ? info.args[1] : [info.cmd, ...info.args].join(' '),
            tag: info.tag,
            cwd: info.cwd,
            state: info.state,
            exit_code: info.exit_code,
            signal: info.signal,
            this_session: info.owner.kind === owner.kind && 'id' in owner && 'id' in info.owner && info.owner.id === owner.id,
          };
        }),
      );
    }),
  );
}

const OUTPUT_TYPES = new Set(['stdout', 'stderr', 'pty', 'error']);

/** Whether something a reader would be shown came at or after `from`. */
function hasOutput(process: ManagedProcess, from: number): boolean {
  for (let index = Math.max(from, process.log.firstIndex); index < process.log.length; index++) {
    const type = process.log.at(index)?.type;
    if (type !== undefined && OUTPUT_TYPES.has(type)) return true;
  }
  return false;
}

function describeEnd(process: ManagedProcess): string {
  const { exit_code: code, signal } = process.info;
  return code !== null ? `exit code ${code}` : `killed by ${signal ?? 'a signal'}`;
}

/**
 * The events of a command gathered into run_command's answer: stdout and stderr, each bounded
 * while it arrives (the middle of a long one is cut), then how it ended.
 */
export class CommandOutput {
  private readonly stdout: BoundedText;
  private readonly stderr: BoundedText;
  private exit: { code: number | null; signal: string | null } | undefined;
  private readonly errors: string[] = [];
  private dropped = 0;

  constructor(private readonly maxTextChars: number) {
    this.stdout = new BoundedText(maxTextChars);
    this.stderr = new BoundedText(maxTextChars);
  }

  add(event: OutputEvent): void {
    switch (event.type) {
      case 'stdout':
        this.stdout.append(event.text);
        break;
      case 'stderr':
        this.stderr.append(event.text);
        break;
      case 'pty':
        this.stdout.append(stripAnsi(Buffer.from(event.data, 'base64').toString('utf8')));
        break;
      case 'exit':
        this.exit = { code: event.exit_code, signal: event.signal };
        break;
      case 'error':
        this.errors.push(`${event.name}: ${event.value}`);
        break;
      case 'events_dropped':
        this.dropped += event.count;
        break;
      default:
        break;
    }
  }

  toResult(fullOutput: string): CallToolResult {
    const marker = (stream: string) => (cut: number) =>
      `\n[... ${cut.toLocaleString('en-US')} characters of ${stream} cut here (the answer keeps ${this.maxTextChars.toLocaleString('en-US')}). ${fullOutput} ...]\n`;
    const content: CallToolResult['content'] = [];
    if (!this.stdout.empty) content.push({ type: 'text', text: this.stdout.render(marker('stdout')) });
    if (!this.stderr.empty) content.push({ type: 'text', text: `[stderr]\n${this.stderr.render(marker('stderr'))}` });
    if (this.dropped > 0) content.push({ type: 'text', text: `[${this.dropped} output chunks were dropped]` });
    const end =
      this.exit === undefined
        ? 'the command did not finish'
        : this.exit.code !== null
          ? `exit code ${this.exit.code}`
          : `killed by ${this.exit.signal ?? 'a signal'}`;
    content.push({ type: 'text', text: [`[${end}]`, ...this.errors].join('\n') });
    const failed = this.exit?.code !== 0 || this.errors.length > 0;
    return failed ? { content, isError: true } : { content };
  }
}

/**
 * What a background command printed from index `from`, within `maxTextChars` characters: the
 * events that fit whole (the first one cut if it alone is longer), and the index to read on from.
 */
export function readOutput(process: ManagedProcess, from: number, maxTextChars: number): CallToolResult {
  const { log } = process;
  const lines: string[] = [];
  let index = from;
  let used = 0;
  let cut = 0;
  if (index < log.firstIndex) {
    lines.push(`[${log.firstIndex - index} earlier output chunks left the server's buffer and are lost]`);
    index = log.firstIndex;
  }
  for (; index < log.length; index++) {
    const event = log.at(index)?.event;
    if (!event) continue;
    let piece: string | undefined;
    if (event.type === 'stdout') piece = event.text;
    // Marked on a line of its own, even when stdout stopped mid-line.
    else if (event.type === 'stderr') piece = `${lines.at(-1)?.endsWith('\n') === false ? '\n' : ''}[stderr] ${event.text}`;
    else if (event.type === 'pty') piece = stripAnsi(Buffer.from(event.data, 'base64').toString('utf8'));
    else if (event.type === 'error') piece = `[${event.name}: ${event.value}]\n`;
    if (piece === undefined) continue;
    if (used + piece.length > maxTextChars) {
      if (used > 0) break;
      cut = piece.length - maxTextChars;
      piece = piece.slice(0, maxTextChars);
    }
    lines.push(piece);
    used += piece.length;
  }
  const output = lines.join('');
  const state = process.isRunning
    ? `[running (pid ${process.pid}); read on with from ${index}]`
    : index < log.length
      ? `[ended: ${describeEnd(process)}; more output: read on with from ${index}]`
      : `[ended: ${describeEnd(process)}; all output read]`;
  const body = output === '' ? '(no new output)\n' : output.endsWith('\n') ? output : `${output}\n`;
  const note = cut > 0 ? `[... ${cut.toLocaleString('en-US')} characters of one chunk cut]\n` : '';
  return text(body + note + state);
}
