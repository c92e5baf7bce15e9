import { BlockList, isIP } from 'node:net';

/**
 * EGRESS_ALLOW: what kernel code may connect to. A comma-separated list of domains (`packages.example.org`;
 * `*.example.com` for every name under example.com, not example.com itself), IP addresses and
 * CIDR ranges (IPv4 or IPv6); `none` alone allows nothing.
 *
 * Domains are matched by the egress proxy against the host a connection asks for, when it asks;
 * addresses and ranges are also opened in the firewall, for traffic that does not use the proxy.
 */
export interface AllowList {
  /** Exact host names, lower case, no trailing dot. */
  domains: string[];
  /** Suffixes from `*.example.com` entries, stored as `.example.com`. */
  wildcardSuffixes: string[];
  /** Addresses and ranges in CIDR form, e.g. `10.1.2.3/32`, `10.0.0.0/8`, `2001:db8::/32`. */
  cidrs: { address: string; prefix: number; family: 4 | 6 }[];
}

export class AllowListError extends Error {
  override name = 'AllowListError';
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function normalizeDomain(raw: string): string | undefined {
  const name = raw.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) return undefined;
  return name.split('.').every((label) => LABEL.test(label)) ? name : undefined;
}

/** Parses EGRESS_ALLOW. Throws AllowListError naming the first entry it cannot read. */
export function parseAllowList(text: string): AllowList {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new AllowListError('the list is empty: give domains, IPs or CIDRs, or "none" to allow nothing');
  const list: AllowList = { domains: [], wildcardSuffixes: [], cidrs: [] };
  if (entries.length === 1 && entries[0]!.toLowerCase() === 'none') return list;
  for (const entry of entries) {
    if (entry.toLowerCase() === 'none') throw new AllowListError('"none" cannot be combined with other entries');
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(address);
    if (family !== 0) {
      const max = family === 4 ? 32 : 128;
      const prefixText = slash === -1 ? String(max) : entry.slice(slash + 1);
      const prefix = Number(prefixText);
      if (!/^\d{1,3}$/.test(prefixText) || prefix > max) throw new AllowListError(`"${entry}": the prefix length must be 0 to ${max}`);
      list.cidrs.push({ address: address.toLowerCase(), prefix, family: family as 4 | 6 });
      continue;
    }
    if (slash !== -1) throw new AllowListError(`"${entry}" is neither a domain, an IP address nor a CIDR range (address/prefix)`);
    if (entry.startsWith('*.')) {
      const domain = normalizeDomain(entry.slice(2));
      if (!domain) throw new AllowListError(`"${entry}" is not a valid wildcard domain (*.example.com)`);
      list.wildcardSuffixes.push(`.${domain}`);
      continue;
    }
    const domain = normalizeDomain(entry);
    if (!domain || /^[\d.]+$/.test(domain)) throw new AllowListError(`"${entry}" is neither a domain, an IP address nor a CIDR range`);
    list.domains.push(domain);
  }
  return list;
}

/** The canonical text of a list, as `egress-allow` stores it and reports it. */
export function formatAllowList(list: AllowList): string {
  const entries = [
    ...list.domains,
    ...list.wildcardSuffixes.map((suffix) => `*${suffix}`),
    ...list.cidrs.map((cidr) => `${cidr.address}/${cidr.prefix}`),
  ];
  return entries.length === 0 ? 'none' : entries.join(',');
}

/** Decides, for one connection, whether its host (a name or an address literal) is allowed. */
export class EgressPolicy {
  private readonly blocks = new BlockList();

  constructor(readonly list: AllowList) {
    for (const cidr of list.cidrs) this.blocks.addSubnet(cidr.address, cidr.prefix, cidr.family === 4 ? 'ipv4' : 'ipv6');
  }

  allows(host: string): boolean {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    if (isIP(bare) !== 0) return this.lists(bare);
    const name = bare.toLowerCase().replace(/\.$/, '');
    if (this.list.domains.includes(name)) return true;
    return this.list.wildcardSuffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length);
  }

  /** Whether the list names `address` itself or a range that holds it (IPv4-mapped IPv6 included). */
  lists(address: string): boolean {
    const bare = address.replace(/%.*$/, '');
    const family = isIP(bare);
    return family !== 0 && this.blocks.check(bare, family === 4 ? 'ipv4' : 'ipv6');
  }
}
