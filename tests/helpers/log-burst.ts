/**
 * A child process for tests/unit/log-destination.test.ts: the server's logger, which on "go"
 * on stdin writes a burst of lines and exits at once, as shutdown does (`logger.info('stopped');
 * process.exit(0)`). Its stdout is a pipe the parent closes first.
 */
import { pino } from 'pino';
import { logDestination, loggerOptions } from '../../server/logger.js';

const logger = pino(loggerOptions('info'), logDestination());
process.stdin.once('data', () => {
  for (let line = 0; line < 100; line += 1) logger.info({ line }, 'shutting down');
  process.exit(0);
});
process.stderr.write('ready\n');
