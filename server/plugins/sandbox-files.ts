import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { HostFiles } from '../processes/host-files.js';
import { SandboxFileError, type SandboxFiles } from '../sandbox-files/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The filesystem as the kernels' user sees it: what e2b's `sandbox.files` acts on (ENVD_PORT). */
    sandboxFiles: SandboxFiles;
  }
}

/**
 * The sandbox's files, served by the process host as the kernels' user (the API cannot act as
 * that user). Without a host socket every call fails, saying why, as `/processes` does.
 */
export default fp<{ config: Config }>(
  async (app, { config }) => {
    const socket = config.processes.hostSocket;
    app.decorate('sandboxFiles', socket === undefined ? unavailableFiles() : new HostFiles(socket));
  },
  { name: 'sandbox-files' },
);

function unavailableFiles(): SandboxFiles {
  const refuse = async (): Promise<never> => {
    throw new SandboxFileError('EIO', 'file operations need the process host, and none is configured (PROCESS_HOST_SOCKET)');
  };
  return { stat: refuse, makeDir: refuse, move: refuse, list: refuse, remove: refuse, read: refuse, write: refuse, watch: refuse };
}
