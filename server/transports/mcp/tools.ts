import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import type { ContextInfo, KernelContext } from '../../contexts/context.js';
import type { ContextRegistry } from '../../contexts/registry.js';
import type { TargetResolver } from '../../executions/execution.js';
import type { ExecutionManager } from '../../executions/manager.js';
import type { Logger } from '../../logger.js';
import type { ProcessManager } from '../../processes/manager.js';
import type { ProcessOwner } from '../../processes/process.js';
import type { WorkspaceFiles } from '../../workspace/files.js';
import { MAX_LIST_LIMIT } from '../../workspace/listing.js';
import { contractErrorOf } from '../errors.js';
import { toStartExecution } from '../start-execution.js';
import { formatBytes, json, text, textError } from './answers.js';
import { registerCommandTools } from './command-tools.js';
import { deleteFile, listFiles, readFile, writeFile } from './file-tools.js';
import { ExecutionOutput } from './output.js';
import { ProgressReporter } from './progress.js';

export interface ToolOptions {
  maxTextChars: number;
  maxFileBytes: number;
  maxUploadBytes: number;
  /** Silence after which a running execution reports progress anyway; 0: never. */
  heartbeatMs: number;
}

/**
 * What the tools of one MCP session act on. As a TargetResolver it finds where execute_code
 * runs: the context named, or the session's own context of the language, created on first use.
 */
export interface ToolHost extends TargetResolver {
  contexts: ContextRegistry;
  files: WorkspaceFiles;
  executions: ExecutionManager;
  processes: ProcessManager;
  logger: Logger;
  options: ToolOptions;
  /** The session, as the owner of the processes it starts: they are killed when it ends. */
  processOwner(): ProcessOwner;
  /** Makes a context the session's: it is deleted when the session ends. */
  adopt(context: KernelContext): void;
  owns(contextId: string): boolean;
  /** Scheme and authority this server is reached at, for the URLs the answers give. */
  baseUrl(): string;
}

/** Entries of a list_files page unless the call asks otherwise: a long listing costs a model dearly. */
const DEFAULT_MCP_LIST_LIMIT = 200;

/** Progress is gathered this long before a notification goes out. */
const PROGRESS_BATCH_MS = 250;
/** Output characters one progress notification carries at most. */
const PROGRESS_MAX_CHARS = 2000;

export const INSTRUCTIONS = `This server runs code in persistent Jupyter kernels ("contexts") and manages the files of a workspace.
- execute_code runs code; variables, imports and loaded data persist between calls, like notebook cells. Without context_id it uses this session's own Python context, which other clients cannot see; it is deleted when the session ends.
- The kernels' working directory is the workspace: files written by code are visible to list_files/read_file, and files written with write_file can be opened by code with the same relative path.
- matplotlib figures come back as images. Print or return what you need to see; write large data to files instead of printing it.
- run_command runs a shell command in the workspace and returns its output and exit code; start_command runs one in the background (a server, a long build), read with read_command_output and stopped with kill_command. This session's commands are killed when it ends.`;

const contextId = z.string().min(1).describe('Id of a context, as returned by create_context or list_contexts.');
const workspacePath = z
  .string()
  .min(1)
  .describe(
    "Path relative to the workspace root, with '/' separators, e.g. 'data/input.csv'. '.' is the root. Paths cannot leave the workspace.",
  );

/** Registers every tool on `server`. Handlers never throw: failures are `isError` answers. */
export function registerTools(server: McpServer, host: ToolHost): void {
  const guard =
    <A>(name: string, handler: (args: A, extra: ToolExtra) => Promise<CallToolResult>) =>
    async (args: A, extra: ToolExtra): Promise<CallToolResult> => {
      try {
        return await handler(args, extra);
      } catch (error) {
        return toolError(name, error, host.logger);
      }
    };

  /** Progress notifications for a call that asked for them (with a progress token). */
  const progressFor = (extra: ToolExtra): ProgressReporter | undefined => {
    const token = extra._meta?.progressToken;
    if (token === undefined) return undefined;
    return new ProgressReporter(
      (notice) => extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, ...notice } }),
      { batchMs: PROGRESS_BATCH_MS, heartbeatMs: host.options.heartbeatMs, maxChars: PROGRESS_MAX_CHARS },
    );
  };

  server.registerTool(
    'execute_code',
    {
      title: 'Run code',
      description:
        'Run code in a persistent Jupyter kernel and get back what it printed (stdout, stderr), its results and any error. ' +
        "State persists between calls in the same context, like notebook cells. Without context_id, the code runs in this session's own context of the language (Python by default), created on first use. " +
        'The value of the last expression is returned as the result; matplotlib figures and other PNG/JPEG outputs come back as images. ' +
        'A failure comes back as an error with the exception name, message and traceback. Very long output is cut in the middle; write large data to a file instead of printing it.',
      inputSchema: z
        .object({
          code: z.string().describe('The code to run, as in a notebook cell. May span many lines.'),
          language: z
            .string()
            .min(1)
            .optional()
            .describe(
              "Language of this session's context to run in: 'python' (default) or another installed kernel such as 'r'. Not together with context_id.",
            ),
          context_id: contextId
            .optional()
            .describe(
              "Run in this context (from create_context or list_contexts) instead of this session's own. Not together with language.",
            ),
          timeout: z
            .number()
            .positive()
            .optional()
            .describe(
              'Seconds after which the code is interrupted and a TimeoutError returned. Variables defined before stay. Default: no limit unless the server sets one.',
            ),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: true },
    },
    guard('execute_code', async ({ code, language, context_id: id, timeout }, extra) => {
      if (id !== undefined && language !== undefined) {
        return textError('Give either context_id or language, not both: context_id already determines the language.');
      }
      const progress = progressFor(extra);
      try {
        // The call is the execution's requester: nothing of its output is dropped for it, and
        // when the client cancels the call (the signal aborts) the code is interrupted.
        const execution = await host.executions.start(
          toStartExecution({ code, context_id: id, language, timeout, on_disconnect: 'interrupt' }),
          host,
        );
        const output = new ExecutionOutput({ maxTextChars: host.options.maxTextChars });
        for await (const { event } of execution.read({ requester: true, signal: extra.signal })) {
          output.add(event);
          progress?.observe(event);
        }
        return output.toResult(
          `All of the output: GET ${host.baseUrl()}/executions/${execution.id}/events (NDJSON, with the same access token), while the server keeps the execution`,
        );
      } finally {
        progress?.stop();
      }
    }),
  );

  registerCommandTools(server, host, { guard, progress: progressFor });

  server.registerTool(
    'list_contexts',
    {
      title: 'List contexts',
      description:
        'List the contexts (kernels, each with its own variables) on this server: id, language, working directory, and whether it belongs to this session. ' +
        "This session's contexts are deleted when the session ends; the others belong to other clients or to the server.",
      inputSchema: z.object({}).strict(),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guard('list_contexts', async () => json(host.contexts.list().map((info) => describeContext(info, host)))),
  );

  server.registerTool(
    'create_context',
    {
      title: 'Create a context',
      description:
        'Start a new, empty context: a fresh kernel with its own variables, separate from every other. Returns its id, to pass as context_id to execute_code. ' +
        'Useful to run something apart from your main state, or in another working directory. It belongs to this session and is deleted when the session ends.',
      inputSchema: z
        .object({
          language: z.string().min(1).optional().describe("Kernel language: 'python' (default) or another installed one such as 'r'."),
          cwd: z
            .string()
            .min(1)
            .optional()
            .describe(
              'Working directory of the kernel: relative to the workspace root, where a missing directory is created, or an absolute path to an existing directory (outside the workspace too, e.g. /tmp). Default: the workspace root.',
            ),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    guard('create_context', async ({ language, cwd }) => {
      const context = await host.contexts.create(language, cwd);
      host.adopt(context);
      return json(describeContext(context.info, host));
    }),
  );

  server.registerTool(
    'restart_context',
    {
      title: 'Restart a context',
      description:
        "Restart a context's kernel: every variable and import in it is lost, its id and working directory stay. " +
        'Use it when the kernel is stuck, out of memory, or you want a clean state. Code running in it ends with an error.',
      inputSchema: z.object({ context_id: contextId }).strict(),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    guard('restart_context', async ({ context_id: id }) => json(describeContext((await host.contexts.restart(id)).info, host))),
  );

  server.registerTool(
    'interrupt',
    {
      title: 'Interrupt a context',
      description:
        'Interrupt the code running in a context, as Ctrl-C would: the running execution ends with a KeyboardInterrupt, and the variables stay. ' +
        'Does nothing when nothing runs.',
      inputSchema: z.object({ context_id: contextId }).strict(),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guard('interrupt', async ({ context_id: id }) => {
      const context = host.contexts.get(id);
      await context.interrupt();
      return text(`Interrupted context ${context.id}.`);
    }),
  );

  server.registerTool(
    'list_files',
    {
      title: 'List files',
      description:
        "List a directory of the workspace (the kernels' working directory): subdirectories first, then files with their size in bytes and modification time (UTC). " +
        'Large directories come in pages: the answer then ends with the cursor of the next page.',
      inputSchema: z
        .object({
          path: workspacePath.default('.'),
          limit: z.number().int().min(1).max(MAX_LIST_LIMIT).default(DEFAULT_MCP_LIST_LIMIT).describe('Entries per page.'),
          cursor: z.string().min(1).optional().describe('Where to continue, as a previous answer gave it.'),
        })
        .strict(),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guard('list_files', async ({ path, limit, cursor }) => listFiles(host.files, path, limit, cursor)),
  );

  server.registerTool(
    'read_file',
    {
      title: 'Read a file',
      description:
        'Read a file of the workspace. Text comes back as text (long files are cut, with a note of how to read the rest); PNG, JPEG, GIF and WebP images as images; ' +
        `other files as an embedded resource up to ${formatBytes(host.options.maxFileBytes)}, larger ones as a download URL. To analyse data files, prefer loading them with execute_code.`,
      inputSchema: z.object({ path: workspacePath }).strict(),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guard('read_file', async ({ path }) => readFile(host.files, path, { ...host.options, baseUrl: host.baseUrl() })),
  );

  server.registerTool(
    'write_file',
    {
      title: 'Write a file',
      description:
        'Create or replace a file in the workspace, creating parent directories. The file is replaced whole, never half-written. ' +
        'Code run with execute_code sees it at the same relative path.',
      inputSchema: z
        .object({
          path: workspacePath,
          content: z.string().describe("The file's content: text, or the bytes in base64 when encoding is 'base64'."),
          encoding: z
            .enum(['utf8', 'base64'])
            .default('utf8')
            .describe("'utf8' (default): content is written as UTF-8 text. 'base64': content is decoded from base64, for binary files."),
        })
        .strict(),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guard('write_file', async ({ path, content, encoding }) => writeFile(host.files, path, content, encoding, host.options.maxUploadBytes)),
  );

  server.registerTool(
    'delete_file',
    {
      title: 'Delete a file',
      description:
        'Delete a file or a symlink (never its target), or a directory with everything in it, from the workspace. The workspace root cannot be deleted.',
      inputSchema: z.object({ path: workspacePath }).strict(),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    guard('delete_file', async ({ path }) => deleteFile(host.files, path)),
  );
}

type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

function describeContext(info: ContextInfo, host: ToolHost) {
  return { ...info, this_session: host.owns(info.id) };
}

/**
 * A failure as the model sees it: the coded errors of the server (a missing file, a path
 * outside the workspace, an unknown context) with their message and code, which say what to
 * change; anything else as an internal error, logged with its stack and not shown.
 */
function toolError(tool: string, error: unknown, logger: Logger): CallToolResult {
  const answer = contractErrorOf(error);
  if (answer) {
    if (answer.statusCode >= 500) logger.warn({ err: error, tool }, 'tool failed');
    return textError(`${answer.message} (${answer.code})`);
  }
  logger.error({ err: error, tool }, 'tool failed');
  return textError(`Internal error in ${tool}; the server log has the details.`);
}
