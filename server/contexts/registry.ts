import { setTimeout as sleep } from 'node:timers/promises';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { ContextNotFoundError, InvalidCwdError, ShuttingDownError, TooManyContextsError, UnknownLanguageError } from '../errors.js';
import type { RunOptions } from '../runs/run.js';
import type { JupyterClient, KernelSpecInfo } from '../jupyter/client.js';
import { directoryInWorkspace } from '../workspace/directories.js';
import type { Workspace } from '../workspace/workspace.js';
import { KernelContext, type ContextInfo, type ContextOptions } from './context.js';
import { DefaultContexts, type ContextSource } from './default-contexts.js';
import { createKernelEvents, type KernelEvents, type KernelPoolObserver } from './events.js';
import { KernelPool, type PoolTarget, type WarmKernel } from './kernel-pool.js';
import type { SandboxFiles } from '../sandbox-files/types.js';
import { kernelsMayEnter, kernelsSee, type KernelIdentity } from './cwd-access.js';
import { canMoveKernel } from './kernel-setup.js';

export interface RegistryOptions {
  jupyter: JupyterClient;
  logger: Logger;
  /** Decides which cwds are in the workspace, and creates missing ones there: the file API's own rules. */
  workspace: Workspace;
  defaultLanguage: string;
  execution: RunOptions;
  maxQueuedExecutions: number;
  /** Contexts that may exist at once, those being created included. */
  maxContexts: number;
  /** The largest kernel message the Jupyter client accepts. */
  maxMessageBytes: number;
  /** Who the kernels run as, when not as this process's user; decides which cwds they can enter. */
  kernelIdentity?: KernelIdentity | undefined;
  /**
   * The filesystem as the kernels see it (the process host), asked about a cwd outside the
   * workspace that this process does not find: the kernels may not share its filesystem (the
   * Kubernetes pod's two containers share the workspace, not /tmp).
   */
  kernelFiles?: Pick<SandboxFiles, 'stat'> | undefined;
  /** Kernels to keep started ahead of time, per language (or kernelspec name). */
  kernelPool: ReadonlyMap<string, number>;
  poolObserver?: KernelPoolObserver;
}

/**
 * Every context this server holds, and the default context of each language. Defaults are
 * created on first use (exactly once, however many requests ask at the same time) and again
 * after they were deleted.
 */
export class ContextRegistry implements ContextSource {
  private readonly contexts = new Map<string, KernelContext>();
  /** The server's default context of each language. */
  private readonly defaults = new DefaultContexts(this);
  /** Contexts whose kernel is starting: they count against maxContexts already. */
  private starting = 0;
  private specs: Promise<KernelSpecInfo[]> | undefined;
  /** Set while the warm-up waits for a Jupyter that is still starting. */
  private jupyterStarting: Promise<void> | undefined;
  private closing = false;
  /** Set while contexts are being brought back after Jupyter was unreachable. */
  private recovering: Promise<void> | undefined;
  /** Kernel starts, restarts and deaths across every context. */
  readonly kernelEvents: KernelEvents = createKernelEvents();

  private readonly workspace: Workspace;
  /** Kernels started ahead of time, in the workspace root; they count against maxContexts. */
  private readonly pool: KernelPool;

  constructor(private readonly options: RegistryOptions) {
    this.workspace = options.workspace;
    this.pool = new KernelPool({
      jupyter: options.jupyter,
      logger: options.logger,
      directory: options.workspace.root,
      targets: () => this.poolTargets(),
      hasRoom: () => this.contexts.size + this.starting + this.pool.size < options.maxContexts,
      observer: options.poolObserver,
    });
  }

  get defaultLanguage(): string {
    return this.options.defaultLanguage;
  }

  /**
   * Creates the default context so the first request doesn't pay for a kernel start. The API
   * may start before Jupyter answers (start-up.sh starts both at once; the API is often up
   * first): until `waitMs` has passed, an unreachable Jupyter is waited for rather than taken
   * as a failure, and so do requests that need a kernel meanwhile.
   */
  async warmUp(waitMs = 0): Promise<void> {
    const starting = this.waitForJupyter(waitMs);
    this.jupyterStarting = starting;
    await starting.finally(() => {
      if (this.jupyterStarting === starting) this.jupyterStarting = undefined;
    });
    await this.defaultContext(this.options.defaultLanguage);
  }

  /**
   * Returns once Jupyter answers, or `waitMs` has passed. Polls every 20 ms at first, then at
   * most every 100 ms: a refused connection costs nothing, while a Jupyter noticed late delays
   * the first execution by as much.
   */
  private async waitForJupyter(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (let delay = 20; !this.closing; delay = Math.min(delay * 2, 100)) {
      try {
        await this.options.jupyter.ping();
        return;
      } catch {
        if (Date.now() + delay > deadline) return;
        await sleep(delay, undefined, { ref: false });
      }
    }
  }

  list(): ContextInfo[] {
    return [...this.contexts.values()].map((context) => context.info);
  }

  get(id: string): KernelContext {
    const context = this.contexts.get(id);
    if (!context) throw new ContextNotFoundError(id);
    return context;
  }

  /** The languages that have a kernel installed, e.g. `["python", "r"]`. */
  async languages(): Promise<string[]> {
    return [...new Set((await this.kernelSpecs()).map((spec) => spec.language))];
  }

  async create(language: string | undefined, cwd: string | undefined): Promise<KernelContext> {
    const spec = await this.resolveLanguage(language ?? this.options.defaultLanguage);
    const directory = await this.resolveCwd(cwd);
    // Checked after the request is known to be valid and before anything starts, so that a
    // refusal leaves nothing behind; the slot is taken synchronously, so concurrent creations
    // cannot overshoot.
    const existing = this.contexts.size + this.starting;
    if (existing >= this.options.maxContexts) throw new TooManyContextsError(existing);
    // A pooled kernel becomes the context (the count does not change); otherwise, when pooled
    // kernels fill the remaining slots, one of them gives its slot up.
    let warm: Promise<WarmKernel | undefined> | undefined;
    if (this.pooled(spec.language, directory)) {
      const ready = this.takeReady(spec.language);
      warm = ready ? Promise.resolve(ready) : this.pool.claimStarting(spec.language);
    }
    const evicted = !warm && existing + this.pool.size >= this.options.maxContexts ? this.pool.evict() : undefined;
    this.starting++;
    if (warm) this.pool.fillSoon();
    let context: KernelContext;
    try {
      context = await this.startContext(spec, directory, warm);
      // Jupyter holds no more kernels than MAX_CONTEXTS once the creation is answered.
      await evicted;
    } finally {
      this.starting--;
    }
    return context;
  }

  private async startContext(spec: KernelSpecInfo, directory: string, warm?: Promise<WarmKernel | undefined>): Promise<KernelContext> {
    let context: KernelContext | undefined;
    const kernel = await warm;
    if (kernel) {
      try {
        context = await KernelContext.create({ ...this.contextOptions(spec, directory), warm: kernel });
      } catch (error) {
        this.options.logger.warn(
          { err: error, kernel: kernel.channel.kernelId },
          'a pooled kernel could not be used; starting one instead',
        );
        void this.pool.release(kernel.channel.kernelId, kernel.channel);
      }
    }
    context ??= await KernelContext.create(this.contextOptions(spec, directory));
    if (this.closing) {
      context.disconnect();
      throw new ShuttingDownError();
    }
    this.contexts.set(context.id, context);
    // The pool fills once a first context is there (the default one, at start-up): the first
    // execution does not share the CPUs with kernels nobody asked for yet.
    this.pool.activate();
    this.options.logger.info({ context: context.id, language: context.language, kernel: context.kernelId }, 'context created');
    return context;
  }

  private contextOptions(spec: KernelSpecInfo, directory: string): ContextOptions {
    return {
      language: spec.language,
      kernelName: spec.name,
      cwd: directory,
      jupyter: this.options.jupyter,
      logger: this.options.logger,
      execution: this.options.execution,
      maxQueuedExecutions: this.options.maxQueuedExecutions,
      maxMessageBytes: this.options.maxMessageBytes,
      onClosed: (closed) => this.forget(closed),
      onConnectionLost: () => this.recoverAll(),
      events: this.kernelEvents,
      warmKernels: {
        take: () => (this.pooled(spec.language, directory) ? this.takeReady(spec.language) : undefined),
        release: (kernelId, channel) => void this.pool.release(kernelId, channel),
      },
    };
  }

  /** A ready pooled kernel of `language`, counted as a hit, or undefined, counted as a miss. */
  private takeReady(language: string): WarmKernel | undefined {
    const kernel = this.pool.takeReady(language);
    if (kernel) this.options.poolObserver?.hit(language);
    else this.options.poolObserver?.miss(language);
    return kernel;
  }

  /** Whether a context of `language` in `directory` can be served from the pool. */
  private pooled(language: string, directory: string): boolean {
    return this.pool.serves(language) && (directory === this.workspace.root || canMoveKernel(language));
  }

  /** The pool's languages as Jupyter knows them; KERNEL_POOL entries with no kernel are left out. */
  private async poolTargets(): Promise<PoolTarget[]> {
    const targets = new Map<string, PoolTarget>();
    for (const [language, size] of this.options.kernelPool) {
      let spec: KernelSpecInfo;
      try {
        spec = await this.resolveLanguage(language);
      } catch (error) {
        if (!(error instanceof UnknownLanguageError)) throw error;
        if (size > 0)
          this.options.logger.error({ err: error }, `KERNEL_POOL names ${language}, which has no kernel; no kernels are kept for it`);
        continue;
      }
      const known = targets.get(spec.language);
      if (!known || known.size < size) targets.set(spec.language, { spec, size });
    }
    return [...targets.values()];
  }

  /** The default context for `language`, created on first use. */
  defaultContext(language: string = this.options.defaultLanguage): Promise<KernelContext> {
    return this.defaults.get(language);
  }

  /**
   * Where an execution runs: the context it names, or the default context of its language
   * (the default language's when it names neither).
   */
  async resolve({ contextId, language }: { contextId?: string | undefined; language?: string | undefined }): Promise<KernelContext> {
    return contextId !== undefined ? this.get(contextId) : this.defaultContext(language);
  }

  /** The language a language or kernelspec name stands for (`python3` → `python`). */
  async languageOf(language: string | undefined): Promise<string> {
    return (await this.resolveLanguage(language ?? this.options.defaultLanguage)).language;
  }

  async restart(id: string): Promise<KernelContext> {
    const context = this.get(id);
    await context.restart();
    return context;
  }

  async delete(id: string): Promise<void> {
    const context = this.get(id);
    await context.delete();
    this.kernelEvents.emit('context_deleted', { id, language: context.language });
    // Its kernel is gone: the slot may go back to the pool, which may have given it up for a context.
    this.pool.fill();
  }

  /** Closes every kernel socket; contexts' kernels keep running in Jupyter, pooled ones are shut down. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const contexts = [...this.contexts.values()];
    const drained = Promise.all([this.pool.close(), ...contexts.map((context) => context.drain().catch(() => undefined))]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    for (const context of contexts) context.disconnect();
    this.contexts.clear();
    this.defaults.clear();
  }

  /**
   * Waits for Jupyter to answer again, then mends every context at once: kernels Jupyter
   * no longer knows (it was restarted) are replaced, live ones reconnect. Runs once however
   * many contexts noticed the loss.
   */
  private recoverAll(): void {
    if (this.closing || this.recovering) return;
    const logger = this.options.logger;
    logger.warn('lost the connection to Jupyter; waiting for it to come back');
    this.recovering = (async () => {
      for (let delay = 250; !this.closing; delay = Math.min(delay * 2, 2000)) {
        try {
          await this.options.jupyter.ping();
          break;
        } catch {
          await sleep(delay, undefined, { ref: false });
        }
      }
      if (this.closing) return;
      const running = new Set((await this.options.jupyter.listKernels()).map((kernel) => kernel.id));
      await Promise.all(
        [...this.contexts.values()].map((context) =>
          context.recover(running).catch(async (error: unknown) => {
            // A context that cannot get a kernel back (its cwd is gone, say) no longer exists.
            logger.error({ err: error, context: context.id }, 'could not recover the context; removing it');
            await context.delete();
          }),
        ),
      );
      logger.info({ contexts: this.contexts.size }, 'Jupyter is back; contexts recovered');
      this.pool.fill({ retryNow: true });
    })()
      .catch((error: unknown) => logger.error({ err: error }, 'recovery from a Jupyter outage failed'))
      .finally(() => {
        this.recovering = undefined;
      });
  }

  private forget(context: KernelContext): void {
    this.contexts.delete(context.id);
    this.defaults.forget(context);
  }

  private kernelSpecs(): Promise<KernelSpecInfo[]> {
    // Every kernel start asks for the specs first: one asked for while Jupyter is still starting
    // waits for it, like the warm-up, instead of failing with 503.
    this.specs ??= (this.jupyterStarting ?? Promise.resolve())
      .then(() => this.options.jupyter.kernelSpecs())
      .then(
        // Jupyter's default kernelspec first, so it wins among several of one language.
        ({ default: preferred, specs }) => [...specs].sort((a, b) => Number(b.name === preferred) - Number(a.name === preferred)),
        (error: unknown) => {
          this.specs = undefined;
          throw error;
        },
      );
    return this.specs;
  }

  /** Finds the kernelspec for a language (`python`, `r`) or a kernelspec name (`python3`, `ir`). */
  private async resolveLanguage(language: string): Promise<KernelSpecInfo> {
    const wanted = language.trim().toLowerCase();
    const specs = await this.kernelSpecs();
    const match = specs.find((spec) => spec.language === wanted) ?? specs.find((spec) => spec.name.toLowerCase() === wanted);
    if (!match) {
      const available = [...new Set(specs.map((spec) => spec.language))].sort().join(', ') || 'none';
      throw new UnknownLanguageError(language, available);
    }
    return match;
  }

  /**
   * Where a context's kernel starts. A cwd is only where the kernel begins: its code can `chdir`
   * anywhere its user may, so any existing directory is accepted, inside the workspace or not.
   * A relative cwd is taken from the workspace. Inside the workspace (judged by the file API's
   * own resolution, symlinks followed) a missing directory is created, as `POST /files/mkdir`
   * would; outside it nothing is ever created, and a missing one is refused. Either way the
   * kernels' user must be able to enter it.
   */
  private async resolveCwd(cwd: string | undefined): Promise<string> {
    const root = this.workspace.root;
    if (cwd === undefined || cwd === '') return root;
    if (cwd.includes('\0')) throw new InvalidCwdError('must not contain NUL bytes');
    const absolute = path.resolve(root, cwd);
    const directory = (await this.workspaceDirectory(cwd, absolute)) ?? (await this.outsideDirectory(cwd, absolute));
    if ((await kernelsMayEnter(directory, this.options.kernelIdentity)) === false) {
      throw new InvalidCwdError(`${cwd} cannot be entered by the kernels' user`);
    }
    return directory;
  }

  /**
   * The directory at `absolute` in the workspace, created when missing; undefined when it lies
   * outside the workspace (then it is judged as any directory outside).
   */
  private async workspaceDirectory(cwd: string, absolute: string): Promise<string | undefined> {
    let resolved;
    try {
      resolved = await directoryInWorkspace(this.workspace, absolute);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new InvalidCwdError(`${cwd}: ${message}`);
    }
    if (!resolved) return undefined;
    if (!resolved.stats?.isDirectory()) throw new InvalidCwdError(`${cwd} is not a directory`);
    // Where the workspace is configured, even when its root is reached through a symlink.
    return path.join(this.workspace.root, ...resolved.segments);
  }

  /** An existing directory outside the workspace, as named (normalized); never created. */
  private async outsideDirectory(cwd: string, absolute: string): Promise<string> {
    let stats;
    try {
      stats = await stat(absolute);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        const seen = await kernelsSee(this.options.kernelFiles, absolute);
        if (seen === 'directory') return absolute;
        if (seen === 'other') throw new InvalidCwdError(`${cwd} is not a directory`);
        if (seen === 'forbidden') throw new InvalidCwdError(`${cwd} cannot be entered by the kernels' user`);
        throw new InvalidCwdError(`${cwd} does not exist (a missing cwd is created only inside the workspace ${this.workspace.root})`);
      }
      // EACCES and the like: the API may run as another user than the kernels, whose own start
      // there decides.
      return absolute;
    }
    if (!stats.isDirectory()) throw new InvalidCwdError(`${cwd} is not a directory`);
    return absolute;
  }
}
