import type { TestProject } from 'vitest/node';
import { startServer } from './start-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    baseUrl: string;
    accessToken: string;
    /** Workspace directory on this machine, or '' when the server runs elsewhere (BASE_URL). */
    workspaceDir: string;
  }
}

/**
 * Starts a real Jupyter Server and the API through start-up.sh, on free ports with a temporary
 * workspace, unless BASE_URL points at a server that already runs (the Docker image, say).
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const target = process.env.TARGET_BASE_URL;
  if (target) {
    project.provide('baseUrl', target.replace(/\/+$/, ''));
    project.provide('accessToken', process.env.ACCESS_TOKEN ?? '');
    project.provide('workspaceDir', '');
    return undefined;
  }

  // CONTEXT_MEMORY_LIMIT: tests/integration/memory.test.ts checks the cap; 4GiB is far above
  // what any other test's kernel uses. MAX_CONTEXTS: every file shares this server and some keep
  // their contexts until the suite ends (25 at once were seen); the limit itself is tested on a
  // server of its own (max-contexts.test.ts).
  const server = await startServer({ KEEPALIVE_INTERVAL: '1', INTERRUPT_GRACE: '3', CONTEXT_MEMORY_LIMIT: '4GiB', MAX_CONTEXTS: '100' });
  project.provide('baseUrl', server.baseUrl);
  project.provide('accessToken', '');
  project.provide('workspaceDir', server.workspaceDir);
  return async () => {
    await server.stop();
  };
}
