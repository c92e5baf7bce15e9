import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiClient } from '../lib/api-client.js';
import { MemorySampler, type MemoryPeak } from '../lib/proc-memory.js';
import { spawnHelper } from '../lib/processes.js';
import { stopProcess } from '../../tests/helpers/processes.js';
import { formatMiB, formatNumber, formatRatio, max, median, MiB, now, ratio } from '../lib/stats.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const MEMORY_BUDGET = 64 * MiB;

/** Writes `size` bytes of incompressible data: a random 8 MiB block, repeated. */
async function makeSource(file: string, size: number): Promise<void> {
  const block = randomFillSync(Buffer.alloc(8 * MiB));
  let written = 0;
  await pipeline(
    (async function* () {
      while (written < size) {
        const piece = block.subarray(0, Math.min(block.length, size - written));
        written += piece.length;
        yield piece;
      }
    })(),
    createWriteStream(file),
  );
}

function discard(): Writable {
  return new Writable({
    highWaterMark: MiB,
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

interface Timed {
  seconds: number;
  memory?: MemoryPeak;
}

/** Times one step; the previous steps' dirty pages are written back first, so no side pays for another's. */
async function timed(pid: number | undefined, work: () => Promise<void>): Promise<Timed> {
  execFileSync('sync');
  const sampler = pid ? new MemorySampler(pid) : undefined;
  const started = now();
  await work();
  const seconds = (now() - started) / 1000;
  return { seconds, memory: sampler?.stop() };
}

type SideKey = 'api' | 'envd' | 'plain' | 'disk';
const SIDE_LABELS: Record<SideKey, Record<'upload' | 'download', string>> = {
  api: { upload: 'API `PUT /files/{path}`', download: 'API `GET /files/{path}`' },
  envd: { upload: "envd `POST /files?path=` (raw body, as e2b's SDK streams)", download: 'envd `GET /files?path=`' },
  plain: { upload: 'bare `node:http` server, PUT', download: 'bare `node:http` server, GET' },
  disk: { upload: 'stream copy on disk', download: 'stream read from disk' },
};

/**
 * A large upload and download through the file API, against the same bytes through a bare
 * `node:http` server (the HTTP floor) and a stream copy on the same disk (the disk floor).
 */
export const files: Suite = {
  name: 'files',
  title: '4. Files: upload and download',
  shared: true,
  async run(env: BenchEnv, { server, api }: SharedServer): Promise<SuiteResult> {
    const size = env.quick ? 64 * MiB : 1024 * MiB;
    const rounds = env.quick ? 2 : 3;
    const label = size >= 1024 * MiB ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`;
    const source = path.join(env.tmpDir, 'files-source.bin');
    const route = 'bench-files/upload.bin';
    const uploaded = path.join(server.workspaceDir, route);
    const plainDir = path.join(server.workspaceDir, 'bench-plain');
    const copied = path.join(server.workspaceDir, 'bench-files/stream-copy.bin');

    // The route answers before anything large is sent: a missing file API fails here, clearly.
    const probe = path.join(env.tmpDir, 'files-probe.txt');
    await writeFile(probe, 'probe');
    await api.putFile('bench-files/probe.txt', probe, 5).catch((error: Error) => {
      throw new Error(`the file API (PUT /files/{path}) is not usable on this build: ${error.message}`);
    });

    env.progress(`files: writing a ${label} source file`);
    await makeSource(source, size);
    await mkdir(plainDir, { recursive: true });
    const plain = await spawnHelper('plain-file-server.ts', [plainDir]);
    const plainClient = new ApiClient(plain.url);
    // The envd door writes and reads as the kernels' user, through the process host.
    const envdClient = new ApiClient(server.envdUrl);
    const envdFile = path.join(server.workspaceDir, 'bench-files', 'envd.bin');
    try {
      const check = (bytes: number, what: string) => {
        if (bytes !== size) throw new Error(`${what} returned ${bytes} of ${size} bytes`);
      };
      const upload: { key: SideKey; run: () => Promise<Timed> }[] = [
        { key: 'api', run: () => timed(server.apiPid, async () => void (await api.putFile(route, source, size))) },
        { key: 'envd', run: () => timed(server.apiPid, () => envdClient.envdUpload(envdFile, source, size)) },
        { key: 'plain', run: () => timed(plain.child.pid, async () => void (await plainClient.putFile('upload.bin', source, size))) },
        {
          key: 'disk',
          run: () => timed(undefined, () => pipeline(createReadStream(source, { highWaterMark: MiB }), createWriteStream(copied))),
        },
      ];
      const download: { key: SideKey; run: () => Promise<Timed> }[] = [
        { key: 'api', run: () => timed(server.apiPid, async () => check(await api.getFile(route), `GET /files/${route}`)) },
        { key: 'envd', run: () => timed(server.apiPid, async () => check(await envdClient.envdDownload(envdFile), 'envd GET /files')) },
        { key: 'plain', run: () => timed(plain.child.pid, async () => check(await plainClient.getFile('upload.bin'), 'the bare server')) },
        { key: 'disk', run: () => timed(undefined, () => pipeline(createReadStream(uploaded, { highWaterMark: MiB }), discard())) },
      ];

      const empty = () => ({ api: [] as Timed[], envd: [] as Timed[], plain: [] as Timed[], disk: [] as Timed[] });
      const runs = { upload: empty(), download: empty() };
      for (let round = 0; round < rounds; round++) {
        env.progress(`files ${label}, round ${round + 1}/${rounds}`);
        for (const side of roundOrder(upload, round)) runs.upload[side.key].push(await side.run());
        const onDisk = (await stat(uploaded)).size;
        if (onDisk !== size) throw new Error(`the uploaded file holds ${onDisk} of ${size} bytes`);
        for (const side of roundOrder(download, round)) runs.download[side.key].push(await side.run());
      }

      const rate = (list: Timed[]) => median(list.map((run) => size / MiB / run.seconds));
      const memoryOf = (list: Timed[]) => {
        const memory = list.map((run) => run.memory!);
        return {
          idle: median(memory.map((m) => m.before)),
          peak: max(memory.map((m) => m.peak)),
          growth: max(memory.map((m) => m.peak - m.before)),
        };
      };
      const directions = (['upload', 'download'] as const).map((direction) => ({
        direction,
        api: rate(runs[direction].api),
        envd: rate(runs[direction].envd),
        envdMemory: memoryOf(runs[direction].envd),
        plain: rate(runs[direction].plain),
        disk: rate(runs[direction].disk),
        memory: memoryOf(runs[direction].api),
        plainMemory: memoryOf(runs[direction].plain),
      }));

      const details = [
        `${label} of random bytes; ${rounds} rounds, the sides alternated; \`sync\` before each timed step so that no side pays for another's dirty pages. ` +
          'The client streams the upload from a file and reads the download to its end (undici, keep-alive). ' +
          "e2b's envd door moves the same bytes to and from a path as the kernels' user: the API relays them to the process host over its Unix socket (the host's own memory is not in the RSS column). " +
          'Baselines: the same bytes through a bare `node:http` server in a process of its own (`pipeline` to and from the same disk, no routing, checks or atomic rename: the HTTP floor), ' +
          'and a stream copy / stream read of the same file with no HTTP at all (the disk floor). ' +
          'Medians over the rounds; RSS of the server processes sampled every 10 ms with VmHWM reset before each step.',
        '',
        table(
          ['Direction', 'Side', 'MiB/s', 'API / side', 'RSS before', 'peak RSS', 'peak − before'],
          directions.flatMap((d) => [
            [
              d.direction,
              SIDE_LABELS.api[d.direction],
              formatNumber(d.api, 0),
              '',
              formatMiB(d.memory.idle),
              formatMiB(d.memory.peak),
              formatMiB(d.memory.growth),
            ],
            [
              '',
              SIDE_LABELS.envd[d.direction],
              formatNumber(d.envd, 0),
              formatRatio(ratio(d.api, d.envd)),
              formatMiB(d.envdMemory.idle),
              formatMiB(d.envdMemory.peak),
              formatMiB(d.envdMemory.growth),
            ],
            [
              '',
              SIDE_LABELS.plain[d.direction],
              formatNumber(d.plain, 0),
              formatRatio(ratio(d.api, d.plain)),
              formatMiB(d.plainMemory.idle),
              formatMiB(d.plainMemory.peak),
              formatMiB(d.plainMemory.growth),
            ],
            ['', SIDE_LABELS.disk[d.direction], formatNumber(d.disk, 0), formatRatio(ratio(d.api, d.disk)), '', '', ''],
          ]),
        ),
      ].join('\n');

      return {
        summary: directions.flatMap((d) => [
          {
            benchmark: `File ${d.direction} ${label}`,
            ours: `${formatNumber(d.api, 0)} MiB/s`,
            baseline: `${formatNumber(d.plain, 0)} MiB/s (bare node:http); ${formatNumber(d.disk, 0)} MiB/s (${SIDE_LABELS.disk[d.direction]})`,
            ratio: `${formatRatio(ratio(d.api, d.plain))}; ${formatRatio(ratio(d.api, d.disk))}`,
            target: d.direction === 'upload' ? '≥ 0.9x bare node:http' : '',
            met: d.direction === 'upload' ? ratio(d.api, d.plain) >= 0.9 : undefined,
          },
          {
            benchmark: `File ${d.direction}: API peak memory`,
            ours: `+${formatMiB(d.memory.growth)} (peak ${formatMiB(d.memory.peak)})`,
            baseline: `idle ${formatMiB(d.memory.idle)}`,
            ratio: '',
            target: '≤ idle + 64 MiB',
            met: d.memory.growth <= MEMORY_BUDGET,
          },
          {
            benchmark: `File ${d.direction} ${label}, e2b's envd door`,
            ours: `${formatNumber(d.envd, 0)} MiB/s`,
            baseline: `${formatNumber(d.plain, 0)} MiB/s (bare node:http)`,
            ratio: formatRatio(ratio(d.envd, d.plain)),
            target: '',
            met: undefined,
          },
          {
            benchmark: `File ${d.direction}, envd door: API peak memory`,
            ours: `+${formatMiB(d.envdMemory.growth)} (peak ${formatMiB(d.envdMemory.peak)})`,
            baseline: `idle ${formatMiB(d.envdMemory.idle)}`,
            ratio: '',
            target: '≤ idle + 64 MiB',
            met: d.envdMemory.growth <= MEMORY_BUDGET,
          },
        ]),
        details,
        data: { size, runs },
      };
    } finally {
      await plainClient.close();
      await envdClient.close();
      await stopProcess(plain.child);
      await rm(source, { force: true });
      await rm(path.join(server.workspaceDir, 'bench-files'), { recursive: true, force: true });
      await rm(plainDir, { recursive: true, force: true });
    }
  },
};
