/**
 * The benchmark suite: the server against the floor (a raw client on the same Jupyter), on one
 * machine in one run. `npm run bench` prints a Markdown report; `-- --quick` is the short pass CI
 * runs. Numbers never fail the run; errors do (exit 1). See bench/README.md.
 */
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from './lib/api-client.js';
import { ensureBuild } from './lib/build.js';
import { summarizeCpuProfile } from './lib/cpu-profile.js';
import { machineInfo, type MachineInfo } from './lib/machine.js';
import { ServerUnderTest } from './lib/processes.js';
import { root, tail } from '../tests/helpers/processes.js';
import { JupyterRest } from './lib/raw-kernel.js';
import { table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from './lib/suite.js';
import { abandoned } from './suites/abandoned.js';
import { coldStart } from './suites/cold-start.js';
import { contexts } from './suites/contexts.js';
import { files } from './suites/files.js';
import { filesArchive } from './suites/files-archive.js';
import { latency } from './suites/latency.js';
import { mcp } from './suites/mcp.js';
import { processes } from './suites/processes.js';
import { streaming } from './suites/streaming.js';
import { throughput } from './suites/throughput.js';
import { watchLatency } from './suites/watch.js';
import { ws } from './suites/ws.js';

// @jupyterlab/services reports connection changes on the console; stdout carries the report.
console.log = console.info = console.debug = () => undefined;

const usage = `Usage: npm run bench -- [options]
  --quick              short pass (CI): fewer rounds, smaller sizes
  --only a,b           run only these benchmarks (${['latency', 'ws', 'throughput', 'streaming', 'files', 'files-archive', 'contexts', 'abandoned', 'mcp', 'processes', 'watch', 'cold-start'].join(', ')})
  --skip a,b           run all but these
  --profile            run the API under node --cpu-prof and summarize where its time went
  --log-level LEVEL    the server's LOG_LEVEL (default: info, as in production)
  --out FILE           also write the Markdown report to FILE
  --json FILE          also write the raw numbers to FILE
  --no-build           do not rebuild dist/ when it is missing or older than server/
`;

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    skip: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    out: { type: 'string' },
    json: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (options.help) {
  process.stdout.write(usage);
  process.exit(0);
}

const quick = options.quick;
const logLevel = options['log-level'];
const started = Date.now();

function progress(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);
}

const allSuites: Suite[] = [
  latency,
  ws,
  throughput,
  streaming,
  files,
  filesArchive,
  contexts,
  abandoned,
  mcp,
  processes,
  watchLatency,
  coldStart,
];

function selectSuites(): Suite[] {
  const names = (list: string | undefined) =>
    (list ?? '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
  const known = new Set(allSuites.map((suite) => suite.name));
  for (const name of [...names(options.only), ...names(options.skip)]) {
    if (!known.has(name)) throw new Error(`unknown benchmark "${name}"; known: ${[...known].join(', ')}`);
  }
  const only = names(options.only);
  const skip = new Set(names(options.skip));
  return allSuites.filter((suite) => (only.length === 0 || only.includes(suite.name)) && !skip.has(suite.name));
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function render(
  machine: MachineInfo,
  loadAfter: number[],
  results: Map<Suite, SuiteResult>,
  errors: Map<string, string>,
  profile: string | undefined,
): string {
  const summary = [...results.values()].flatMap((result) => result.summary);
  const met = (value: boolean | undefined) => (value === undefined ? '' : value ? 'yes' : '**no**');
  const parts = [
    `## Benchmark results (${quick ? 'quick pass' : 'full run'})`,
    '',
    table(
      ['Machine', ''],
      [
        ['Date', machine.date],
        ['CPU', `${machine.cpus} × ${machine.cpuModel}`],
        ['Memory', `${machine.memoryGiB} GiB`],
        ['OS', `${machine.os}, Linux ${machine.kernel}`],
        ['Node', machine.node],
        ['Python', machine.python],
        [
          'jupyter_server / jupyter_client / ipykernel / tornado',
          `${machine.jupyterServer} / ${machine.jupyterClient} / ${machine.ipykernel} / ${machine.tornado}`,
        ],
        ['Commit', machine.commit],
        ['Server LOG_LEVEL', logLevel],
        [
          'Load average (1/5/15 min) before → after',
          `${machine.loadAverage.map((v) => v.toFixed(2)).join(' ')} → ${loadAfter.map((v) => v.toFixed(2)).join(' ')}`,
        ],
        ['Duration', `${((Date.now() - started) / 1000).toFixed(0)} s`],
      ],
    ),
    '',
    table(
      ['Benchmark', 'Server', 'Baseline (same run)', 'Server / baseline', 'Target', 'Met'],
      summary.map((row) => [row.benchmark, row.ours, row.baseline, row.ratio, row.target, met(row.met)]),
    ),
  ];
  for (const [suite, result] of results) parts.push('', `### ${suite.title}`, '', result.details);
  if (errors.size > 0) {
    parts.push('', '### Errors', '');
    for (const [name, message] of errors) parts.push(`- **${name}**: ${message.split('\n')[0]}`);
  }
  if (profile) parts.push('', '### Where the API spent its CPU time', '', profile);
  return `${parts.join('\n')}\n`;
}

async function main(): Promise<number> {
  const suites = selectSuites();
  ensureBuild(options['no-build'], progress);
  const machine = machineInfo();
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'code-interpreter-bench-'));
  const profileDir = path.join(tmpDir, 'profile');
  const results = new Map<Suite, SuiteResult>();
  const errors = new Map<string, string>();
  const suiteTimeoutMs = (quick ? 2 : 30) * 60_000;
  const env: BenchEnv = { quick, logLevel, tmpDir, progress };
  let shared: SharedServer | undefined;

  const stopServer = async () => {
    const stopping = shared;
    shared = undefined;
    await stopping?.api.close().catch(() => undefined);
    await stopping?.server.stop();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping`);
    void stopServer()
      .finally(() => rm(tmpDir, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let profile: string | undefined;
  try {
    if (suites.some((suite) => suite.shared)) {
      progress('starting Jupyter and the API through start-up.sh');
      const server = await ServerUnderTest.spawn({
        dir: path.join(tmpDir, 'server'),
        logLevel,
        nodeArgs: options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
        // Large enough that the streaming benchmark measures streaming, not the output budget.
        // No kernel pool: its refills after each context a benchmark creates would run during the
        // timed phases; the context benchmark starts servers of its own, with and without one.
        env: { MAX_OUTPUT_BYTES: '1GiB', KERNEL_POOL: 'python=0' },
      });
      await server.waitUntilReady();
      progress(`server up: API pid ${server.apiPid}, Jupyter pid ${server.jupyterPid}`);
      shared = { server, api: new ApiClient(server.baseUrl), rest: new JupyterRest(server.jupyterUrl, server.jupyterToken) };
      // The default context starts in the background at boot; the first benchmark should not pay for it.
      await shared.api.execute({ code: '1+1' });
    }

    // Benchmarks that start servers of their own (context creation, cold start) run after every
    // one on the shared server, which is stopped before them.
    const ordered = [...suites.filter((suite) => suite.shared), ...suites.filter((suite) => !suite.shared)];
    for (const suite of ordered) {
      if (!suite.shared && shared) {
        // Their servers would only share the machine with it: it is stopped for good.
        progress('stopping the shared server');
        await stopServer();
      }
      progress(`${suite.name}: start`);
      try {
        if (suite.shared) {
          if (!shared) throw new Error('the shared server was stopped before this benchmark');
          results.set(suite, await withTimeout(suite.run(env, shared), suiteTimeoutMs, suite.name));
          shared.server.assertRunning();
        } else {
          results.set(suite, await withTimeout(suite.run(env), suiteTimeoutMs, suite.name));
        }
        progress(`${suite.name}: done`);
      } catch (error) {
        let message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        if (shared) message += `\n--- server log (last lines) ---\n${tail(shared.server.logFile)}`;
        errors.set(suite.name, message);
        progress(`${suite.name}: FAILED\n${message}`);
      }
    }
  } catch (error) {
    errors.set('setup', error instanceof Error ? (error.stack ?? error.message) : String(error));
    progress(`setup FAILED\n${errors.get('setup')}`);
  } finally {
    await stopServer().catch(() => undefined);
  }

  if (options.profile && existsSync(profileDir)) {
    const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
    if (file) {
      await mkdir(path.join(root, '.bench-tmp'), { recursive: true });
      const kept = path.join(root, '.bench-tmp', file);
      await copyFile(path.join(profileDir, file), kept);
      profile = await summarizeCpuProfile(kept);
    } else {
      errors.set('profile', 'the API wrote no CPU profile (did it exit cleanly?)');
    }
  }

  const report = render(machine, os.loadavg(), results, errors, profile);
  process.stdout.write(report);
  if (options.out) await writeFile(options.out, report);
  if (options.json) {
    const data = Object.fromEntries([...results].map(([suite, result]) => [suite.name, result.data]));
    await writeFile(
      options.json,
      `${JSON.stringify({ quick, logLevel, machine, results: data, errors: Object.fromEntries(errors) }, null, 2)}\n`,
    );
  }
  await rm(tmpDir, { recursive: true, force: true });
  if (errors.size > 0) {
    process.stderr.write(`\n${errors.size} benchmark(s) failed: ${[...errors.keys()].join(', ')}\n`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
