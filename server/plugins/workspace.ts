import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { WorkspaceFiles } from '../workspace/files.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The one workspace that the file API, MCP's file tools and the contexts' cwds all go through. */
    workspace: WorkspaceFiles;
  }
}

/** Builds the workspace once, with the transfer metrics, for every door that touches files. */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    app.decorate('workspace', new WorkspaceFiles(config.workspace.dir, app.metrics.files));
  },
  { name: 'workspace', dependencies: ['metrics'] },
);
