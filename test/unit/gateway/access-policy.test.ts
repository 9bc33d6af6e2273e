// User groups and access policies: the config sections (references checked, errors naming the
// field), and aclFor, the ACL a session of a user in some groups gets (src/gateway/access-policy.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type GatewayConfig } from '../../../src/gateway/config/index.js';
import { aclFor } from '../../../src/gateway/access-policy.js';
import { userGroups } from '../../../src/gateway/vpcep.js';
import { hashPassword } from '../../../src/gateway/users.js';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../../src/vpcep/policy.js';
import { configErrorOf } from '../../helpers/config.js';

// TEST FIXTURE ONLY: not a real password.
let HASH = '';
beforeAll(async () => {
  HASH = await hashPassword('fixture-password-access-policy');
});

function doc(o: { server?: string; groups?: string; users?: string; policies?: string } = {}): string {
  return `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16, 10.3.0.0/16]
vpnServers:
  - { name: p2c, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16, 10.3.0.0/16], serverCert: { cert: s.crt, key: s.key }, auth: { type: password }${o.server ?? ''} }
  - { name: strict, port: 1195, clientCidr: 10.9.0.0/24, localSubnets: [10.2.0.0/16], serverCert: { cert: s.crt, key: s.key }, auth: { type: password }, defaultAccess: deny }
userGroups:
${o.groups ?? '  - { name: eng, description: engineers }\n  - { name: ops }\n  - { name: empty }'}
users:
${o.users ?? `  - { name: alice, passwordHash: "${HASH}", groups: [eng] }`}
accessPolicies:
${o.policies ?? `  - name: eng-web
    group: eng
    destinations:
      - 10.2.1.0/24
      - { cidr: 10.3.0.0/16, protocol: tcp, ports: "443" }
      - { cidr: 10.3.0.0/16, protocol: udp, ports: ["53", 8000-8100, 9000] }
  - { name: ops-ping, group: ops, destinations: [ { cidr: 10.2.0.0/16, protocol: icmp }, "fd00::/64" ] }
  - { name: eng-again, group: eng, destinations: [ 10.2.1.0/24 ] }`}
`;
}

const v4 = (a: string): Uint8Array => new Uint8Array(a.split('.').map(Number));

describe('config: userGroups, accessPolicies, defaultAccess', () => {
  it('reads groups, policies (prefixes or { cidr, protocol, ports }) and the servers\' defaultAccess', () => {
    const cfg = parseConfig(doc(), 't.yaml');
    expect(cfg.userGroups.map((g) => [g.name, g.description])).toEqual([['eng', 'engineers'], ['ops', null], ['empty', null]]);
    expect(cfg.vpnServers.map((s) => [s.defaultAccess, s.sessionsPerUser, s.onExtraSession])).toEqual([['allow', 1, 'replace'], ['deny', 1, 'replace']]);
    const p = cfg.accessPolicies[0]!;
    expect(p.group).toBe('eng');
    expect(p.destinations.map((d) => [d.text, d.protocol, d.ports])).toEqual([
      ['10.2.1.0/24', 'any', null],
      ['10.3.0.0/16', 'tcp', [{ lo: 443, hi: 443 }]],
      ['10.3.0.0/16', 'udp', [{ lo: 53, hi: 53 }, { lo: 8000, hi: 8100 }, { lo: 9000, hi: 9000 }]],
    ]);
  });

  it('a user\'s groups and a policy\'s group must name a group; errors name the field', () => {
    expect(configErrorOf(doc({ users: `  - { name: alice, passwordHash: "${HASH}", groups: [eng, nope] }` })).message)
      .toMatch(/users\[0\]\.groups\[1\]: "nope" is not valid: the name of a user group \(eng, ops, empty\)/);
    expect(configErrorOf(doc({ policies: '  - { name: x, group: nope, destinations: [10.2.0.0/16] }' })).message)
      .toMatch(/accessPolicies\[0\]\.group: "nope".*the name of a user group/);
    expect(configErrorOf(doc({ groups: '  - { name: eng }\n  - { name: eng }' })).message).toMatch(/userGroups\[1\]\.name/);
  });

  it('refuses ports without tcp/udp, bad ranges, bad prefixes and empty destination lists', () => {
    expect(configErrorOf(doc({ policies: '  - { name: x, group: eng, destinations: [ { cidr: 10.2.0.0/16, ports: 80 } ] }' })).message)
      .toMatch(/accessPolicies\[0\]\.destinations\[0\]\.ports.*tcp or udp/);
    expect(configErrorOf(doc({ policies: '  - { name: x, group: eng, destinations: [ { cidr: 10.2.0.0/16, protocol: tcp, ports: "90-80" } ] }' })).message)
      .toMatch(/accessPolicies\[0\]\.destinations\[0\]\.ports: "90-80"/);
    expect(configErrorOf(doc({ policies: '  - { name: x, group: eng, destinations: [ { cidr: 10.2.0.0/16, protocol: tcp, ports: [80, "x"] } ] }' })).message)
      .toMatch(/accessPolicies\[0\]\.destinations\[0\]\.ports\[1\]/);
    expect(configErrorOf(doc({ policies: '  - { name: x, group: eng, destinations: [ 10.2.0.1/16 ] }' })).message)
      .toMatch(/accessPolicies\[0\]\.destinations\[0\]/);
    expect(configErrorOf(doc({ policies: '  - { name: x, group: eng, destinations: [ { cidr: 10.2.0.0/16, protocol: gre } ] }' })).message)
      .toMatch(/destinations\[0\]\.protocol.*one of any, tcp, udp, icmp/);
    expect(configErrorOf(doc({ policies: '  - { name: x, group: eng, destinations: [] }' })).message).toMatch(/accessPolicies\[0\]\.destinations/);
    expect(configErrorOf(doc({ server: ', defaultAccess: maybe' })).message).toMatch(/vpnServers\[0\]\.defaultAccess/);
  });
});

describe('aclFor', () => {
  let cfg: GatewayConfig;
  beforeAll(() => {
    cfg = parseConfig(doc(), 't.yaml');
  });

  it('no group, or groups without a policy: null (unrestricted) under defaultAccess allow, [] under deny', () => {
    expect(aclFor(cfg, 'p2c', [])).toBeNull();
    expect(aclFor(cfg, 'p2c', ['empty'])).toBeNull();
    expect(aclFor(cfg, 'strict', [])).toEqual([]);
    expect(aclFor(cfg, 'strict', ['empty', 'unknown'])).toEqual([]);
  });

  it('one group: its policies\' destinations, one rule per port range, repeats left out', () => {
    const r = aclFor(cfg, 'p2c', ['eng'])!;
    expect(r.map((x) => [x.family, [...x.addr].join('.'), x.len, x.protocol, x.portLo, x.portHi])).toEqual([
      [4, '10.2.1.0', 24, 0, 0, 65535],
      [4, '10.3.0.0', 16, PROTO_TCP, 443, 443],
      [4, '10.3.0.0', 16, PROTO_UDP, 53, 53],
      [4, '10.3.0.0', 16, PROTO_UDP, 8000, 8100],
      [4, '10.3.0.0', 16, PROTO_UDP, 9000, 9000],
    ]);
    // the same on a deny server: the policies decide, not the default
    expect(aclFor(cfg, 'strict', ['eng'])).toEqual(r);
  });

  it('several groups: the union; the order of the groups does not matter; IPv6 destinations and icmp', () => {
    const both = aclFor(cfg, 'p2c', ['ops', 'eng'])!;
    expect(both).toHaveLength(7);
    expect(aclFor(cfg, 'p2c', ['eng', 'ops'])!.length).toBe(7);
    expect(both).toContainEqual({ family: 4, addr: v4('10.2.0.0'), len: 16, protocol: PROTO_ICMP, portLo: 0, portHi: 65535 });
    const six = both.find((x) => x.family === 6)!;
    expect(six.addr).toHaveLength(16);
    expect(six.len).toBe(64);
    expect(six.protocol).toBe(0);
    // a group with a policy and one without: the policy alone (the default does not widen it)
    expect(aclFor(cfg, 'p2c', ['ops', 'empty'])).toHaveLength(2);
  });

  it('userGroups: a user\'s groups sorted without repeats (the key of a session\'s origin), none for names the users section lacks', () => {
    expect(userGroups(cfg, 'alice')).toEqual(['eng']);
    expect(userGroups(cfg, 'a-certificate-cn')).toEqual([]);
    const repeated = { ...cfg, users: [{ ...cfg.users[0]!, name: 'bob', groups: ['ops', 'eng', 'ops'] }] } as GatewayConfig;
    expect(userGroups(repeated, 'bob')).toEqual(['eng', 'ops']);
  });
});
