import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { WorkspaceFiles } from '../workspace/files.js';
import { WorkspaceWatches } from '../workspace/watches.js';

/** Events one watch holds for a reader that is behind; past them the watch ends (ERR_WATCH_LIMIT). */
const MAX_QUEUED_WATCH_EVENTS = 4096;

declare module 'fastify' {
  interface FastifyInstance {
    /** The one workspace that the file API, MCP's file tools and the contexts' cwds all go through. */
    workspace: WorkspaceFiles;
    /** Watches of workspace directories, for GET /watch and /ws. */
    watches: WorkspaceWatches;
  }
}

/** Builds the workspace once, with the transfer metrics, for every door that touches files. */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    const workspace = new WorkspaceFiles(config.workspace.dir, app.metrics.files);
    app.decorate('workspace', workspace);
    const watches = new WorkspaceWatches(workspace.workspace, {
      maxWatches: config.workspace.maxWatches,
      maxDirectories: config.workspace.watchMaxDirectories,
      maxQueuedEvents: MAX_QUEUED_WATCH_EVENTS,
    });
    app.decorate('watches', watches);
    // Before the server waits for its connections: an open watch stream would hold it forever.
    app.addHook('preClose', async () => watches.closeAll());
  },
  { name: 'workspace', dependencies: ['metrics'] },
);
