import { describe, expect, it } from 'vitest';
import { AllowListError, EgressPolicy, formatAllowList, parseAllowList } from '../../server/egress/allow-list.js';
import { renderRuleset, resolversOf } from '../../server/egress/firewall.js';

describe('EGRESS_ALLOW', () => {
  it('reads domains, wildcards, addresses and ranges', () => {
    const list = parseAllowList(' Packages.Example.org., *.example.com ,10.1.2.3, 10.0.0.0/8,2001:db8::/32 ,::1');
    expect(list).toEqual({
      domains: ['packages.example.org'],
      wildcardSuffixes: ['.example.com'],
      cidrs: [
        { address: '10.1.2.3', prefix: 32, family: 4 },
        { address: '10.0.0.0', prefix: 8, family: 4 },
        { address: '2001:db8::', prefix: 32, family: 6 },
        { address: '::1', prefix: 128, family: 6 },
      ],
    });
    expect(formatAllowList(list)).toBe('packages.example.org,*.example.com,10.1.2.3/32,10.0.0.0/8,2001:db8::/32,::1/128');
  });

  it('"none" allows nothing', () => {
    expect(parseAllowList('none')).toEqual({ domains: [], wildcardSuffixes: [], cidrs: [] });
    expect(formatAllowList(parseAllowList(' NONE '))).toBe('none');
    expect(new EgressPolicy(parseAllowList('none')).allows('localhost')).toBe(false);
  });

  it.each([
    ['', /empty/],
    [' , ', /empty/],
    ['none,packages.example.org', /cannot be combined/],
    ['10.0.0.0/33', /prefix length must be 0 to 32/],
    ['10.0.0.0/', /prefix length/],
    ['2001:db8::/129', /0 to 128/],
    ['example.com/8', /neither a domain, an IP address nor a CIDR range/],
    ['*.', /wildcard/],
    ['*.*.example.com', /wildcard/],
    ['exa mple.com', /neither a domain/],
    ['-bad.example.com', /neither a domain/],
    ['http://example.com', /neither a domain/],
    ['10.0.0', /neither a domain/],
    ['999.1.1.1', /neither a domain/],
  ])('refuses %j, saying what is wrong', (text, message) => {
    expect(() => parseAllowList(text)).toThrow(AllowListError);
    expect(() => parseAllowList(text)).toThrow(message);
  });

  it('matches names exactly, wildcards below the domain only, addresses by range', () => {
    const policy = new EgressPolicy(parseAllowList('packages.example.org,*.example.com,10.0.0.0/8,2001:db8::/32'));
    expect(policy.allows('packages.example.org')).toBe(true);
    expect(policy.allows('Packages.Example.org.')).toBe(true);
    expect(policy.allows('files.packages.example.org')).toBe(false);
    expect(policy.allows('evilpackages.example.org')).toBe(false);
    expect(policy.allows('a.example.com')).toBe(true);
    expect(policy.allows('a.b.example.com')).toBe(true);
    expect(policy.allows('example.com')).toBe(false);
    expect(policy.allows('badexample.com')).toBe(false);
    expect(policy.allows('example.com.evil.net')).toBe(false);
    expect(policy.allows('10.200.0.1')).toBe(true);
    expect(policy.allows('11.0.0.1')).toBe(false);
    expect(policy.allows('[2001:db8::1]')).toBe(true);
    expect(policy.allows('2001:db9::1')).toBe(false);
    // A name is decided by the name, never by what it resolves to.
    expect(policy.allows('localhost')).toBe(false);
  });
});

describe('the firewall rules', () => {
  it('reads the name servers of resolv.conf', () => {
    expect(
      resolversOf('# c\nnameserver 127.0.0.11\noptions ndots:0\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 127.0.0.11\n'),
    ).toEqual(['127.0.0.11', 'fe80::1']);
  });

  it('filter only the kernels, replacing the whole table in one transaction', () => {
    const ruleset = renderRuleset(parseAllowList('packages.example.org,10.0.0.0/8,10.1.0.0/16,2001:db8::/32'), {
      kernelUid: 1001,
      resolvers: ['10.255.255.53', 'fd00::53'],
    });
    expect(ruleset).toBe(
      [
        'add table inet code_interpreter_egress',
        'delete table inet code_interpreter_egress',
        'table inet code_interpreter_egress {',
        '  chain output {',
        '    type filter hook output priority filter; policy accept;',
        '    meta skuid 1001 jump kernels',
        '  }',
        '  chain kernels {',
        '    oifname "lo" accept',
        '    ct state established,related accept',
        '    ip daddr { 10.255.255.53 } meta l4proto { udp, tcp } th dport 53 accept',
        '    ip6 daddr { fd00::53 } meta l4proto { udp, tcp } th dport 53 accept',
        '    ip daddr 10.0.0.0/8 accept',
        '    ip daddr 10.1.0.0/16 accept',
        '    ip6 daddr 2001:db8::/32 accept',
        '    meta l4proto tcp reject with tcp reset',
        '    reject with icmpx type admin-prohibited',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
});
