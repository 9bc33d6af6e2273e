// The vpnServers fields of the SSL VPN before authentication: limits and tls-crypt / tls-auth, from
// YAML through sslServerConfigFrom.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../../src/common/errors.js';
import { parseConfig } from '../../../src/gateway/config/load.js';
import { sslServerConfigFrom } from '../../../src/gateway/ssl-server-config.js';
import { limitsOf, DEFAULT_LIMITS } from '../../../src/ssl/server/config.js';

const KEY = readFileSync(new URL('../../vectors/ssl/tls-auth.key', import.meta.url), 'utf8');

function yaml(extra: string): string {
  return `gateway:
  publicAddresses: [192.0.2.2]
  vpcSubnets: [10.2.0.0/16]
vpnServers:
  - name: p2c
    clientCidr: 10.8.0.0/24
    localSubnets: [10.2.0.0/16]
    auth: { type: cert }
    serverCert: { cert: pki/server.crt, key: pki/server.key }
    clientCa: pki/ca.crt
${extra}`;
}

const load = (extra: string) => parseConfig(yaml(extra), '/etc/vpcgw/gw.yaml');
const frozen = (extra: string) => sslServerConfigFrom(load(extra).vpnServers[0]!, (p) => (p.endsWith('.key') && p.includes('ta') ? KEY : 'PEM'));

describe('vpnServers limits, tlsCrypt, tlsAuth', () => {
  it('defaults when absent; given fields override one by one', () => {
    expect(limitsOf(frozen(''))).toEqual(DEFAULT_LIMITS);
    const c = frozen('    limits: { maxHalfOpen: 8, tcpFirstFrameTimeoutSec: 3 }\n');
    expect(limitsOf(c)).toEqual({ ...DEFAULT_LIMITS, maxHalfOpen: 8, tcpFirstFrameTimeoutSec: 3 });
    expect(c.tlsWrap).toBeUndefined();
  });

  it('tlsAuth reads the static key with direction and digest', () => {
    const c = frozen('    tlsAuth: { key: pki/ta.key, direction: 1, digest: SHA256 }\n');
    expect(c.tlsWrap).toMatchObject({ kind: 'tls-auth', direction: 1, digest: 'SHA256' });
    expect((c.tlsWrap as { key: Buffer }).key).toHaveLength(256);
  });

  it('errors name the field', () => {
    const err = (extra: string): ConfigError => {
      try {
        load(extra);
      } catch (e) {
        if (e instanceof ConfigError) return e;
        throw e;
      }
      throw new Error('no error');
    };
    expect(err('    limits: { maxHalfOpen: 0 }\n').message).toContain('vpnServers[0].limits.maxHalfOpen');
    expect(err('    limits: { bogus: 1 }\n').message).toContain('vpnServers[0].limits');
    expect(err('    tlsCrypt: pki/tc.key\n    tlsAuth: { key: pki/ta.key }\n').message).toContain('vpnServers[0].tlsAuth');
    expect(err('    tlsAuth: { key: pki/ta.key, direction: 2 }\n').message).toContain('vpnServers[0].tlsAuth.direction');
    expect(() => sslServerConfigFrom(load('    tlsCrypt: pki/tc.key\n').vpnServers[0]!, () => 'not a key')).toThrow(/vpnServers\.p2c\.tlsCrypt/);
  });
});
