import { isIP } from 'node:net';
import type { AllowList } from './allow-list.js';

export const NFT_TABLE = 'code_interpreter_egress';

export interface FirewallOptions {
  /** The kernels' uid: only their connections are filtered. */
  kernelUid: number;
  /** DNS servers from /etc/resolv.conf: port 53 stays open to them. */
  resolvers: string[];
}

/** Name servers of a resolv.conf, IPv4 and IPv6 (a zone index such as `%eth0` is dropped). */
export function resolversOf(resolvConf: string): string[] {
  const found: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    const address = match?.[1]?.replace(/%.*$/, '');
    if (address && isIP(address) !== 0 && !found.includes(address)) found.push(address);
  }
  return found;
}

function set(addresses: readonly string[]): string {
  return `{ ${addresses.join(', ')} }`;
}

/**
 * One nftables transaction that replaces the whole egress table at once: no moment without
 * rules, and nothing of an earlier list left. Kernel processes (socket owner uid) may use
 * loopback (the egress proxy, Jupyter, the API; Docker's embedded DNS is at 127.0.0.11), DNS to
 * the configured resolvers, connections already established, and the allowed addresses; every
 * other new connection they open is rejected at once (so code fails fast instead of hanging).
 */
export function renderRuleset(list: AllowList, options: FirewallOptions): string {
  const dns4 = options.resolvers.filter((address) => isIP(address) === 4);
  const dns6 = options.resolvers.filter((address) => isIP(address) === 6);
  const kernelRules = [
    'oifname "lo" accept',
    'ct state established,related accept',
    ...(dns4.length ? [`ip daddr ${set(dns4)} meta l4proto { udp, tcp } th dport 53 accept`] : []),
    ...(dns6.length ? [`ip6 daddr ${set(dns6)} meta l4proto { udp, tcp } th dport 53 accept`] : []),
    // One rule per range: overlapping ranges in one set would be refused.
    ...list.cidrs.map((cidr) => `${cidr.family === 4 ? 'ip' : 'ip6'} daddr ${cidr.address}/${cidr.prefix} accept`),
    'meta l4proto tcp reject with tcp reset',
    'reject with icmpx type admin-prohibited',
  ];
  return [
    // `add` then `delete` makes the delete safe when the table does not exist yet.
    `add table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    // Packets without a socket (a reset the stack sends on its own) match no skuid: they are
    // never sent to the kernels' chain.
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    `    meta skuid ${options.kernelUid} jump kernels`,
    '  }',
    '  chain kernels {',
    ...kernelRules.map((rule) => `    ${rule}`),
    '  }',
    '}',
    '',
  ].join('\n');
}
