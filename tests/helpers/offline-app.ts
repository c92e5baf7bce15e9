import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { afterAll, afterEach } from 'vitest';
import { buildApp, type BuildOptions } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { freePort } from './processes.js';

/**
 * The app built for `app.inject`, with no Jupyter behind it: what access control, CORS and
 * the API description do is decided before any kernel is involved. Its Jupyter never comes
 * (JUPYTER_WAIT_SECONDS=0): the background warm-up of the default context fails fast against
 * a closed port and only logs, and requests that need a kernel get 503 at once.
 *
 * Importing this module registers hooks that close every app after each test and remove the
 * temporary workspace after the file.
 */
const apps: FastifyInstance[] = [];
let workspace: Promise<string> | undefined;

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

afterAll(async () => {
  if (workspace) await rm(await workspace, { recursive: true, force: true });
});

/** `extend` may add routes of the test's own before the app is ready. */
export async function startOffline(
  env: Record<string, string> = {},
  options: BuildOptions = {},
  extend?: (app: FastifyInstance) => void,
): Promise<{ app: FastifyInstance; routes: RouteOptions[] }> {
  workspace ??= mkdtemp(path.join(tmpdir(), 'offline-app-'));
  const config = loadConfig({
    JUPYTER_URL: `http://127.0.0.1:${await freePort()}`,
    JUPYTER_WAIT_SECONDS: '0',
    WORKSPACE_DIR: await workspace,
    ...env,
  });
  const routes: RouteOptions[] = [];
  const app = await buildApp(config, {
    ...options,
    onRoute(route) {
      routes.push(route);
      return options.onRoute?.call(this, route);
    },
  });
  apps.push(app);
  extend?.(app);
  await app.ready();
  return { app, routes };
}
