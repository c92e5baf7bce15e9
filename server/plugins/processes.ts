import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ProcessManager } from '../processes/manager.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Commands and terminals, run by the process host as the kernels' user. */
    processes: ProcessManager;
  }
}

/**
 * The processes of the server. They are kept like executions (the same retention and per-log
 * buffer), and every one still running is killed with its tree when the server closes, within
 * the shutdown grace period.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    const processes = new ProcessManager({
      hostSocket: config.processes.hostSocket,
      logger: app.log,
      maxProcesses: config.processes.maxProcesses,
      bufferBytes: config.execution.bufferBytes,
      totalBufferBytes: config.execution.bufferTotalBytes,
      // One bound for the events of executions and processes together (EXECUTION_BUFFER_TOTAL).
      logBudget: app.hasDecorator('executions') ? app.executions.logBudget : undefined,
      retentionMs: config.execution.retentionMs,
      maxRetained: config.execution.maxRetained,
    });
    app.decorate('processes', processes);
    app.addHook('onReady', async () => {
      // Commands started for a context die with it, however it goes (DELETE, its MCP session's end).
      if (app.hasDecorator('contexts')) {
        app.contexts.kernelEvents.on('context_deleted', ({ id }) => void processes.killOwnedBy({ kind: 'context', id }));
      }
    });
    app.addHook('preClose', async () => {
      await processes.close(Math.min(config.server.shutdownGraceMs, 5000));
    });
  },
  { name: 'processes' },
);
