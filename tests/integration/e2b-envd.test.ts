import { Sandbox } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe } from 'vitest';
import { envdCases } from '../helpers/e2b-commands.js';
import { TestProcessHost } from '../helpers/process-host.js';
import { portIsFree } from '../helpers/processes.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * e2b's SDK in debug mode sends commands, terminals and git to localhost:49983, envd's port, a
 * port it does not let anyone change: this file starts its own server with ENVD_PORT there, and
 * is skipped only when something else holds the port.
 */
const ENVD_PORT = 49983;
const portFree = await portIsFree(ENVD_PORT);
if (!portFree) {
  console.warn(
    `e2b commands tests SKIPPED: port ${ENVD_PORT} is taken by another process, and the SDK's debug mode talks to that port only`,
  );
}

describe.skipIf(!portFree)(`the e2b SDK's commands, pty and git in debug mode, on localhost:${ENVD_PORT}`, () => {
  let server: StartedServer;
  let sandbox: Sandbox;
  const host = new TestProcessHost();

  beforeAll(async () => {
    // localhost, as the SDK resolves it: both loopback addresses where the machine has them.
    server = await startServer({ ENVD_PORT: String(ENVD_PORT), PROCESS_HOST_SOCKET: host.socketPath }, { host: 'localhost' });
    // Commands start in the server's workspace; the API reaches the host on first use.
    await host.start({ WORKSPACE_DIR: server.workspaceDir });
    sandbox = await Sandbox.create({ debug: true });
  });

  afterAll(async () => {
    await server?.stop();
    await host.stop();
  });

  envdCases(() => ({ sandbox, workspaceDir: server.workspaceDir }));
});
