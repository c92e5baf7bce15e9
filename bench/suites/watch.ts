import { watch } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { DirectoryWatcher } from '../../server/sandbox-files/watcher.js';
import { EventType, Filesystem, type WatchDirResponse } from '../../server/transports/connect/gen/envd/filesystem/filesystem_pb.js';
import { formatNumber, formatRatio, now, percentile, ratio } from '../lib/stats.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

/** Waiting for one event longer than this is an error, not a slow sample. */
const EVENT_TIMEOUT_MS = 5_000;

interface Side {
  key: 'raw' | 'watcher' | 'envd';
  label: string;
  /** Starts watching `dir`: `arrived(name)` when a write to `name` is seen; returns its stop. */
  start(dir: string, arrived: (name: string) => void, failed: (error: Error) => void): Promise<() => void>;
}

const localSides: Side[] = [
  {
    key: 'raw',
    label: 'fs.watch alone (libuv inotify, no classification)',
    async start(dir, arrived, failed) {
      const handle = watch(dir, (eventType, filename) => {
        if (eventType === 'change' && filename) arrived(filename.toString());
      });
      handle.on('error', failed);
      return () => handle.close();
    },
  },
  {
    key: 'watcher',
    label: 'DirectoryWatcher (the process host’s, behind envd WatchDir)',
    async start(dir, arrived, failed) {
      const watcher = await DirectoryWatcher.start(dir, {
        recursive: false,
        maxDirectories: 1,
        onEvent: (event) => {
          if (event.type === 'write') arrived(event.name);
        },
        onError: failed,
      });
      return () => watcher.close();
    },
  },
];

/** The whole way an e2b client sees it: envd's WatchDir stream (Connect, JSON), from the API through the process host. */
function envdSide(envdUrl: string): Side {
  const client = createClient(Filesystem, createConnectTransport({ baseUrl: envdUrl, httpVersion: '1.1', useBinaryFormat: false }));
  return {
    key: 'envd',
    label: 'envd `WatchDir` (Connect stream: API, process host, DirectoryWatcher)',
    async start(dir, arrived, failed) {
      const stop = new AbortController();
      const stream: AsyncIterator<WatchDirResponse, unknown> = client
        .watchDir({ path: dir, recursive: false }, { signal: stop.signal })
        [Symbol.asyncIterator]();
      const first = await stream.next();
      if (first.done || first.value.event.case !== 'start') throw new Error('WatchDir did not start with its start event');
      void (async () => {
        try {
          for (;;) {
            const next = await stream.next();
            if (next.done) return;
            const event = next.value.event;
            if (event.case === 'filesystem' && event.value.type === EventType.WRITE) arrived(event.value.name);
          }
        } catch (error) {
          if (!stop.signal.aborted) failed(error as Error);
        }
      })();
      return () => stop.abort();
    },
  };
}

/** Rewrites `count` existing files one after the other, each time until its write is reported. */
async function measure(env: BenchEnv, side: Side, count: number): Promise<number[]> {
  const dir = await mkdtemp(path.join(env.tmpDir, `watch-${side.key}-`));
  for (let i = 0; i < count; i++) await writeFile(path.join(dir, `f${i}`), 'before');
  let waiting: { name: string; resolve: () => void; reject: (error: Error) => void } | undefined;
  const stop = await side.start(
    dir,
    (name) => {
      if (waiting?.name === name) waiting.resolve();
    },
    (error) => waiting?.reject(error),
  );
  const samples: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const name = `f${i}`;
      let timer: NodeJS.Timeout | undefined;
      const seen = new Promise<void>((resolve, reject) => {
        waiting = { name, resolve, reject };
        timer = setTimeout(() => reject(new Error(`no write event for ${name} within ${EVENT_TIMEOUT_MS} ms`)), EVENT_TIMEOUT_MS);
      });
      const started = now();
      await writeFile(path.join(dir, name), `after ${i}`);
      await seen.finally(() => clearTimeout(timer));
      samples.push(now() - started);
    }
  } finally {
    waiting = undefined;
    stop();
    await rm(dir, { recursive: true, force: true });
  }
  return samples;
}

/**
 * How long a write takes to come out as a `write` event: the process host's DirectoryWatcher
 * (fs.watch plus lstat to tell the five kinds apart) against fs.watch alone on the same kernel.
 */
export const watchLatency: Suite = {
  name: 'watch',
  title: '11. Watch latency: a write to its `write` event',
  shared: true,
  async run(env: BenchEnv, { server }: SharedServer): Promise<SuiteResult> {
    const sides = [...localSides, envdSide(server.envdUrl)];
    const rounds = env.quick ? 2 : 5;
    const perRound = env.quick ? 100 : 200;
    const samples: Record<Side['key'], number[]> = { raw: [], watcher: [], envd: [] };
    for (const side of sides) await measure(env, side, 20); // warm-up
    for (let round = 0; round < rounds; round++) {
      for (const side of roundOrder(sides, round)) {
        env.progress(`watch: round ${round + 1}/${rounds}, ${side.key}`);
        samples[side.key].push(...(await measure(env, side, perRound)));
      }
    }
    const stats = Object.fromEntries(
      sides.map((side) => {
        const values = samples[side.key];
        return [side.key, { p50: percentile(values, 50), p90: percentile(values, 90), p99: percentile(values, 99), n: values.length }];
      }),
    ) as Record<Side['key'], { p50: number; p90: number; p99: number; n: number }>;
    const details = [
      `${rounds} rounds of ${perRound} writes per side, sides interleaved (order rotated each round), after 20 warm-up writes per side. ` +
        'Each write rewrites an existing file in a watched directory (in this process) and waits for its write event before the next; ' +
        'the time runs from before writeFile to the event. Percentiles pool every round. fs.watch alone is the floor: ' +
        'the watcher adds an lstat per changed name and one batch per kernel read (setImmediate); ' +
        "envd's WatchDir adds the host's socket, the API and a Connect stream over HTTP/1.1 (what e2b's SDK sees).",
      '',
      table(
        ['side', 'p50 ms', 'p90 ms', 'p99 ms', 'samples'],
        sides.map((side) => {
          const s = stats[side.key];
          return [side.label, formatNumber(s.p50, 3), formatNumber(s.p90, 3), formatNumber(s.p99, 3), String(s.n)];
        }),
      ),
    ].join('\n');
    return {
      summary: [
        {
          benchmark: 'Watch: write to event p50',
          ours: `${formatNumber(stats.watcher.p50, 3)} ms`,
          baseline: `${formatNumber(stats.raw.p50, 3)} ms (fs.watch alone)`,
          ratio: formatRatio(ratio(stats.watcher.p50, stats.raw.p50)),
          target: '',
          met: undefined,
        },
        {
          benchmark: "Watch: write to event p50, e2b's WatchDir",
          ours: `${formatNumber(stats.envd.p50, 3)} ms (p99 ${formatNumber(stats.envd.p99, 3)})`,
          baseline: `${formatNumber(stats.raw.p50, 3)} ms (p99 ${formatNumber(stats.raw.p99, 3)}; fs.watch alone)`,
          ratio: formatRatio(ratio(stats.envd.p50, stats.raw.p50)),
          target: '',
          met: undefined,
        },
        {
          benchmark: 'Watch: write to event p99',
          ours: `${formatNumber(stats.watcher.p99, 3)} ms`,
          baseline: `${formatNumber(stats.raw.p99, 3)} ms (fs.watch alone)`,
          ratio: formatRatio(ratio(stats.watcher.p99, stats.raw.p99)),
          target: '',
          met: undefined,
        },
      ],
      details,
      data: { rounds, perRound, stats },
    };
  },
};
