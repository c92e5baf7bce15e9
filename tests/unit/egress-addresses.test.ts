import { describe, expect, it } from 'vitest';
import { specialAddressKind } from '../../server/egress/addresses.js';
import { EgressPolicy, parseAllowList } from '../../server/egress/allow-list.js';
import { egressVerdict } from '../../server/egress/proxy.js';

/** Where an allowed name may lead: decided without any connection (names resolve from a table). */
describe('addresses an allowed name must not lead to', () => {
  it('classifies every special range, IPv4-mapped and NAT64 forms included', () => {
    const cases: Record<string, string | undefined> = {
      '127.0.0.1': 'loopback',
      '127.255.0.9': 'loopback',
      '::1': 'loopback or unspecified',
      '::': 'loopback or unspecified',
      '0.0.0.0': 'unspecified',
      '169.254.169.254': 'link-local',
      'fe80::1': 'link-local',
      'fe80::1%eth0': 'link-local',
      '10.1.2.3': 'private',
      '172.16.0.1': 'private',
      '172.31.255.254': 'private',
      '192.168.1.1': 'private',
      'fd00::1': 'private',
      'fc00::1': 'private',
      'fec0::1': 'site-local',
      '100.64.0.1': 'shared (CGNAT)',
      '100.127.255.254': 'shared (CGNAT)',
      '224.0.0.1': 'multicast',
      '239.255.255.250': 'multicast',
      'ff02::1': 'multicast',
      '255.255.255.255': 'reserved',
      '::ffff:127.0.0.1': 'loopback',
      '::ffff:7f00:1': 'loopback',
      '::ffff:169.254.169.254': 'link-local',
      '64:ff9b::a9fe:a9fe': 'link-local',
      '64:ff9b::10.0.0.1': 'private',
      // Public ones.
      '8.8.8.8': undefined,
      '172.32.0.1': undefined,
      '100.128.0.1': undefined,
      '203.0.113.7': undefined,
      '2001:db8::1': undefined,
      '2606:4700::1111': undefined,
      '::ffff:8.8.8.8': undefined,
      '64:ff9b::808:808': undefined,
    };
    const found = Object.fromEntries(Object.keys(cases).map((address) => [address, specialAddressKind(address)]));
    expect(found).toEqual(cases);
  });

  const table: Record<string, string[]> = {
    'loop.wild.test': ['127.0.0.1'],
    'metadata.wild.test': ['169.254.169.254'],
    'private.wild.test': ['10.1.2.3'],
    'cgnat.wild.test': ['100.64.0.1'],
    'multicast.wild.test': ['224.0.0.1'],
    'zero.wild.test': ['0.0.0.0'],
    'loop6.wild.test': ['::1'],
    'link6.wild.test': ['fe80::1'],
    'ula.wild.test': ['fd00::1'],
    'mapped.wild.test': ['::ffff:127.0.0.1'],
    'self.wild.test': ['203.0.113.50'],
    'public.wild.test': ['203.0.113.7'],
    'mixed.wild.test': ['127.0.0.1', '203.0.113.7'],
  };
  const verdict = (host: string, list: string) =>
    egressVerdict(host, {
      policy: () => new EgressPolicy(parseAllowList(list)),
      lookup: async (name) => table[name] ?? [],
      ownAddresses: () => ['127.0.0.1', '203.0.113.50', '::1'],
    });

  it('refuses names that resolve to loopback, link-local, private, CGNAT, multicast, unspecified or own addresses', async () => {
    const outcomes: Record<string, string> = {};
    for (const name of Object.keys(table)) {
      const result = await verdict(name, '*.wild.test');
      outcomes[name] = 'status' in result ? `${result.status} ${result.address}` : `to ${result.address}`;
    }
    expect(outcomes).toEqual({
      'loop.wild.test': '403 127.0.0.1',
      'metadata.wild.test': '403 169.254.169.254',
      'private.wild.test': '403 10.1.2.3',
      'cgnat.wild.test': '403 100.64.0.1',
      'multicast.wild.test': '403 224.0.0.1',
      'zero.wild.test': '403 0.0.0.0',
      'loop6.wild.test': '403 ::1',
      'link6.wild.test': '403 fe80::1',
      'ula.wild.test': '403 fd00::1',
      'mapped.wild.test': '403 ::ffff:127.0.0.1',
      'self.wild.test': '403 203.0.113.50',
      'public.wild.test': 'to 203.0.113.7',
      // Connects to the address that passed, never to the refused one.
      'mixed.wild.test': 'to 203.0.113.7',
    });
    expect(await verdict('self.wild.test', '*.wild.test')).toMatchObject({
      message:
        "egress to self.wild.test is not allowed: it resolves to 203.0.113.50 (this container's own address); list that address or its range in EGRESS_ALLOW to allow it\n",
    });
  });

  it('lets a special address through when the list names it or its range itself', async () => {
    expect(await verdict('private.wild.test', '*.wild.test,10.0.0.0/8')).toEqual({ address: '10.1.2.3' });
    expect(await verdict('metadata.wild.test', '*.wild.test,169.254.169.254')).toEqual({ address: '169.254.169.254' });
    expect(await verdict('self.wild.test', '*.wild.test,203.0.113.50')).toEqual({ address: '203.0.113.50' });
    expect(await verdict('link6.wild.test', '*.wild.test,fe80::/10')).toEqual({ address: 'fe80::1' });
    // Listing another range opens nothing else.
    expect(await verdict('metadata.wild.test', '*.wild.test,10.0.0.0/8')).toMatchObject({ status: 403 });
    // The name must still be allowed: a listed address does not admit any name that points there.
    expect(await verdict('private.wild.test', '10.0.0.0/8')).toMatchObject({ status: 403 });
  });

  it('takes a listed address literal as it is, and refuses an unlisted one without resolving it', async () => {
    expect(await verdict('10.1.2.3', '10.0.0.0/8')).toEqual({ address: '10.1.2.3' });
    expect(await verdict('[::1]', '::1')).toEqual({ address: '::1' });
    expect(await verdict('169.254.169.254', '*.wild.test')).toMatchObject({ status: 403 });
  });
});
