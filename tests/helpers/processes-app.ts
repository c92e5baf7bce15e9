import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { TestProcessHost } from './process-host.js';
import { freePort } from './processes.js';

/**
 * The API built in this test process, listening on a free port of 127.0.0.1, with a real
 * process host (from dist/) behind it and no Jupyter: what the doors' process tests need.
 */
export class ProcessesApp {
  readonly host = new TestProcessHost();
  api!: FastifyInstance;
  baseUrl = '';

  async start(env: Record<string, string> = {}): Promise<void> {
    await this.host.start();
    // JUPYTER_WAIT_SECONDS=0: processes need no Jupyter, and nothing waits for one.
    const config = loadConfig({
      JUPYTER_URL: `http://127.0.0.1:${await freePort()}`,
      JUPYTER_WAIT_SECONDS: '0',
      WORKSPACE_DIR: this.host.workspace,
      PROCESS_HOST_SOCKET: this.host.socketPath,
      ...env,
    });
    this.api = await buildApp(config);
    await this.api.listen({ host: '127.0.0.1', port: 0 });
    const address = this.api.server.address() as { port: number };
    this.baseUrl = `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    await this.api?.close();
    await this.host.stop();
  }
}

/** Resolves once `test` holds, checking every 20 ms; throws after `timeoutMs`. */
export async function eventually(test: () => boolean, timeoutMs = 10_000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
