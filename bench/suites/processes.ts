import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { once } from 'node:events';
import WebSocket from 'ws';
import { Process } from '../../server/transports/connect/gen/envd/process/process_pb.js';
import { descendantsOf, findChild } from '../../tests/helpers/processes.js';
import { cpuSeconds } from '../lib/proc-cpu.js';
import { MemorySampler, readMemory, type MemoryPeak } from '../lib/proc-memory.js';
import { formatMiB, formatNumber, formatRatio, max, median, MiB, now, percentile, ratio, sleep } from '../lib/stats.js';
import { roundOrder, table, type BenchEnv, type SharedServer, type Suite, type SuiteResult } from '../lib/suite.js';

const MEMORY_BUDGET = 64 * MiB;
/**
 * The process host gives every process it starts, and their trees, its socket's path in this
 * variable: other servers' hosts on the same machine (and uid) mark theirs with another path.
 */
const HOST_VARIABLE = 'CODE_INTERPRETER_PROCESS_HOST';

/** Bytes of output a side received, and in how many chunks (reads, events or messages). */
interface Output {
  bytes: number;
  chunks: number;
}

/** Output of `command`, read by a bare Node process with child_process.spawn: the floor. */
function spawnBare(command: string): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: Output = { bytes: 0, chunks: 0 };
    const count = (chunk: Buffer) => {
      output.bytes += chunk.length;
      output.chunks += 1;
    };
    child.stdout.on('data', count);
    child.stderr.on('data', count);
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`bash -c exited ${String(code)}`))));
  });
}

/** Runs `command` through e2b's `Start` and reads the stream to its `end`; returns the output bytes. */
async function startConnect(client: Client<typeof Process>, command: string): Promise<Output> {
  const output: Output = { bytes: 0, chunks: 0 };
  let exitCode: number | undefined;
  for await (const { event } of client.start({ process: { cmd: '/bin/bash', args: ['-c', command] }, stdin: false })) {
    const value = event?.event;
    if (value?.case === 'data') {
      output.bytes += value.value.output.value?.length ?? 0;
      output.chunks += 1;
    } else if (value?.case === 'end') exitCode = value.value.exitCode;
  }
  if (exitCode !== 0) throw new Error(`Start ended with exit code ${String(exitCode)}`);
  return output;
}

/** One `/ws` connection that runs commands one after another with `process_start` frames. */
class ProcessSocket {
  private counter = 0;
  private pending: { requestId: string; output: Output; resolve: (output: Output) => void; reject: (error: Error) => void } | undefined;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => this.onFrame(JSON.parse(data.toString()) as Record<string, unknown>));
    socket.on('close', () => this.pending?.reject(new Error('the socket closed')));
  }

  static async open(baseUrl: string): Promise<ProcessSocket> {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
    await once(socket, 'open');
    return new ProcessSocket(socket);
  }

  run(command: string): Promise<Output> {
    const requestId = `p${++this.counter}`;
    return new Promise((resolve, reject) => {
      this.pending = { requestId, output: { bytes: 0, chunks: 0 }, resolve, reject };
      this.socket.send(JSON.stringify({ type: 'process_start', request_id: requestId, command, stdin: false }));
    });
  }

  close(): void {
    this.socket.close();
  }

  private onFrame(frame: Record<string, unknown>): void {
    const pending = this.pending;
    if (!pending) return;
    if (frame.type === 'request_error') {
      this.pending = undefined;
      pending.reject(new Error(`process_start refused: ${JSON.stringify(frame)}`));
    } else if (frame.type === 'stdout' || frame.type === 'stderr') {
      pending.output.bytes += Buffer.byteLength(frame.text as string);
      pending.output.chunks += 1;
    } else if (frame.type === 'end_of_execution') {
      this.pending = undefined;
      pending.resolve(pending.output);
    }
  }
}

function environment(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
}

/** Processes that belong to the host: its descendants, and any escapee carrying its marker. */
function hostProcesses(hostPid: number, marker: string): number[] {
  const found = new Set(descendantsOf(hostPid).map((proc) => proc.pid));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === hostPid) continue;
    try {
      if (environment(Number(entry)).includes(marker)) found.add(Number(entry));
    } catch {
      // exited while we looked, or not ours to read
    }
  }
  return [...found];
}

function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

const signed = (value: number, digits = 0) => `${value >= 0 ? '+' : ''}${formatNumber(value, digits)}`;

/**
 * Commands (issue 26): `echo hi` through each door against `child_process.spawn` in a bare Node
 * process, a large output through `POST /processes` with the API's memory sampled, and many
 * background processes started and deleted with nothing left behind.
 */
export const processes: Suite = {
  name: 'processes',
  title: '10. Commands (processes)',
  shared: true,
  async run(env: BenchEnv, { server, api }: SharedServer): Promise<SuiteResult> {
    const rounds = env.quick ? 3 : 10;
    const perRound = env.quick ? 20 : 100;
    const warmUp = env.quick ? 10 : 30;
    const outputBytes = (env.quick ? 16 : 50) * MiB;
    const outputRounds = env.quick ? 1 : 3;
    const backgroundCount = env.quick ? 20 : 100;

    // The host may have been restarted since the server came up: find it now.
    const hostPid = findChild(server.child.pid!, (argv) => argv.some((arg) => arg.endsWith('dist/server/process-host/main.js')));
    if (!hostPid) throw new Error('could not find the process host among the children of start-up.sh');
    const socket = environment(hostPid).find((pair) => pair.startsWith('PROCESS_HOST_SOCKET='));
    if (!socket) throw new Error("the process host's environment has no PROCESS_HOST_SOCKET");
    const marker = `${HOST_VARIABLE}=${socket.slice('PROCESS_HOST_SOCKET='.length)}`;
    /** CPU seconds so far of the API, the host (without its children: the commands) and this process. */
    const cpuNow = () => {
      const usage = process.cpuUsage();
      return { api: cpuSeconds(server.apiPid), host: cpuSeconds(hostPid), client: (usage.user + usage.system) / 1e6 };
    };
    const cpuSince = (before: ReturnType<typeof cpuNow>) => {
      const after = cpuNow();
      return { api: after.api - before.api, host: after.host - before.host, client: after.client - before.client };
    };
    // e2b's SDK speaks Connect with JSON over HTTP/1.1; so does this client.
    const connect = createClient(Process, createConnectTransport({ baseUrl: server.envdUrl, httpVersion: '1.1', useBinaryFormat: false }));

    const ws = await ProcessSocket.open(server.baseUrl);
    const runHttp = async (command: string): Promise<Output> => {
      const outcome = await api.runProcess({ command, stdin: false });
      return { bytes: outcome.outputBytes, chunks: outcome.outputEvents };
    };

    // 1. `echo hi`, round trip per door.
    const echo = 'echo hi';
    const echoSides = [
      { key: 'bare', label: '`child_process.spawn` in the bench process (the baseline)', run: () => spawnBare(echo) },
      {
        key: 'http',
        label: 'API `POST /processes`, NDJSON read to `end_of_execution`',
        run: () => runHttp(echo),
      },
      { key: 'ws', label: '`/ws` `process_start` on one open socket, read to `end_of_execution`', run: () => ws.run(echo) },
      { key: 'connect', label: 'envd `process.Process/Start` (Connect, JSON), read to `end`', run: () => startConnect(connect, echo) },
    ];
    for (const side of echoSides) for (let i = 0; i < warmUp; i++) await side.run();
    const echoTimes = new Map<string, number[]>(echoSides.map((side) => [side.key, []]));
    for (let round = 0; round < rounds; round++) {
      env.progress(`processes: echo hi, round ${round + 1}/${rounds}`);
      for (const side of roundOrder(echoSides, round)) {
        const times = echoTimes.get(side.key)!;
        for (let i = 0; i < perRound; i++) {
          const started = now();
          const { bytes } = await side.run();
          times.push(now() - started);
          if (bytes !== 3) throw new Error(`${side.key}: echo hi gave ${bytes} bytes of output`);
        }
      }
    }
    const echoP = (key: string, p: number) => percentile(echoTimes.get(key)!, p);

    // 2. A large output through POST /processes, the API's and the host's memory sampled.
    // 128-byte lines: newlines cost NDJSON an escape each, and NUL bytes six; this keeps it ~1%.
    const big = `yes "$(printf '%0127d' 0)" | head -c ${outputBytes}`;
    const outputSides = [
      { key: 'bare', run: () => spawnBare(big) },
      { key: 'http', run: () => runHttp(big) },
      { key: 'ws', run: () => ws.run(big) },
      { key: 'connect', run: () => startConnect(connect, big) },
    ];
    await api.runProcess({ command: `yes | head -c ${outputBytes / 4}`, stdin: false });
    const outputRuns = new Map<
      string,
      { seconds: number; chunks: number; cpu: { api: number; host: number; client: number }; api: MemoryPeak; host: MemoryPeak }[]
    >(outputSides.map((side) => [side.key, []]));
    for (let round = 0; round < outputRounds; round++) {
      env.progress(`processes: ${outputBytes / MiB} MiB of output, round ${round + 1}/${outputRounds}`);
      for (const side of roundOrder(outputSides, round)) {
        const apiSampler = new MemorySampler(server.apiPid);
        const hostSampler = new MemorySampler(hostPid);
        const cpuBefore = cpuNow();
        const started = now();
        const { bytes, chunks } = await side.run();
        const seconds = (now() - started) / 1000;
        const cpu = cpuSince(cpuBefore);
        const memory = { api: apiSampler.stop(), host: hostSampler.stop() };
        if (bytes !== outputBytes) throw new Error(`${side.key}: received ${bytes} of ${outputBytes} bytes`);
        outputRuns.get(side.key)!.push({ seconds, chunks, cpu, ...memory });
      }
    }
    const cpuPerMiB = (key: string, who: 'api' | 'host' | 'client') =>
      formatNumber(median(outputRuns.get(key)!.map((run) => (run.cpu[who] * 1000) / (outputBytes / MiB))), 1);
    const chunkSizes = (key: string) => {
      const chunks = median(outputRuns.get(key)!.map((run) => run.chunks));
      return `${chunks} (${formatNumber(outputBytes / chunks / 1024, 1)})`;
    };
    const rate = (key: string) => median(outputRuns.get(key)!.map((run) => outputBytes / MiB / run.seconds));
    const growth = (key: string, who: 'api' | 'host') => max(outputRuns.get(key)!.map((run) => run[who].peak - run[who].before));
    const httpRuns = outputRuns.get('http')!;
    const idle = median(httpRuns.map((run) => run.api.before));
    const apiGrowth = growth('http', 'api');

    ws.close();

    // 3. Background processes started, then deleted: nothing may stay behind.
    const cycle = async (count: number) => {
      const ids: string[] = [];
      const startTimes: number[] = [];
      const deleteTimes: number[] = [];
      const startedAll = now();
      for (let i = 0; i < count; i++) {
        const started = now();
        ids.push((await api.startProcess({ command: 'sleep 600', stdin: false })).process_id);
        startTimes.push(now() - started);
      }
      const startSeconds = (now() - startedAll) / 1000;
      const running = hostProcesses(hostPid, marker).length;
      const deletedAll = now();
      for (const id of ids) {
        const started = now();
        await api.json('DELETE', `/processes/${id}`);
        deleteTimes.push(now() - started);
      }
      return { startSeconds, deleteSeconds: (now() - deletedAll) / 1000, startTimes, deleteTimes, running };
    };
    /** Waits (up to 5 s) for the killed processes to be reaped; returns how many remain. */
    const settle = async () => {
      const deadline = Date.now() + 5000;
      let left = hostProcesses(hostPid, marker);
      while (left.length > 0 && Date.now() < deadline) {
        await sleep(50);
        left = hostProcesses(hostPid, marker);
      }
      return left.length;
    };
    env.progress(`processes: ${backgroundCount} background processes, after a warm-up of 10`);
    await cycle(10);
    const leftBefore = await settle();
    const snapshot = () => ({
      api: readMemory(server.apiPid).rss,
      apiFds: openDescriptors(server.apiPid),
      hostFds: openDescriptors(hostPid),
    });
    const before = snapshot();
    const background = await cycle(backgroundCount);
    const leftAfter = await settle();
    const after = snapshot();
    const listed = await api.json<unknown[]>('GET', '/processes?running=true');
    if (background.running < backgroundCount) {
      throw new Error(
        `only ${background.running} of ${backgroundCount} background processes were seen running: the count cannot be trusted`,
      );
    }
    const apiFdDelta = after.apiFds - before.apiFds;
    const hostFdDelta = after.hostFds - before.hostFds;

    const echoRows = echoSides.map((side) => [
      side.label,
      formatNumber(echoP(side.key, 50), 2),
      formatNumber(echoP(side.key, 90), 2),
      formatNumber(echoP(side.key, 99), 2),
      side.key === 'bare' ? '1.00x' : formatRatio(ratio(echoP(side.key, 50), echoP('bare', 50))),
      String(echoTimes.get(side.key)!.length),
    ]);
    const outputLabel = {
      bare: '`child_process.spawn` in the bench process',
      http: 'API `POST /processes` (NDJSON)',
      ws: 'API `/ws` `process_start`',
      connect: 'envd `Start` (Connect, JSON)',
    };
    const details = [
      `\`echo hi\` run by \`/bin/bash -c\`, stdin off, back to back: ${rounds} rounds of ${perRound} per side, sides interleaved (order rotated each round), after ${warmUp} warm-up runs per side. ` +
        "A door's run is complete when its stream has ended (`end_of_execution`, or Connect's `end` and end of stream); the baseline's when the child has exited and its pipes closed. " +
        'The doors add the API, the process host (one Unix-socket connection per process, and a `/bin/sh` that sets the OOM score and memory limit before it `exec`s the command) and HTTP.',
      '',
      table(['Side', 'p50 ms', 'p90 ms', 'p99 ms', 'p50 / spawn', 'n'], echoRows),
      '',
      `\`${big.replace(/\|/g, '\\|')}\` (${outputBytes / MiB} MiB of 128-byte lines), read to the end by each side; ${outputRounds} round(s), sides interleaved, after a warm-up of a quarter of the size. ` +
        "The API's and the process host's RSS are sampled from /proc/<pid>/status every 10 ms during each run, with VmHWM reset before it; CPU time per MiB (median run) from /proc/<pid>/stat, the host's without the commands it runs. Chunks: the reads of the bare process, stdout events of the NDJSON and of `/ws`, `data` messages of the Connect stream.",
      '',
      table(
        [
          'Side',
          'MiB/s (median)',
          'chunks (mean KiB)',
          'API RSS before',
          'API peak − before (worst run)',
          'host peak − before (worst run)',
          'CPU ms/MiB: API',
          'host',
          'bench client',
        ],
        outputSides.map((side) => [
          outputLabel[side.key as keyof typeof outputLabel],
          formatNumber(rate(side.key)),
          chunkSizes(side.key),
          side.key === 'bare' ? '' : formatMiB(median(outputRuns.get(side.key)!.map((run) => run.api.before))),
          side.key === 'bare' ? '' : formatMiB(growth(side.key, 'api')),
          side.key === 'bare' ? '' : formatMiB(growth(side.key, 'host')),
          side.key === 'bare' ? '' : cpuPerMiB(side.key, 'api'),
          side.key === 'bare' ? '' : cpuPerMiB(side.key, 'host'),
          cpuPerMiB(side.key, 'client'),
        ]),
      ),
      '',
      `${backgroundCount} \`sleep 600\` started one after another with \`POST /processes\` \`background: true\`, then each \`DELETE\`d (its tree killed), after a warm-up of 10 of the same. ` +
        `While they ran, ${background.running} processes of the host were counted (its descendants in /proc, and any process whose environment carries this host's marker, \`CODE_INTERPRETER_PROCESS_HOST=<its socket>\`); ` +
        `afterwards, and after up to 5 s for the kills to be reaped, ${leftAfter} (${leftBefore} after the warm-up); \`GET /processes?running=true\` listed ${listed.length}.`,
      '',
      table(
        ['', 'after warm-up', `after ${backgroundCount} more`, 'change'],
        [
          ['processes of the host', String(leftBefore), String(leftAfter), signed(leftAfter - leftBefore)],
          ['API RSS', formatMiB(before.api), formatMiB(after.api), `${signed((after.api - before.api) / MiB, 1)} MiB`],
          ['API open descriptors', String(before.apiFds), String(after.apiFds), signed(apiFdDelta)],
          ['host open descriptors', String(before.hostFds), String(after.hostFds), signed(hostFdDelta)],
        ],
      ),
      '',
      table(
        ['Step', 'total s', 'p50 ms', 'p99 ms'],
        [
          [
            'start (202)',
            formatNumber(background.startSeconds, 2),
            ...[50, 99].map((p) => formatNumber(percentile(background.startTimes, p), 2)),
          ],
          [
            'DELETE (killed, forgotten)',
            formatNumber(background.deleteSeconds, 2),
            ...[50, 99].map((p) => formatNumber(percentile(background.deleteTimes, p), 2)),
          ],
        ],
      ),
    ].join('\n');

    const echoRow = (key: string, name: string) => ({
      benchmark: `Command \`echo hi\` p50, ${name}`,
      ours: `${formatNumber(echoP(key, 50), 2)} ms (p99 ${formatNumber(echoP(key, 99), 2)})`,
      baseline: `${formatNumber(echoP('bare', 50), 2)} ms (p99 ${formatNumber(echoP('bare', 99), 2)}; child_process.spawn)`,
      ratio: formatRatio(ratio(echoP(key, 50), echoP('bare', 50))),
      target: '',
      met: undefined,
    });
    return {
      summary: [
        echoRow('http', 'HTTP'),
        echoRow('ws', 'WebSocket'),
        echoRow('connect', 'Connect'),
        {
          benchmark: `Command output ${outputBytes / MiB} MiB, HTTP`,
          ours: `${formatNumber(rate('http'))} MiB/s`,
          baseline: `${formatNumber(rate('bare'))} MiB/s (child_process.spawn)`,
          ratio: formatRatio(ratio(rate('http'), rate('bare'))),
          target: '',
          met: undefined,
        },
        {
          benchmark: 'Command output: API peak memory',
          ours: `${signed(apiGrowth / MiB, 1)} MiB (peak ${formatMiB(max(httpRuns.map((run) => run.api.peak)))})`,
          baseline: `idle ${formatMiB(idle)}`,
          ratio: '',
          target: '≤ idle + 64 MiB',
          met: apiGrowth <= MEMORY_BUDGET,
        },
        {
          benchmark: `${backgroundCount} background commands started, then deleted`,
          ours: `${formatNumber(background.startSeconds, 2)} s + ${formatNumber(background.deleteSeconds, 2)} s; left: ${leftAfter} processes, ${signed(apiFdDelta)} API / ${signed(hostFdDelta)} host descriptors, ${signed((after.api - before.api) / MiB, 1)} MiB`,
          baseline: 'after a warm-up of 10',
          ratio: '',
          target: 'nothing left',
          met: leftAfter === 0 && listed.length === 0 && apiFdDelta <= 0 && hostFdDelta <= 0,
        },
      ],
      details,
      data: {
        echo: Object.fromEntries(
          echoSides.map((side) => [side.key, { p50: echoP(side.key, 50), p90: echoP(side.key, 90), p99: echoP(side.key, 99) }]),
        ),
        output: { bytes: outputBytes, runs: Object.fromEntries(outputRuns) },
        background: { count: backgroundCount, ...background, leftBefore, leftAfter, before, after, listed: listed.length },
      },
    };
  },
};
