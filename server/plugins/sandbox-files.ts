import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { InProcessFiles } from '../sandbox-files/in-process-files.js';
import type { SandboxFiles } from '../sandbox-files/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The filesystem as the kernels' user sees it: what e2b's `sandbox.files` acts on (ENVD_PORT). */
    sandboxFiles: SandboxFiles;
  }
}

/**
 * The sandbox's files. For now in the API's own process, with the API's rights (right on a
 * development machine, where both are one user); in the image they belong in the process host,
 * which is the kernels' user.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    app.decorate('sandboxFiles', new InProcessFiles(config.workspace.dir));
  },
  { name: 'sandbox-files' },
);
