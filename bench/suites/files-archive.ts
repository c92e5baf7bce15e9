import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MemorySampler, type MemoryPeak } from '../lib/proc-memory.js';
import { formatMiB, formatNumber, formatRatio, max, median, MiB, now, ratio } from '../lib/stats.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const MEMORY_BUDGET = 64 * MiB;

interface Timed {
  seconds: number;
  memory?: MemoryPeak;
}

/** Times one step after writing back the dirty pages of the previous ones. */
async function timed(pid: number | undefined, work: () => Promise<void>): Promise<Timed> {
  execFileSync('sync');
  const sampler = pid ? new MemorySampler(pid) : undefined;
  const started = now();
  await work();
  const seconds = (now() - started) / 1000;
  return { seconds, memory: sampler?.stop() };
}

/**
 * A tree of `size` bytes: 15/16 of it in 16 MiB files, the rest in 32 KiB files, spread over
 * a few directories, incompressible.
 */
async function makeTree(dir: string, size: number): Promise<{ files: number }> {
  const block = randomFillSync(Buffer.alloc(16 * MiB));
  const large = Math.max(1, Math.round((size * 15) / 16 / (16 * MiB)));
  const small = Math.round((size - large * 16 * MiB) / (32 * 1024));
  for (let i = 0; i < large; i++) {
    const sub = path.join(dir, `large-${i % 4}`);
    await mkdir(sub, { recursive: true });
    block.writeUInt32LE(i, 0);
    await writeFile(path.join(sub, `blob-${i}.bin`), block);
  }
  for (let i = 0; i < small; i++) {
    const sub = path.join(dir, 'small', `d${i % 32}`);
    await mkdir(sub, { recursive: true });
    await writeFile(path.join(sub, `f-${i}.dat`), block.subarray(i * 8, i * 8 + 32 * 1024));
  }
  return { files: large + small };
}

type Side = 'api' | 'tar';
const LABELS: Record<'download' | 'upload', Record<Side, string>> = {
  download: { api: 'API `GET /files/{dir}?format=tar`', tar: '`tar -c` of the same tree, piped to `cat > /dev/null`' },
  upload: { api: 'API `PUT /files/{dir}?extract=tar`', tar: '`tar -x` of the same archive on the same disk' },
};

/**
 * A whole directory out as a tar stream and back in through extraction, against GNU tar doing
 * the same on the same disk: the cost of HTTP, the checks and the staging directory.
 */
export const filesArchive: Suite = {
  name: 'files-archive',
  title: '4b. Files: directories as tar archives',
  shared: true,
  async run(env: BenchEnv, { server, api }: SharedServer): Promise<SuiteResult> {
    const size = env.quick ? 64 * MiB : 1024 * MiB;
    const rounds = env.quick ? 1 : 2;
    const label = size >= 1024 * MiB ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`;
    const base = 'bench-archive';
    const workspaceBase = path.join(server.workspaceDir, base);
    const tree = path.join(workspaceBase, 'tree');
    const archive = path.join(env.tmpDir, 'bench-archive.tar');
    const tarTarget = path.join(env.tmpDir, 'bench-archive-untar');
    try {
      env.progress(`files-archive: writing a ${label} tree`);
      await mkdir(tree, { recursive: true });
      const { files } = await makeTree(tree, size);
      execFileSync('tar', ['-cf', archive, '-C', tree, '.']);
      const archiveSize = (await stat(archive)).size;

      const download: { key: Side; run: () => Promise<Timed> }[] = [
        {
          key: 'api',
          run: () =>
            timed(server.apiPid, async () => {
              const bytes = await api.getFile(`${base}/tree?format=tar`);
              if (bytes < size) throw new Error(`the archive held ${bytes} bytes, less than the tree's ${size}`);
            }),
        },
        {
          key: 'tar',
          run: () => timed(undefined, async () => void execFileSync('sh', ['-c', `tar -cf - -C '${tree}' . | cat > /dev/null`])),
        },
      ];
      let round = 0;
      const upload: { key: Side; run: () => Promise<Timed> }[] = [
        {
          key: 'api',
          run: async () => {
            const target = `${base}/up-${round}`;
            const result = await timed(server.apiPid, async () => void (await api.putFile(`${target}?extract=tar`, archive, archiveSize)));
            const written = (await stat(path.join(server.workspaceDir, target, 'large-0', 'blob-0.bin'))).size;
            if (written !== 16 * MiB) throw new Error('the extracted tree is incomplete');
            await rm(path.join(server.workspaceDir, target), { recursive: true, force: true });
            return result;
          },
        },
        {
          key: 'tar',
          run: async () => {
            await mkdir(tarTarget, { recursive: true });
            const result = await timed(undefined, async () => void execFileSync('tar', ['-xf', archive, '-C', tarTarget]));
            await rm(tarTarget, { recursive: true, force: true });
            return result;
          },
        },
      ];

      const runs = { download: { api: [] as Timed[], tar: [] as Timed[] }, upload: { api: [] as Timed[], tar: [] as Timed[] } };
      for (round = 0; round < rounds; round++) {
        env.progress(`files-archive ${label}, round ${round + 1}/${rounds}`);
        for (const side of roundOrder(download, round)) runs.download[side.key].push(await side.run());
        for (const side of roundOrder(upload, round)) runs.upload[side.key].push(await side.run());
      }

      const rate = (list: Timed[]) => median(list.map((run) => size / MiB / run.seconds));
      const directions = (['download', 'upload'] as const).map((direction) => {
        const memory = runs[direction].api.map((run) => run.memory!);
        return {
          direction,
          api: rate(runs[direction].api),
          tar: rate(runs[direction].tar),
          idle: median(memory.map((m) => m.before)),
          peak: max(memory.map((m) => m.peak)),
          growth: max(memory.map((m) => m.peak - m.before)),
        };
      });

      const details = [
        `A ${label} tree of ${files} files (15/16 of the bytes in 16 MiB files, the rest in 32 KiB files over 36 directories), random bytes; ` +
          `${rounds} round(s), the sides alternated, \`sync\` before each timed step. The download is read to its end by an undici client; ` +
          "the upload streams a tar made once by GNU tar. Rates are of the tree's bytes. Baselines: GNU tar on the same tree and disk, " +
          'without HTTP, checks or staging. RSS of the API process sampled every 10 ms with VmHWM reset before each step.',
        '',
        table(
          ['Direction', 'Side', 'MiB/s', 'API / tar', 'RSS before', 'peak RSS', 'peak − before'],
          directions.flatMap((d) => [
            [
              d.direction,
              LABELS[d.direction].api,
              formatNumber(d.api, 0),
              formatRatio(ratio(d.api, d.tar)),
              formatMiB(d.idle),
              formatMiB(d.peak),
              formatMiB(d.growth),
            ],
            ['', LABELS[d.direction].tar, formatNumber(d.tar, 0), '', '', '', ''],
          ]),
        ),
      ].join('\n');

      return {
        summary: directions.flatMap((d) => [
          {
            benchmark: `Directory ${d.direction} as tar, ${label}`,
            ours: `${formatNumber(d.api, 0)} MiB/s`,
            baseline: `${formatNumber(d.tar, 0)} MiB/s (GNU tar ${d.direction === 'download' ? '-c' : '-x'})`,
            ratio: formatRatio(ratio(d.api, d.tar)),
            target: '',
            met: undefined,
          },
          {
            benchmark: `Directory ${d.direction} as tar: API peak memory`,
            ours: `+${formatMiB(d.growth)} (peak ${formatMiB(d.peak)})`,
            baseline: `idle ${formatMiB(d.idle)}`,
            ratio: '',
            target: '≤ idle + 64 MiB',
            met: d.growth <= MEMORY_BUDGET,
          },
        ]),
        details,
        data: { size, files, runs },
      };
    } finally {
      await rm(archive, { force: true });
      await rm(tarTarget, { recursive: true, force: true });
      await rm(workspaceBase, { recursive: true, force: true });
    }
  },
};
