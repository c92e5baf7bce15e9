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

interface TreeShape {
  key: 'large' | 'small' | 'tiny';
  /** What the report calls it. */
  label: string;
  size: number;
  files: number;
  /** A file of the tree, relative to it, that must be whole after extraction. */
  probe: string;
  probeSize: number;
}

/**
 * The three shapes of tree, each incompressible: mostly 16 MiB files (the bytes' cost), 128 KiB
 * files (both), and thousands of 2 KiB files (the per-entry cost: opens, stats, headers).
 */
function shapes(quick: boolean): TreeShape[] {
  const large = quick ? 64 * MiB : 1024 * MiB;
  const largeFiles = Math.max(1, Math.round((large * 15) / 16 / (16 * MiB)));
  const largeSmall = Math.round((large - largeFiles * 16 * MiB) / (32 * 1024));
  const small = quick ? 250 : 2000;
  const tiny = quick ? 2000 : 20000;
  return [
    { key: 'large', label: label(large), size: large, files: largeFiles + largeSmall, probe: 'large-0/blob-0.bin', probeSize: 16 * MiB },
    {
      key: 'small',
      label: `${label(small * 128 * 1024)} in ${small} files`,
      size: small * 128 * 1024,
      files: small,
      probe: 'd0/f-0.dat',
      probeSize: 128 * 1024,
    },
    { key: 'tiny', label: `${formatNumber(tiny, 0)} files of 2 KiB`, size: tiny * 2048, files: tiny, probe: 'd0/f-0.dat', probeSize: 2048 },
  ];
}

function label(size: number): string {
  return size >= 1024 * MiB ? `${size / (1024 * MiB)} GiB` : `${size / MiB} MiB`;
}

async function makeTree(dir: string, shape: TreeShape): Promise<void> {
  const block = randomFillSync(Buffer.alloc(16 * MiB));
  if (shape.key === 'large') {
    // 15/16 of the bytes in 16 MiB files, the rest in 32 KiB files over 32 directories.
    const large = Math.max(1, Math.round((shape.size * 15) / 16 / (16 * MiB)));
    const small = Math.round((shape.size - large * 16 * MiB) / (32 * 1024));
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
    return;
  }
  // 100 files a directory, as a project's sources or a data set's shards would be spread.
  const each = shape.size / shape.files;
  for (let i = 0; i < shape.files; i++) {
    const sub = path.join(dir, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) await mkdir(sub, { recursive: true });
    const offset = (i * 4099) % (block.length - each);
    await writeFile(path.join(sub, `f-${i % 100}.dat`), block.subarray(offset, offset + each));
  }
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
    const rounds = env.quick ? 1 : 2;
    const summary: SuiteResult['summary'] = [];
    const details: string[] = [
      `Three trees, random bytes: ${shapes(env.quick)
        .map((shape) => shape.label)
        .join('; ')} (the first with 15/16 of its bytes in 16 MiB files, the rest in 32 KiB files). ` +
        `${rounds} round(s) each, the sides alternated, \`sync\` before each timed step. The download is read to its end by an undici client; ` +
        "the upload streams a tar made once by GNU tar. Rates are of the tree's bytes. Baselines: GNU tar on the same tree and disk, " +
        'without HTTP, checks or staging. RSS of the API process sampled every 10 ms with VmHWM reset before each step.',
      '',
    ];
    const rows: string[][] = [];
    const data: Record<string, unknown> = {};
    for (const shape of shapes(env.quick)) {
      const result = await runTree(env, server, api, shape, rounds);
      summary.push(...result.summary);
      rows.push(...result.rows);
      data[shape.key] = result.runs;
    }
    details.push(table(['Tree', 'Direction', 'Side', 'MiB/s', 'entries/s', 'API / tar', 'RSS before', 'peak RSS', 'peak − before'], rows));
    return { summary, details: details.join('\n'), data };
  },
};

async function runTree(
  env: BenchEnv,
  server: SharedServer['server'],
  api: SharedServer['api'],
  shape: TreeShape,
  rounds: number,
): Promise<{ summary: SuiteResult['summary']; rows: string[][]; runs: unknown }> {
  const size = shape.size;
  const base = `bench-archive-${shape.key}`;
  const workspaceBase = path.join(server.workspaceDir, base);
  const tree = path.join(workspaceBase, 'tree');
  const archive = path.join(env.tmpDir, `${base}.tar`);
  const tarTarget = path.join(env.tmpDir, `${base}-untar`);
  try {
    env.progress(`files-archive: writing a tree of ${shape.label}`);
    await mkdir(tree, { recursive: true });
    await makeTree(tree, shape);
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
          const written = (await stat(path.join(server.workspaceDir, target, shape.probe))).size;
          if (written !== shape.probeSize) throw new Error('the extracted tree is incomplete');
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
      env.progress(`files-archive ${shape.label}, round ${round + 1}/${rounds}`);
      for (const side of roundOrder(download, round)) runs.download[side.key].push(await side.run());
      for (const side of roundOrder(upload, round)) runs.upload[side.key].push(await side.run());
    }

    const seconds = (list: Timed[]) => median(list.map((run) => run.seconds));
    const directions = (['download', 'upload'] as const).map((direction) => {
      const memory = runs[direction].api.map((run) => run.memory!);
      return {
        direction,
        api: seconds(runs[direction].api),
        tar: seconds(runs[direction].tar),
        idle: median(memory.map((m) => m.before)),
        peak: max(memory.map((m) => m.peak)),
        growth: max(memory.map((m) => m.peak - m.before)),
      };
    });
    const mibs = (s: number) => formatNumber(size / MiB / s, 0);
    const perSecond = (s: number) => formatNumber(shape.files / s, 0);
    const rows = directions.flatMap((d) => [
      [
        shape.label,
        d.direction,
        LABELS[d.direction].api,
        mibs(d.api),
        perSecond(d.api),
        formatRatio(ratio(d.tar, d.api)),
        formatMiB(d.idle),
        formatMiB(d.peak),
        formatMiB(d.growth),
      ],
      ['', '', LABELS[d.direction].tar, mibs(d.tar), perSecond(d.tar), '', '', '', ''],
    ]);
    const summary = directions.flatMap((d) => [
      {
        benchmark: `Directory ${d.direction} as tar, ${shape.label}`,
        ours: `${mibs(d.api)} MiB/s, ${perSecond(d.api)} entries/s`,
        baseline: `${mibs(d.tar)} MiB/s (GNU tar ${d.direction === 'download' ? '-c' : '-x'})`,
        ratio: formatRatio(ratio(d.tar, d.api)),
        target: '≥ 0.8x GNU tar',
        met: ratio(d.tar, d.api) >= 0.8,
      },
      {
        benchmark: `Directory ${d.direction} as tar, ${shape.label}: API peak memory`,
        ours: `+${formatMiB(d.growth)} (peak ${formatMiB(d.peak)})`,
        baseline: `idle ${formatMiB(d.idle)}`,
        ratio: '',
        target: '≤ idle + 64 MiB',
        met: d.growth <= MEMORY_BUDGET,
      },
    ]);
    return { summary, rows, runs };
  } finally {
    await rm(archive, { force: true });
    await rm(tarTarget, { recursive: true, force: true });
    await rm(workspaceBase, { recursive: true, force: true });
  }
}
