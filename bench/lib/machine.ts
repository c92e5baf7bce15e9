import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { jupyterPython, root } from '../../tests/helpers/processes.js';

export interface MachineInfo {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  kernel: string;
  node: string;
  python: string;
  jupyterServer: string;
  jupyterClient: string;
  ipykernel: string;
  tornado: string;
  commit: string;
  loadAverage: number[];
}

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): MachineInfo {
  const versions = run(jupyterPython, [
    '-c',
    'import json, platform, jupyter_server, jupyter_client, ipykernel, tornado; ' +
      'print(json.dumps([platform.python_version(), jupyter_server.__version__, jupyter_client.__version__, ipykernel.__version__, tornado.version]))',
  ]);
  const [python, jupyterServer, jupyterClient, ipykernel, tornado] =
    versions === 'unknown' ? Array<string>(5).fill('unknown') : (JSON.parse(versions) as string[]);
  let osName = os.type();
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // keep os.type()
  }
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no']) !== '';
  return {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: osName,
    kernel: os.release(),
    node: process.version,
    python: python!,
    jupyterServer: jupyterServer!,
    jupyterClient: jupyterClient!,
    ipykernel: ipykernel!,
    tornado: tornado!,
    commit: `${run('git', ['rev-parse', '--short', 'HEAD'])}${dirty ? ' (with uncommitted changes)' : ''}`,
    loadAverage: os.loadavg(),
  };
}
