import { readdirSync } from 'node:fs';
import { readMemory } from '../lib/proc-memory.js';
import { formatNumber, now, percentile } from '../lib/stats.js';
import { table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const MiB = 1024 * 1024;

/** Open file descriptors of a process: a socket or file left behind shows up here. */
function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Clients that go away mid-execution: each starts an execution that would run for 30 s, reads its
 * first line and disconnects. The API must interrupt the kernel and free the context, leaving no
 * listener, timer, socket or buffer behind: its RSS and open descriptors after 100 abandoned
 * executions are compared with those after a warm-up of the same, and the time from each
 * disconnect to the context's next completed execution is measured.
 */
export const abandoned: Suite = {
  name: 'abandoned',
  title: '7. Abandoned executions',
  shared: true,
  async run(env: BenchEnv, { server, api }: SharedServer): Promise<SuiteResult> {
    const count = env.quick ? 20 : 100;
    const context = await api.createContext();
    const abandonOne = async (index: number): Promise<number> => {
      const controller = new AbortController();
      const response = await fetch(`${server.baseUrl}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ context_id: context, code: `import time\nprint(${index}, flush=True)\ntime.sleep(30)` }),
        signal: controller.signal,
      });
      if (response.status !== 200) throw new Error(`POST /execute answered ${response.status}`);
      const reader = response.body!.getReader();
      await reader.read();
      controller.abort();
      const started = now();
      const next = await api.execute({ context_id: context, code: '1+1' });
      if (next.result !== '2') throw new Error(`the execution after a disconnect returned ${String(next.result)}`);
      return now() - started;
    };

    try {
      for (let i = 0; i < 10; i++) await abandonOne(i);
      const before = { memory: readMemory(server.apiPid), fds: openDescriptors(server.apiPid) };
      const recoveries: number[] = [];
      for (let i = 0; i < count; i++) {
        if (i % 20 === 0) env.progress(`abandoned executions ${i}/${count}`);
        recoveries.push(await abandonOne(i));
      }
      const after = { memory: readMemory(server.apiPid), fds: openDescriptors(server.apiPid) };
      const growth = (after.memory.rss - before.memory.rss) / MiB;
      const details = [
        `${count} executions abandoned in a row (each reads its first line, then disconnects; the code would have run 30 s), after 10 of the same as warm-up. After each, the same context runs \`1+1\` to completion: "recovery" is the time from the disconnect to that result.`,
        '',
        table(
          ['', 'after warm-up', `after ${count} more`, 'change'],
          [
            [
              'API RSS',
              `${formatNumber(before.memory.rss / MiB, 1)} MiB`,
              `${formatNumber(after.memory.rss / MiB, 1)} MiB`,
              `${growth >= 0 ? '+' : ''}${formatNumber(growth, 1)} MiB`,
            ],
            [
              'API open descriptors',
              String(before.fds),
              String(after.fds),
              `${after.fds - before.fds >= 0 ? '+' : ''}${after.fds - before.fds}`,
            ],
          ],
        ),
        '',
        table(
          ['Recovery', 'p50 ms', 'p90 ms', 'max ms'],
          [['disconnect → next `1+1` done', ...[50, 90, 100].map((p) => formatNumber(percentile(recoveries, p), 0))]],
        ),
      ].join('\n');
      return {
        summary: [
          {
            benchmark: `${count} abandoned executions: API RSS / open descriptors`,
            ours: `${growth >= 0 ? '+' : ''}${formatNumber(growth, 1)} MiB / ${after.fds - before.fds >= 0 ? '+' : ''}${after.fds - before.fds}`,
            baseline: 'after a warm-up of 10',
            ratio: '',
            target: 'flat',
            met: undefined,
          },
          {
            benchmark: 'Disconnect → next execution done, p50',
            ours: `${formatNumber(percentile(recoveries, 50), 0)} ms`,
            baseline: '',
            ratio: '',
            target: '≤ 1 s',
            met: percentile(recoveries, 50) <= 1000,
          },
        ],
        details,
        data: { count, before, after, recoveries },
      };
    } finally {
      await api.deleteContext(context);
    }
  },
};
