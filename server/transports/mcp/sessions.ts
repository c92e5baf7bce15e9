import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { KernelContext } from '../../contexts/context.js';
import { DefaultContexts } from '../../contexts/default-contexts.js';
import type { ContextRegistry } from '../../contexts/registry.js';
import type { TargetSelector } from '../../executions/execution.js';
import type { ExecutionManager } from '../../executions/manager.js';
import { ContextNotFoundError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { ProcessManager } from '../../processes/manager.js';
import type { ProcessOwner } from '../../processes/process.js';
import type { WorkspaceFiles } from '../../workspace/files.js';
import { INSTRUCTIONS, registerTools, type ToolHost, type ToolOptions } from './tools.js';

export interface SessionsOptions extends ToolOptions {
  /** A session unused for this long is closed and its contexts deleted; 0: never. */
  idleMs: number;
  /**
   * Sessions open at once. A new one takes the place of the one unused the longest; when every
   * session has a call running, it is refused (429).
   */
  maxSessions: number;
  /** Announced to clients in the initialize answer. */
  version: string;
}

export interface SessionsDependencies {
  contexts: ContextRegistry;
  files: WorkspaceFiles;
  executions: ExecutionManager;
  processes: ProcessManager;
  logger: Logger;
  options: SessionsOptions;
}

/**
 * The MCP sessions of this server. Each has its own protocol server and Streamable HTTP
 * transport from the SDK, and its own contexts: the one per language that `execute_code` uses
 * when it names none, created on first use, and those it created with `create_context`. All
 * of them are deleted when the session ends: closed by the client (`DELETE /mcp`) or unused
 * for `idleMs`.
 */
export class McpSessions {
  private readonly sessions = new Map<string, McpSession>();
  /** Initialize requests being answered: sessions about to be, counted against the cap. */
  private opening = 0;
  private closing = false;

  constructor(private readonly deps: SessionsDependencies) {}

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Answers one HTTP request to the MCP endpoint. `body` is the parsed JSON of a POST;
   * `baseUrl` is how the client reached this server, for the URLs that answers carry.
   */
  async handle(request: IncomingMessage, response: ServerResponse, body: unknown, baseUrl: string): Promise<void> {
    const id = request.headers['mcp-session-id'];
    if (id !== undefined) {
      const session = typeof id === 'string' ? this.sessions.get(id) : undefined;
      // 404 tells a client to start over with a new session (MCP, "Session Management").
      if (!session)
        return sendJsonRpcError(
          response,
          404,
          -32001,
          'Session not found: it was closed or expired. Start a new session with an initialize request.',
        );
      return session.handle(request, response, body, baseUrl);
    }
    if (request.method !== 'POST' || !(Array.isArray(body) ? body.some(isInitializeRequest) : isInitializeRequest(body))) {
      return sendJsonRpcError(
        response,
        400,
        -32000,
        'Bad Request: no Mcp-Session-Id header. Start with an initialize request, then send the Mcp-Session-Id it answers with.',
      );
    }
    if (this.closing) return sendJsonRpcError(response, 503, -32000, 'The server is shutting down');
    if (!this.makeRoom()) {
      response.setHeader('retry-after', '1');
      return sendJsonRpcError(
        response,
        429,
        -32000,
        `Too many MCP sessions: all ${this.deps.options.maxSessions} (MCP_MAX_SESSIONS) have a call running. End sessions you no longer use (DELETE /mcp), or try again later.`,
      );
    }

    this.opening++;
    try {
      const session = await McpSession.open(this.deps, {
        initialized: (opened) => {
          this.sessions.set(opened.id!, opened);
          this.deps.logger.info({ session: opened.id }, 'MCP session opened');
        },
        closed: (closed) => {
          if (closed.id !== undefined && this.sessions.get(closed.id) === closed) this.sessions.delete(closed.id);
        },
      });
      await session.handle(request, response, body, baseUrl);
      // An initialize request the transport refused (a wrong Accept header, say) opened nothing.
      if (session.id === undefined) await session.close('never initialized');
    } finally {
      this.opening--;
    }
  }

  /**
   * Whether a new session may open: under the cap, or once the session unused the longest
   * (with no call running) has been closed to make room. Each session costs memory (its
   * protocol server, transport and tool state, about 100 KB) and may hold contexts; without a
   * cap, a client that never ends its sessions fills the server's memory within
   * MCP_SESSION_IDLE. A client whose session was closed so is answered 404 on its next
   * request, which MCP clients take as "initialize again".
   */
  private makeRoom(): boolean {
    const max = this.deps.options.maxSessions;
    while (this.sessions.size + this.opening >= max) {
      let oldest: McpSession | undefined;
      for (const session of this.sessions.values()) {
        if (!session.busy && (oldest === undefined || session.lastUsedAt < oldest.lastUsedAt)) oldest = session;
      }
      if (!oldest) return false;
      // Out of the table at once, so that its place is free now; its contexts go in the background.
      this.sessions.delete(oldest.id!);
      void oldest.close(`unused the longest when MCP_MAX_SESSIONS (${max}) was reached`);
    }
    return true;
  }

  /** Ends every session (server shutdown). Their kernels are left to the registry's close. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.sessions.values()].map((session) => session.close('the server is shutting down', false)));
  }
}

interface SessionEvents {
  initialized(session: McpSession): void;
  closed(session: McpSession): void;
}

class McpSession implements ToolHost {
  id: string | undefined;
  readonly contexts: ContextRegistry;
  readonly files: WorkspaceFiles;
  readonly executions: ExecutionManager;
  readonly processes: ProcessManager;
  readonly logger: Logger;
  readonly options: SessionsOptions;

  private readonly server: McpServer;
  private readonly transport: StreamableHTTPServerTransport;
  /**
   * The session's own context per language: what execute_code runs in when it names none,
   * apart from every other client's variables.
   */
  private readonly languageContexts: DefaultContexts;
  /** Every context the session created; deleted with it. */
  private readonly owned = new Set<string>();
  private inFlight = 0;
  /** When a request last came in or a call ended (Date.now()). */
  lastUsedAt = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private base = '';
  private ended: Promise<void> | undefined;
  private closeReason = 'closed by the client';
  private deleteContexts = true;

  private constructor(
    deps: SessionsDependencies,
    private readonly events: SessionEvents,
  ) {
    this.contexts = deps.contexts;
    this.files = deps.files;
    this.executions = deps.executions;
    this.processes = deps.processes;
    this.logger = deps.logger;
    this.options = deps.options;
    this.languageContexts = new DefaultContexts(deps.contexts, (context) => this.adopt(context));
    this.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        this.id = id;
        events.initialized(this);
        this.armIdleTimer();
      },
    });
    this.server = new McpServer({ name: 'code-interpreter', version: deps.options.version }, { instructions: INSTRUCTIONS });
    registerTools(this.server, this);
    // Every way a session ends passes here: DELETE /mcp, the idle timer, the server closing.
    this.server.server.onclose = () => void this.end();
  }

  static async open(deps: SessionsDependencies, events: SessionEvents): Promise<McpSession> {
    const session = new McpSession(deps, events);
    await session.server.connect(session.transport);
    return session;
  }

  /** A call is running: the session is in use, whenever it last started one. */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  async handle(request: IncomingMessage, response: ServerResponse, body: unknown, baseUrl: string): Promise<void> {
    this.base = baseUrl;
    this.lastUsedAt = Date.now();
    // Calls keep a session alive while they run; the client's standing GET stream does not,
    // or an agent that wandered off would hold its kernels for as long as its socket lives.
    if (request.method === 'POST') {
      this.inFlight++;
      clearTimeout(this.idleTimer);
      response.once('close', () => {
        this.inFlight--;
        this.lastUsedAt = Date.now();
        this.armIdleTimer();
      });
    } else {
      this.armIdleTimer();
    }
    await this.transport.handleRequest(request, response, body);
  }

  /** Closes the transport (its streams end) and, through `end`, deletes the contexts. */
  async close(reason: string, deleteContexts = true): Promise<void> {
    this.closeReason = reason;
    this.deleteContexts = deleteContexts;
    await this.server.close();
    await this.end();
  }

  /** The context a call names, or the session's own context of its language. */
  async resolve({ contextId, language }: TargetSelector): Promise<KernelContext> {
    return contextId !== undefined ? this.contexts.get(contextId) : this.languageContexts.get(language);
  }

  adopt(context: KernelContext): void {
    this.owned.add(context.id);
    // Created while the session was ending: nobody will use it.
    if (this.ended) void this.deleteContext(context.id);
  }

  owns(contextId: string): boolean {
    return this.owned.has(contextId);
  }

  baseUrl(): string {
    return this.base;
  }

  processOwner(): ProcessOwner {
    // Tools run only once the session is initialized, which gave it its id.
    return { kind: 'mcp', id: this.id! };
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    if (this.options.idleMs <= 0 || this.inFlight > 0 || this.ended || this.id === undefined) return;
    this.idleTimer = setTimeout(() => {
      void this.close(`unused for ${this.options.idleMs / 1000} s`);
    }, this.options.idleMs);
    this.idleTimer.unref();
  }

  private end(): Promise<void> {
    this.ended ??= (async () => {
      clearTimeout(this.idleTimer);
      this.events.closed(this);
      // Contexts still being created are waited for, so that none outlives the session.
      await this.languageContexts.settled();
      const owned = [...this.owned];
      // Its commands go with it, background ones included: nothing the session started outlives it.
      const processes = this.id === undefined ? Promise.resolve() : this.processes.killOwnedBy({ kind: 'mcp', id: this.id });
      if (this.deleteContexts) await Promise.all(owned.map((id) => this.deleteContext(id)));
      await processes.catch((error: unknown) =>
        this.logger.warn({ err: error, session: this.id }, 'could not kill the processes of a closed MCP session'),
      );
      if (this.id !== undefined) {
        this.logger.info(
          { session: this.id, reason: this.closeReason, contexts: this.deleteContexts ? owned.length : 0 },
          'MCP session closed',
        );
      }
    })();
    return this.ended;
  }

  private async deleteContext(id: string): Promise<void> {
    try {
      await this.contexts.delete(id);
    } catch (error) {
      // Deleted already (DELETE /contexts/{id}): nothing left to do.
      if (!(error instanceof ContextNotFoundError))
        this.logger.warn({ err: error, context: id }, 'could not delete a context of a closed MCP session');
    }
  }
}

/** A JSON-RPC error answer written directly, as the SDK's transport writes its own. */
function sendJsonRpcError(response: ServerResponse, status: number, code: number, message: string): void {
  response
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}
