import type { KernelContext } from './context.js';

/** Where default contexts come from: the registry. */
export interface ContextSource {
  /** The language a name stands for (`python3` → `python`); throws for one with no kernel. */
  languageOf(language: string | undefined): Promise<string>;
  create(language: string, cwd: undefined): Promise<KernelContext>;
}

/**
 * One context per language, created on first use (exactly once, however many requests ask at
 * the same time) and again after it was deleted or its creation failed. The registry keeps the
 * server's defaults in one; each MCP session keeps its own in another, so that sessions do not
 * see each other's variables.
 */
export class DefaultContexts {
  /** The context per language, or the promise of one being created. */
  private readonly byLanguage = new Map<string, Promise<KernelContext>>();

  constructor(
    private readonly source: ContextSource,
    /** Told of each context created here, before anyone else gets it. */
    private readonly onCreated?: (context: KernelContext) => void,
  ) {}

  async get(language: string | undefined): Promise<KernelContext> {
    const key = await this.source.languageOf(language);
    const existing = this.byLanguage.get(key);
    if (existing) {
      const context = await existing.catch(() => undefined);
      if (context && !context.isClosed) return context;
      // A failed or deleted default is replaced; whoever gets here first starts the new one.
      if (this.byLanguage.get(key) !== existing) return this.get(language);
    }
    const creating = this.source.create(key, undefined).then((context) => {
      this.onCreated?.(context);
      return context;
    });
    this.byLanguage.set(key, creating);
    creating.catch(() => {
      if (this.byLanguage.get(key) === creating) this.byLanguage.delete(key);
    });
    return creating;
  }

  /** Drops a context that is gone, so that the next request of its language makes a new one. */
  forget(context: KernelContext): void {
    for (const [language, entry] of this.byLanguage) {
      void entry.then(
        (candidate) => {
          if (candidate === context && this.byLanguage.get(language) === entry) this.byLanguage.delete(language);
        },
        () => undefined,
      );
    }
  }

  /** Resolves once no context is being created any more. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.byLanguage.values());
  }

  clear(): void {
    this.byLanguage.clear();
  }
}
