import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ContextRegistry } from '../contexts/registry.js';
import { UnknownLanguageError } from '../errors.js';
import { ExecutionManager } from '../executions/manager.js';
import { JupyterClient } from '../jupyter/client.js';

declare module 'fastify' {
  interface FastifyInstance {
    jupyter: JupyterClient;
    contexts: ContextRegistry;
    executions: ExecutionManager;
    /** The start of the default context, once the server is ready: main.ts stops on a DEFAULT_LANGUAGE with no kernel. */
    defaultContextWarmUp: Promise<void> | undefined;
  }
}

/**
 * The Jupyter client, the context registry and the executions. The default context is started as soon as the
 * registry exists (in the background: a slow or absent Jupyter must not keep the server from
 * answering /health), and every kernel socket is closed when the server closes, after running
 * executions had `shutdownGraceMs` to finish.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    // No single kernel message larger than an execution may output at all is ever decoded
    // (outputs beyond the budget are dropped anyway); 16 MiB at least, for a large plot.
    const maxMessageBytes = Math.max(config.execution.maxOutputBytes, 16 * 2 ** 20) + 2 ** 20;
    const jupyter = new JupyterClient({ url: config.jupyter.url, token: config.jupyter.token, maxMessageBytes });
    const contexts = new ContextRegistry({
      jupyter,
      logger: app.log,
      workspace: app.workspace.workspace,
      defaultLanguage: config.contexts.defaultLanguage,
      maxQueuedExecutions: config.execution.maxQueued,
      maxContexts: config.contexts.maxContexts,
      kernelPool: config.contexts.kernelPool,
      kernelIdentity: config.contexts.kernelIdentity,
      kernelFiles: app.sandboxFiles,
      poolObserver: app.hasDecorator('metrics') ? app.metrics.pool : undefined,
      maxMessageBytes,
      execution: { interruptGraceMs: config.execution.interruptGraceMs, maxOutputBytes: config.execution.maxOutputBytes },
    });
    app.decorate('jupyter', jupyter);
    app.decorate('contexts', contexts);
    const executions = new ExecutionManager({
      targets: contexts,
      logger: app.log,
      defaultTimeoutSeconds: config.execution.timeoutSeconds,
      maxTimeoutSeconds: config.execution.maxTimeoutSeconds,
      bufferBytes: config.execution.bufferBytes,
      totalBufferBytes: config.execution.bufferTotalBytes,
      retentionMs: config.execution.retentionMs,
      maxRetained: config.execution.maxRetained,
      maxQueuedBytes: config.execution.maxQueuedBytes,
    });
    app.decorate('executions', executions);

    // Started now rather than once the app is ready: the kernel starts in Jupyter while the
    // server compiles its routes' schemas (~0.2 s of its start), not after.
    const warmUp = contexts.warmUp(config.jupyter.waitMs);
    warmUp.then(
      () => app.log.info('default context ready'),
      (error: unknown) =>
        error instanceof UnknownLanguageError
          ? app.log.error({ err: error }, 'DEFAULT_LANGUAGE names a language with no kernel')
          : app.log.warn({ err: error }, 'default context could not be created yet; it will be on first use'),
    );
    app.decorate('defaultContextWarmUp', { getter: () => warmUp });
    app.addHook('preClose', async () => {
      await contexts.close(config.server.shutdownGraceMs);
      executions.close();
    });
  },
  { name: 'contexts', dependencies: ['workspace', 'sandbox-files'] },
);
