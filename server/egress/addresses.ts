import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Addresses an allowed name must not lead to. A name is allowed by the operator, but who
 * controls its DNS (a wildcard's owner, a rebinding service) chooses where it points: without
 * this, `*.example.com` could reach the container's own services on loopback, the cloud's
 * metadata service on 169.254.169.254, or any peer on the private network.
 */
const SPECIAL_RANGES: readonly { kind: string; address: string; prefix: number; family: 'ipv4' | 'ipv6' }[] = [
  { kind: 'unspecified', address: '0.0.0.0', prefix: 8, family: 'ipv4' },
  { kind: 'private', address: '10.0.0.0', prefix: 8, family: 'ipv4' },
  { kind: 'shared (CGNAT)', address: '100.64.0.0', prefix: 10, family: 'ipv4' },
  { kind: 'loopback', address: '127.0.0.0', prefix: 8, family: 'ipv4' },
  { kind: 'link-local', address: '169.254.0.0', prefix: 16, family: 'ipv4' },
  { kind: 'private', address: '172.16.0.0', prefix: 12, family: 'ipv4' },
  { kind: 'private', address: '192.168.0.0', prefix: 16, family: 'ipv4' },
  { kind: 'multicast', address: '224.0.0.0', prefix: 4, family: 'ipv4' },
  // 240.0.0.0/4 holds the broadcast address too; nothing there is reachable on the Internet.
  { kind: 'reserved', address: '240.0.0.0', prefix: 4, family: 'ipv4' },
  // `::` and `::1`, and the deprecated IPv4-compatible form (::a.b.c.d).
  { kind: 'loopback or unspecified', address: '::', prefix: 96, family: 'ipv6' },
  { kind: 'link-local', address: 'fe80::', prefix: 10, family: 'ipv6' },
  { kind: 'site-local', address: 'fec0::', prefix: 10, family: 'ipv6' },
  { kind: 'private', address: 'fc00::', prefix: 7, family: 'ipv6' },
  { kind: 'multicast', address: 'ff00::', prefix: 8, family: 'ipv6' },
];

const ranges = SPECIAL_RANGES.map((range) => {
  const list = new BlockList();
  list.addSubnet(range.address, range.prefix, range.family);
  return { kind: range.kind, list };
});

// NAT64 turns 64:ff9b::a.b.c.d into a.b.c.d: judged by the IPv4 address inside. (IPv4-mapped
// addresses, ::ffff:a.b.c.d, need nothing: BlockList matches them against the IPv4 ranges.)
const nat64 = new BlockList();
nat64.addSubnet('64:ff9b::', 96, 'ipv6');

/** The 16 bytes of an IPv6 address (no zone index), or undefined. */
function ipv6Bytes(address: string): number[] | undefined {
  let text = address;
  const tail: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail.push(...dotted[2]!.split('.').map(Number));
    text = `${dotted[1]}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const front = groups(head);
  const back = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? front : [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
  if (all.length !== 8 || all.some((group) => Number.isNaN(group))) return undefined;
  const bytes = all.flatMap((group) => [group >> 8, group & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * The kind of special address `address` is (`loopback`, `link-local`, `private`, ...), or
 * undefined for a public one. A zone index (`fe80::1%eth0`) is ignored.
 */
export function specialAddressKind(address: string): string | undefined {
  const bare = address.replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 0) return 'not an address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (type === 'ipv6' && nat64.check(bare, 'ipv6')) {
    const bytes = ipv6Bytes(bare);
    if (bytes) return specialAddressKind(bytes.slice(12).join('.'));
  }
  return ranges.find((range) => range.list.check(bare, type))?.kind;
}

/** Every address of this machine's (or container's) interfaces, read now: they may change. */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .map((entry) => entry.address.replace(/%.*$/, ''));
}
