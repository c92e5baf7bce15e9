import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { format } from 'node:util';
import { pino } from 'pino';
import { buildApp, buildEnvdApp } from './app.js';
import { compileCacheOutcome, flushCompileCache } from './compile-cache.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { UnknownLanguageError } from './errors.js';
import { logDestination, loggerOptions } from './logger.js';
import { Process } from './transports/connect/gen/envd/process/process_pb.js';
import { processService } from './transports/connect/process-service.js';

/** The process: configuration, logger, listen, graceful shutdown on SIGTERM/SIGINT. main.ts loads it. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`Invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const workspaceProblem = await prepareWorkspace(config.workspace.dir);
  if (workspaceProblem) {
    process.stderr.write(
      `Invalid configuration: WORKSPACE_DIR=${config.workspace.dir} ${workspaceProblem}; set WORKSPACE_DIR to a writable directory\n`,
    );
    process.exit(2);
  }

  const logger = pino(loggerOptions(config.server.logLevel), logDestination());
  // @jupyterlab/services reports kernel socket and status changes on the console: keep them,
  // as structured logs rather than bare lines among the JSON ones.
  const library = logger.child({ source: 'jupyterlab-services' });
  console.debug = (...args: unknown[]) => library.debug(format(...args));
  console.log = (...args: unknown[]) => library.debug(format(...args));
  console.info = (...args: unknown[]) => library.info(format(...args));
  console.warn = (...args: unknown[]) => library.warn(format(...args));

  // A rejection nobody handled (a library's background reconnect, say) is a bug to log, not a
  // reason to drop every user's running execution by crashing.
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection'));

  logger.debug({ compileCache: compileCacheOutcome() }, 'module compile cache');
  const app = await buildApp(config, { logger });
  // e2b's daemon protocol on its own port (ENVD_PORT), over the same domain objects.
  const envd =
    config.server.envdPort === 0
      ? undefined
      : await buildEnvdApp(
          config,
          {
            access: app.access,
            metrics: app.metrics,
            services: (router) => router.service(Process, processService(app.processes)),
            files: app.sandboxFiles,
          },
          { logger },
        );

  let stopping = false;
  const stop = async (signal: NodeJS.Signals | 'configuration') => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: waiting for running executions');
    const code = signal === 'configuration' ? 2 : 0;
    const forced = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.server.shutdownGraceMs + 5000);
    forced.unref();
    try {
      // envd's streams first: they read processes that the main application's close ends.
      await envd?.close();
      await app.close();
      logger.info('stopped');
      process.exit(code);
    } catch (error) {
      logger.error({ err: error }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.once('SIGTERM', (signal) => void stop(signal));
  process.once('SIGINT', (signal) => void stop(signal));

  await app.listen({ host: config.server.host, port: config.server.port });
  await envd?.listen({ host: config.server.host, port: config.server.envdPort });
  logger.info(
    {
      workspace: config.workspace.dir,
      jupyter: config.jupyter.url,
      envdPort: config.server.envdPort,
      auth: config.access.mode,
      defaultLanguage: config.contexts.defaultLanguage,
    },
    'code interpreter ready',
  );

  // DEFAULT_LANGUAGE can only be checked against Jupyter's kernels, known once it answers
  // (start-up.sh starts both at once): a language with none stops the server, as any bad
  // setting does, rather than failing every request that names no language.
  app.defaultContextWarmUp?.catch((error: unknown) => {
    if (!(error instanceof UnknownLanguageError)) return;
    process.stderr.write(`Invalid configuration: DEFAULT_LANGUAGE=${config.contexts.defaultLanguage}: ${error.message}\n`);
    void stop('configuration');
  });
  // Once the start's own work is done (the first kernel is up, or not coming): writing the
  // cache takes CPU that the first execution should have.
  void (app.defaultContextWarmUp ?? Promise.resolve()).catch(() => undefined).then(() => setTimeout(flushCompileCache, 1000).unref());
}

/**
 * Creates the workspace if it is missing, as start-up.sh does (the API may be started without
 * it), and returns what is wrong with it otherwise: every file operation and every kernel's cwd
 * depends on it.
 */
async function prepareWorkspace(directory: string): Promise<string | undefined> {
  try {
    await mkdir(directory, { recursive: true });
    if (!(await stat(directory)).isDirectory()) return 'is not a directory';
    await access(directory, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'EEXIST' || code === 'ENOTDIR') return 'is not a directory';
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 'cannot be created or written';
    return `cannot be used: ${message}`;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`Fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
