import { defineConfig } from 'vitest/config';

// BASE_URL points the integration suite at a server that already runs (the Docker image, say).
// Vite sets its own BASE_URL ("/") in the test processes, so the caller's value is read here,
// before that happens, and handed on under a name of our own.
if (process.env.BASE_URL && /^https?:\/\//.test(process.env.BASE_URL)) {
  process.env.TARGET_BASE_URL = process.env.BASE_URL;
}

export default defineConfig({
  test: {
    // Stopping Jupyter shuts every kernel the suite started down.
    teardownTimeout: 60_000,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts', 'tests/api/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['tests/integration/**/*.test.ts'],
          // Starts Jupyter and the API through start-up.sh, or targets BASE_URL when set.
          globalSetup: ['tests/helpers/global-setup.ts'],
          // One server for the whole suite, and some files kill its kernels or Jupyter itself.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      // Tests that start containers of the image under test themselves (scripts/docker-ci.sh
      // sets CONTAINER_IMAGE); they need a Docker daemon, so they are not part of `npm test`.
      ...(process.env.CONTAINER_IMAGE
        ? [
            {
              test: {
                name: 'container',
                include: ['tests/container/**/*.test.ts'],
                testTimeout: 120_000,
                hookTimeout: 240_000,
              },
            },
          ]
        : []),
    ],
  },
});
