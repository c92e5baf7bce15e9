import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { ApiClient } from '../lib/api-client.js';
import { JupyterUnderTest, ServerUnderTest } from '../lib/processes.js';
import { waitForHttp } from '../../tests/helpers/processes.js';
import { JupyterRest, startRawKernel } from '../lib/raw-kernel.js';
import { formatNumber, formatRatio, median, now, ratio } from '../lib/stats.js';
import { roundOrder, table, type BenchEnv, type Suite, type SuiteResult } from '../lib/suite.js';

const POLL_MS = 20;
/** start-up.sh to the first execution, against Jupyter alone to its first execution. */
const COLD_START_TARGET = 1.3;

interface ColdStart {
  /** ms from spawn until Jupyter answers /api/status. */
  jupyterUp: number;
  /** ms from spawn until the server answers (/health for the API, /api/status for Jupyter alone). */
  up: number;
  /** ms from spawn until the first `1+1` has returned 2. */
  firstExecution: number;
}

async function startUpScript(env: BenchEnv): Promise<ColdStart> {
  const dir = await mkdtemp(path.join(env.tmpDir, 'cold-api-'));
  const started = now();
  const server = await ServerUnderTest.spawn({ dir, logLevel: env.logLevel });
  const api = new ApiClient(server.baseUrl);
  try {
    // Jupyter's own readiness too, to show where start-up.sh's time goes.
    const jupyterUp = waitForHttp(`${server.jupyterUrl}/api/status`, server.child, 90_000, POLL_MS, {
      authorization: `token ${server.jupyterToken}`,
    }).then(() => now() - started);
    await waitForHttp(`${server.baseUrl}/health`, server.child, 90_000, POLL_MS);
    const up = now() - started;
    const { result } = await api.execute({ code: '1+1' });
    const firstExecution = now() - started;
    if (result !== '2') throw new Error(`first execution gave ${JSON.stringify(result)}`);
    return { jupyterUp: await jupyterUp, up, firstExecution };
  } finally {
    await api.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function jupyterAlone(env: BenchEnv): Promise<ColdStart> {
  const dir = await mkdtemp(path.join(env.tmpDir, 'cold-jupyter-'));
  const started = now();
  const jupyter = await JupyterUnderTest.spawn({ dir });
  try {
    await waitForHttp(`${jupyter.url}/api/status`, jupyter.child, 90_000, POLL_MS, { authorization: `token ${jupyter.token}` });
    const up = now() - started;
    const rest = new JupyterRest(jupyter.url, jupyter.token);
    const kernel = await startRawKernel(rest, path.join(dir, 'workspace'));
    const { result } = await kernel.client.execute('1+1');
    const firstExecution = now() - started;
    kernel.client.close();
    if (result !== '2') throw new Error(`first execution gave ${JSON.stringify(result)}`);
    return { jupyterUp: up, up, firstExecution };
  } finally {
    await jupyter.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `start-up.sh` from nothing to the first successful execution, against Jupyter's own start with
 * the same configuration: `python3 -m jupyter_server` to /api/status, then a kernel and `1+1`.
 */
export const coldStart: Suite = {
  name: 'cold-start',
  title: '6. Cold start',
  shared: false,
  async run(env: BenchEnv): Promise<SuiteResult> {
    const rounds = env.quick ? 1 : 5;
    const sides = [
      { key: 'api' as const, run: () => startUpScript(env) },
      { key: 'jupyter' as const, run: () => jupyterAlone(env) },
    ];

    const runs = { api: [] as ColdStart[], jupyter: [] as ColdStart[] };
    for (let round = 0; round < rounds; round++) {
      env.progress(`cold start round ${round + 1}/${rounds}`);
      for (const side of roundOrder(sides, round)) runs[side.key].push(await side.run());
    }

    const seconds = (list: ColdStart[], key: keyof ColdStart) => median(list.map((run) => run[key])) / 1000;
    const value = ratio(seconds(runs.api, 'firstExecution'), seconds(runs.jupyter, 'firstExecution'));
    const row = (label: string, list: ColdStart[]) => [
      label,
      ...(['jupyterUp', 'up', 'firstExecution'] as const).map((key) => formatNumber(seconds(list, key), 2)),
      list.map((run) => (run.firstExecution / 1000).toFixed(2)).join(', '),
    ];
    const details = [
      `${rounds} round${rounds > 1 ? 's' : ''}, alternated; each start gets fresh ports, workspace and IPython profile; readiness is polled every ${POLL_MS} ms. Medians, in seconds from the spawn.`,
      '',
      table(
        ['Side', 'Jupyter answers', 'server answers', 'first `1+1` done', 'rounds'],
        [
          row('`start-up.sh` (Jupyter and the API; /health, then `POST /execute`)', runs.api),
          row('`python3 -m jupyter_server` (/api/status, then kernel + WebSocket + `1+1`)', runs.jupyter),
        ],
      ),
    ].join('\n');

    return {
      summary: [
        {
          benchmark: 'Cold start to the first execution',
          ours: `${formatNumber(seconds(runs.api, 'firstExecution'), 2)} s`,
          baseline: `${formatNumber(seconds(runs.jupyter, 'firstExecution'), 2)} s (Jupyter alone + kernel)`,
          ratio: formatRatio(value),
          target: `≤ ${COLD_START_TARGET.toFixed(1)}x`,
          met: value <= COLD_START_TARGET,
        },
      ],
      details,
      data: runs,
    };
  },
};
