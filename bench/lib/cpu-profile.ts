import { readFile } from 'node:fs/promises';
import { table } from './suite.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a script belongs: a package under node_modules, the server's own code, or Node itself. */
function owner(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const server = /\/dist\/(server\/.*)$/.exec(url);
  if (server) return server[1]!;
  if (url.startsWith('node:')) return 'node (core)';
  return url;
}

/**
 * Self time of a `--cpu-prof` profile by owner (package, server file, Node core, GC) and by
 * function, as shares of the busy (non-idle) time. Markdown.
 */
export async function summarizeCpuProfile(file: string, top = 15): Promise<string> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, micros] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    total += micros;
    if (functionName === '(idle)') {
      idle += micros;
      continue;
    }
    const who = owner(url, functionName);
    byOwner.set(who, (byOwner.get(who) ?? 0) + micros);
    const name = `${functionName || '(anonymous)'} — ${who}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  }
  const busy = total - idle;
  const share = (micros: number) => `${((100 * micros) / busy).toFixed(1)}%`;
  const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `Profile ${file}: ${(total / 1e6).toFixed(1)} s recorded, ${(busy / 1e6).toFixed(1)} s busy (${((100 * busy) / total).toFixed(0)}%).`,
    '',
    table(['Self time by owner', 'share of busy', 'ms'], sorted(byOwner).map(([name, micros]) => [name, share(micros), (micros / 1000).toFixed(0)])),
    '',
    table(['Self time by function', 'share of busy', 'ms'], sorted(byFunction).map(([name, micros]) => [name, share(micros), (micros / 1000).toFixed(0)])),
  ].join('\n');
}
