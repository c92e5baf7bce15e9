import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../lib/api-client.js';
import { ServerUnderTest } from '../lib/processes.js';
import { JupyterRest, RawKernelClient } from '../lib/raw-kernel.js';
import { formatNumber, formatRatio, now, percentile, ratio } from '../lib/stats.js';
import { roundOrder, table, type BenchEnv, type Suite, type SuiteResult } from '../lib/suite.js';

/** The kernel's own id, as the main result (from its connection file's name). */
const KERNEL_ID_CODE = 'import re, ipykernel.connect as c\nre.search(r"kernel-([0-9a-f-]+)\\.json", c.get_connection_file()).group(1)';

interface Side {
  key: string;
  label: string;
  run(): Promise<number>;
}

/** A server of this benchmark's own, started with the given pool. */
async function startServer(
  env: BenchEnv,
  pool: string,
): Promise<{ server: ServerUnderTest; api: ApiClient; rest: JupyterRest; dir: string }> {
  const dir = await mkdtemp(path.join(env.tmpDir, 'contexts-'));
  const server = await ServerUnderTest.spawn({ dir, logLevel: env.logLevel, env: { KERNEL_POOL: pool } });
  await server.waitUntilReady();
  const api = new ApiClient(server.baseUrl);
  await api.execute({ code: '1+1' });
  return { server, api, rest: new JupyterRest(server.jupyterUrl, server.jupyterToken), dir };
}

/** Ready pooled kernels of Python, from the server's own metrics. */
async function poolSize(api: ApiClient): Promise<number> {
  const text = await (await fetch(`${api.baseUrl}/metrics`)).text();
  const match = /^code_interpreter_kernel_pool_size\{language="python"\} (\d+)$/m.exec(text);
  return match ? Number(match[1]) : 0;
}

/** Waits until the pool is full and Jupyter holds no kernel beyond the contexts and the pool. */
async function settled(api: ApiClient, rest: JupyterRest, size: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const contexts = (await api.json<unknown[]>('GET', '/contexts')).length;
    if ((await poolSize(api)) === size && (await rest.listKernels()).length === contexts + size) return;
    if (Date.now() > deadline) throw new Error('the kernel pool did not settle within 60 s');
    await sleep(50);
  }
}

/** Resident and proportional memory of the processes of one kernel (launcher and kernel), in bytes. */
async function kernelMemory(kernelId: string): Promise<{ rss: number; pss: number; processes: number }> {
  let rss = 0;
  let pss = 0;
  let processes = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(`kernel-${kernelId}.json`)) continue;
    const rollup = await readFile(`/proc/${entry}/smaps_rollup`, 'utf8').catch(() => '');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0) * 1024;
    rss += field('Rss');
    pss += field('Pss');
    processes++;
  }
  return { rss, pss, processes };
}

/**
 * `POST /contexts` and `POST /contexts/{id}/restart` until their 200, on a server without a
 * kernel pool and on one with a pool of one Python kernel, against what Jupyter itself needs:
 * `POST /api/kernels` (or `/restart`), then the kernel WebSocket and the first kernel_info_reply
 * over it. Before each timed step the pool is full and Jupyter holds nothing else starting, so
 * no refill runs while another side is timed; each kernel is shut down, untimed, afterwards.
 * Then the memory a waiting pooled kernel costs.
 */
export const contexts: Suite = {
  name: 'contexts',
  title: '5. Context creation and restart',
  shared: false,
  async run(env: BenchEnv): Promise<SuiteResult> {
    const rounds = env.quick ? 3 : 10;
    env.progress('contexts: starting a server without a kernel pool and one with python=1');
    const [none, pooled] = await Promise.all([startServer(env, 'python=0'), startServer(env, 'python=1')]);
    try {
      const sub = 'bench-sub';
      await mkdir(path.join(pooled.server.workspaceDir, sub), { recursive: true });
      const ready = () => settled(pooled.api, pooled.rest, 1);
      const raw = none.rest;
      const create = (server: typeof none, cwd?: string) => async () => {
        if (server === pooled) await ready();
        const started = now();
        const { id } = await server.api.json<{ id: string }>('POST', '/contexts', cwd ? { cwd } : {});
        const elapsed = now() - started;
        await server.api.deleteContext(id);
        return elapsed;
      };
      /**
       * Jupyter's own side: `begin` starts (or restarts) a kernel and says when the clock started;
       * the time runs until the kernel answers its first kernel_info_request over a new WebSocket.
       */
      const rawKernel = async (begin: (started: number) => Promise<{ id: string; started: number }>): Promise<number> => {
        const { id, started } = await begin(now());
        const client = await RawKernelClient.connect(raw.url, raw.token, id);
        await client.kernelInfo();
        const elapsed = now() - started;
        client.close();
        await raw.shutdownKernel(id);
        return elapsed;
      };
      const restart = (server: typeof none) => async () => {
        const id = await server.api.createContext();
        await server.api.execute({ code: 'x = 1', context_id: id });
        if (server === pooled) await ready();
        const started = now();
        await server.api.json('POST', `/contexts/${id}/restart`);
        const elapsed = now() - started;
        await server.api.deleteContext(id);
        return elapsed;
      };
      const sides: Side[] = [
        {
          key: 'rawCreate',
          label: 'Jupyter: `POST /api/kernels` + WebSocket + kernel_info_reply',
          run: () =>
            rawKernel(async (started) => {
              const id = await raw.startKernel(none.server.workspaceDir);
              return { id, started };
            }),
        },
        { key: 'create0', label: 'API `POST /contexts`, no pool', run: create(none) },
        { key: 'create1', label: 'API `POST /contexts`, pool python=1', run: create(pooled) },
        { key: 'create1sub', label: 'API `POST /contexts` with another `cwd`, pool python=1', run: create(pooled, sub) },
        {
          key: 'rawRestart',
          label: 'Jupyter: `POST /api/kernels/{id}/restart` + WebSocket + kernel_info_reply',
          run: () =>
            rawKernel(async () => {
              const id = await raw.startKernel(none.server.workspaceDir);
              const started = now();
              await raw.restartKernel(id);
              return { id, started };
            }),
        },
        { key: 'restart0', label: 'API `POST /contexts/{id}/restart`, no pool', run: restart(none) },
        { key: 'restart1', label: 'API `POST /contexts/{id}/restart`, pool python=1', run: restart(pooled) },
      ];

      for (const side of sides) await side.run();
      const times: Record<string, number[]> = Object.fromEntries(sides.map((side) => [side.key, []]));
      for (let round = 0; round < rounds; round++) {
        env.progress(`context creation and restart, round ${round + 1}/${rounds}`);
        for (const side of roundOrder(sides, round)) times[side.key]!.push(await side.run());
      }

      // What a pooled kernel costs while it waits, next to the default context's kernel (one `1+1` run).
      await ready();
      const defaultKernel = String((await pooled.api.execute({ code: KERNEL_ID_CODE })).result);
      const waiting = (await pooled.rest.listKernels()).map((kernel) => kernel.id).filter((id) => id !== defaultKernel);
      if (waiting.length !== 1) throw new Error(`expected one pooled kernel, found ${waiting.length}`);
      const [pooledMemory, contextMemory] = [await kernelMemory(waiting[0]!), await kernelMemory(defaultKernel)];
      const mib = (bytes: number) => formatNumber(bytes / 2 ** 20, 1);

      const p50 = (key: string) => percentile(times[key]!, 50);
      const details = [
        `${rounds} rounds after one warm-up of each side, the sides alternated. Two servers of this benchmark's own: one with \`KERNEL_POOL=python=0\`, one with \`python=1\`; before each step on the pooled one the pool is full and Jupyter holds no kernel being started or shut down, so no refill runs while any side is timed. Restarts are of a context that ran \`x = 1\`. Each kernel is shut down (untimed) after its step.`,
        '',
        table(
          ['Side', 'p50 ms', 'p90 ms', 'min ms', 'max ms'],
          sides.map((side) => [side.label, ...[50, 90, 0, 100].map((p) => formatNumber(percentile(times[side.key]!, p), 1))]),
        ),
        '',
        `Memory of a pooled Python kernel while it waits (its launcher and kernel processes): RSS ${mib(pooledMemory.rss)} MiB, PSS ${mib(pooledMemory.pss)} MiB (${pooledMemory.processes} processes); the default context's kernel after one \`1+1\`: RSS ${mib(contextMemory.rss)} MiB, PSS ${mib(contextMemory.pss)} MiB. PSS shares the pages common to several kernels (the Python interpreter and libraries) among them: it is what one more kernel adds.`,
      ].join('\n');

      return {
        summary: [
          {
            benchmark: 'Context creation p50, pool python=1',
            ours: `${formatNumber(p50('create1'), 1)} ms`,
            baseline: `${formatNumber(p50('rawCreate'), 0)} ms (Jupyter kernel start + kernel_info_reply); ${formatNumber(p50('create0'), 0)} ms without a pool`,
            ratio: formatRatio(ratio(p50('create1'), p50('rawCreate'))),
            target: '≤ 30 ms',
            met: p50('create1') <= 30,
          },
          {
            benchmark: 'Context restart p50, pool python=1',
            ours: `${formatNumber(p50('restart1'), 1)} ms`,
            baseline: `${formatNumber(p50('rawRestart'), 0)} ms (Jupyter restart + kernel_info_reply); ${formatNumber(p50('restart0'), 0)} ms without a pool`,
            ratio: formatRatio(ratio(p50('restart1'), p50('rawRestart'))),
            target: '≤ 50 ms',
            met: p50('restart1') <= 50,
          },
          {
            benchmark: 'Memory of a waiting pooled Python kernel',
            ours: `PSS ${mib(pooledMemory.pss)} MiB, RSS ${mib(pooledMemory.rss)} MiB`,
            baseline: `an idle context's kernel: PSS ${mib(contextMemory.pss)} MiB`,
            ratio: '',
            target: '',
            met: undefined,
          },
        ],
        details,
        data: { times, pooledMemory, contextMemory },
      };
    } finally {
      for (const side of [none, pooled]) {
        await side.api.close().catch(() => undefined);
        await side.server.stop();
        await rm(side.dir, { recursive: true, force: true });
      }
    }
  },
};
