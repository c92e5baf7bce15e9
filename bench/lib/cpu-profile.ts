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

/** The package under node_modules, or the server file, a script belongs to; undefined for Node itself. */
function codeOwner(url: string): string | undefined {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  return /\/dist\/(server\/.*)$/.exec(url)?.[1];
}

/** Where a frame belongs: its package or server file, Node core, or a V8 pseudo-frame such as the GC. */
function owner(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  return codeOwner(url) ?? (url.startsWith('node:') ? 'node (core)' : url);
}

/**
 * Summarizes a `--cpu-prof` profile as shares of the busy (non-idle) time: self time by owner
 * (package, server file, Node core, GC) and by function, and the same time charged to the first
 * package or server file on the stack, which says who asked for the time spent in Node core and
 * native code (socket writes, say). Markdown.
 */
export async function summarizeCpuProfile(file: string, top = 15): Promise<string> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byCaller = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, micros: number) => map.set(key, (map.get(key) ?? 0) + micros);
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
    add(byOwner, who, micros);
    add(byFunction, `${functionName || '(anonymous)'} — ${who}${url ? `:${lineNumber + 1}` : ''}`, micros);
    let caller: string | undefined;
    for (let node: number | undefined = id; node !== undefined && caller === undefined; node = parent.get(node)) {
      caller = codeOwner(byId.get(node)!.callFrame.url);
    }
    add(byCaller, caller ?? `${who} (no package or server file on the stack)`, micros);
  }
  const busy = total - idle;
  const share = (micros: number) => `${((100 * micros) / busy).toFixed(1)}%`;
  const rows = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => [name, share(micros), (micros / 1000).toFixed(0)]);
  return [
    `Profile ${file}: ${(total / 1e6).toFixed(1)} s recorded, ${(busy / 1e6).toFixed(1)} s busy (${((100 * busy) / total).toFixed(0)}%), start-up included. ` +
      'Times are wall time while not idle: on a loaded machine, preemption shows up in system calls such as writes.',
    '',
    table(['Charged to the first package or server file on the stack', 'share of busy', 'ms'], rows(byCaller)),
    '',
    table(['Self time by owner', 'share of busy', 'ms'], rows(byOwner)),
    '',
    table(['Self time by function', 'share of busy', 'ms'], rows(byFunction)),
  ].join('\n');
}
