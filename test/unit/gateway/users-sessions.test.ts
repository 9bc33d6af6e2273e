// Which users may hold sessions on which server, and their static addresses (src/gateway/vpn-servers.ts):
// what the SSL VPN servers ask after a client authenticated, and after the users section changed.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type GatewayConfig } from '../../../src/gateway/config/index.js';
import { hashPassword } from '../../../src/gateway/users.js';
import { staticAddressesOf, userRefusal } from '../../../src/gateway/vpn-servers.js';
import { configErrorOf } from '../../helpers/config.js';

// TEST FIXTURE ONLY: not a real password.
let HASH = '';
beforeAll(async () => {
  HASH = await hashPassword('fixture-password-users-sessions');
});

const doc = (users: string, server = ''): string => `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
vpnServers:
  - { name: a, clientCidr: 10.8.0.0/24, localSubnets: [10.2.0.0/16], serverCert: { cert: s.crt, key: s.key }, auth: { type: password }${server} }
  - { name: b, port: 1195, clientCidr: 10.9.0.0/24, localSubnets: [10.2.0.0/16], serverCert: { cert: s.crt, key: s.key }, auth: { type: password } }
users:
${users}
`;

describe('users on servers', () => {
  let cfg: GatewayConfig;
  beforeAll(() => {
    cfg = parseConfig(doc(`  - { name: alice, passwordHash: "${HASH}", staticAddress: 10.8.0.50 }
  - { name: bob, passwordHash: "${HASH}", disabled: true }
  - { name: carol, passwordHash: "${HASH}", servers: [b], staticAddress: 10.9.0.7 }`, ', sessionsPerUser: 2, onExtraSession: refuse'), 't.yaml');
  });

  it('reads sessionsPerUser / onExtraSession and staticAddress', () => {
    expect(cfg.vpnServers.map((s) => [s.sessionsPerUser, s.onExtraSession])).toEqual([[2, 'refuse'], [1, 'replace']]);
    expect(cfg.users.map((u) => u.staticAddress?.text ?? null)).toEqual(['10.8.0.50', null, '10.9.0.7']);
  });

  it('userRefusal: disabled users and users not allowed on the server; names not in the users section pass (certificate CNs)', () => {
    expect(userRefusal(cfg.users, 'a', 'alice')).toBeNull();
    expect(userRefusal(cfg.users, 'a', 'bob')).toBe('user disabled');
    expect(userRefusal(cfg.users, 'a', 'carol')).toBe('user not allowed on this vpn server');
    expect(userRefusal(cfg.users, 'b', 'carol')).toBeNull();
    expect(userRefusal(cfg.users, 'a', 'cn-only')).toBeNull();
  });

  it('staticAddressesOf: per server, the users who may log in there', () => {
    expect([...staticAddressesOf(cfg.users, 'a')]).toEqual([['alice', '10.8.0.50']]);
    expect([...staticAddressesOf(cfg.users, 'b')]).toEqual([['alice', '10.8.0.50'], ['carol', '10.9.0.7']]);
  });

  it('a static address must be a client address of one of the user\'s servers, and unique', () => {
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}", staticAddress: 10.7.0.5 }`)).message)
      .toMatch(/users\[0\]\.staticAddress: "10\.7\.0\.5".*a client address inside the pool of a server the user may log in to \(a 10\.8\.0\.0\/24, b 10\.9\.0\.0\/24\)/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}", servers: [a], staticAddress: 10.9.0.5 }`)).message)
      .toMatch(/users\[0\]\.staticAddress.*\(a 10\.8\.0\.0\/24\)/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}", staticAddress: 10.8.0.1 }`)).message).toMatch(/users\[0\]\.staticAddress/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}", staticAddress: 10.8.0.255 }`)).message).toMatch(/users\[0\]\.staticAddress/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}", staticAddress: "fd00::5" }`)).message).toMatch(/users\[0\]\.staticAddress.*IPv4/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}", staticAddress: 10.8.0.9 }
  - { name: bob, passwordHash: "${HASH}", staticAddress: 10.8.0.9 }`)).message).toMatch(/users\[1\]\.staticAddress: "10\.8\.0\.9".*users\[0\] has it/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}" }`, ', sessionsPerUser: 0')).message).toMatch(/vpnServers\[0\]\.sessionsPerUser/);
    expect(configErrorOf(doc(`  - { name: alice, passwordHash: "${HASH}" }`, ', onExtraSession: kick')).message).toMatch(/vpnServers\[0\]\.onExtraSession/);
  });
});
