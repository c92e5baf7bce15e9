import type { TestProject } from 'vitest/node';
import { plainPod } from './k8s-manifests.js';
import { startPod, tokens } from './k8s-pod.js';
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
 * workspace, unless BASE_URL points at a server that already runs (the Docker image, say), or
 * POD_IMAGE names an image to run as the Kubernetes pod of deploy/kubernetes/plain (its two
 * containers under Docker with the manifest's settings; tests/helpers/k8s-pod.ts).
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const target = process.env.TARGET_BASE_URL;
  if (target) {
    project.provide('baseUrl', target.replace(/\/+$/, ''));
    project.provide('accessToken', process.env.ACCESS_TOKEN ?? '');
    project.provide('workspaceDir', '');
    return undefined;
  }

  const podImage = process.env.POD_IMAGE;
  if (podImage) {
    // The manifest's pod with what the suite needs, as the image's run has it: open access (its
    // tests send no token; token mode in this layout: tests/container/k8s-pod.test.ts), the two
    // settings below, on both containers (the API validates CONTEXT_MEMORY_LIMIT, the jupyter
    // container's kernels apply it), and room for the kernels the suite holds at once (up to 25),
    // which one user's 2 GiB limit is not sized for.
    const pod = await startPod(podImage, plainPod().spec, tokens(), {
      env: { ACCESS_TOKEN: '', METRICS_TOKEN: '', CONTEXT_MEMORY_LIMIT: '4GiB', MAX_CONTEXTS: '100' },
      memoryLimits: { jupyter: '8Gi' },
    });
    project.provide('baseUrl', pod.baseUrl);
    project.provide('accessToken', '');
    project.provide('workspaceDir', '');
    return async () => {
      await pod.remove();
    };
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
