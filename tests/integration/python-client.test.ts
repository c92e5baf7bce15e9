import { expect, it } from 'vitest';
import { accessToken, baseUrl } from '../helpers/api.js';
import { runPytest } from '../helpers/pytest.js';

const TIMEOUT_MS = 5 * 60_000;

// clients/python/tests through the API only: with BASE_URL the server runs in a container
// whose workspace is not on this disk.
it(
  'the Python client passes its tests against the suite’s server',
  async () => {
    const run = await runPytest('clients/python/tests', { CODE_INTERPRETER_URL: baseUrl, ACCESS_TOKEN: accessToken }, TIMEOUT_MS - 10_000);
    expect(run.code, `pytest failed:\n${run.output}`).toBe(0);
    expect(run.output).toMatch(/\d+ passed/);
  },
  TIMEOUT_MS,
);
