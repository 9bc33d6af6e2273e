import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError } from '../../../../src/common/errors.js';
import { silentLogger } from '../../../../src/common/log.js';
import { DATA_CIPHERS, parseConfig, type GatewayConfig } from '../../../../src/gateway/config/index.js';
import { peerConfigsFrom } from '../../../../src/gateway/peer-configs.js';
import { SslServer, sslServerConfigFrom } from '../../../../src/gateway/ssl-server.js';
import { isSupportedDataCipher } from '../../../../src/ssl/data/data-aead.js';

// Every check the IPsec controller (peer-configs.ts) and the SSL server make when `vpcgw start`
// builds them also runs when the file is loaded, so `vpcgw check-config` accepting a file means
// start accepts it. Each case: the loader refuses with the field path and the value, and the
// runtime objects built from a config the loader accepts do not throw.

const PSK = 'correct-horse-battery';

function base(): any {
  return {
    gateway: { name: 'gw1', publicAddresses: ['192.0.2.2'], vpcSubnets: ['10.2.0.0/16'] },
    customerGateways: [{ name: 'dc1', address: '192.0.2.1', id: '192.0.2.1' }],
    vpnConnections: [{
      name: 'dc1-main', customerGateway: 'dc1', localSubnets: ['10.2.0.0/16'], remoteSubnets: ['10.1.0.0/16'], auth: { psk: PSK },
    }],
    vpnServers: [{
      name: 'p2c', protocols: ['udp', 'tcp'], clientCidr: '10.8.0.0/24', localSubnets: ['10.2.0.0/16'], auth: { type: 'cert' },
      serverCert: { cert: 'server.crt', key: 'server.key' }, clientCa: 'ca.crt',
    }],
  };
}

function parse(obj: unknown): GatewayConfig {
  return parseConfig(stringify(obj), '/etc/vpcgw/test.yaml');
}

function refusal(edit: (c: any) => void): ConfigError {
  const c = base();
  edit(c);
  try {
    parse(c);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** What `vpcgw start` builds from a config: the IKE peer configs and one SslServer per vpnServers entry. */
function buildRuntime(cfg: GatewayConfig): void {
  peerConfigsFrom(cfg);
  for (const v of cfg.vpnServers) {
    new SslServer({ config: sslServerConfigFrom(v, () => 'PEM'), log: silentLogger, tunnel: {} as never, nativeData: false, timer: false });
  }
}

describe('start-time checks run at load', () => {
  it('a config the loader accepts builds the IKE and SSL runtime objects', () => {
    buildRuntime(parse(base()));
    const c = base();
    c.gateway.publicAddresses = ['0.0.0.0'];
    c.vpnConnections[0].ike = { localId: 'C=CH, O=example, CN=gw' };
    c.customerGateways[0].id = 'email:ops@dc1.example';
    buildRuntime(parse(c));
  });

  it.each<[string, (c: any) => void, string, string, RegExp]>([
    ['no localId behind a 0.0.0.0 bind', (c) => (c.gateway.publicAddresses = ['0.0.0.0']),
      'vpnConnections[0].ike.localId', '(missing)', /required when gateway.publicAddresses is 0\.0\.0\.0/],
    ['no localId behind a :: bind', (c) => (c.gateway.publicAddresses = ['::']),
      'vpnConnections[0].ike.localId', '(missing)', /required when gateway.publicAddresses is ::/],
    ['a localId that is not a strongSwan identity', (c) => (c.vpnConnections[0].ike = { localId: 'gw!example' }),
      'vpnConnections[0].ike.localId', '"gw!example"', /fqdn:host, email:user@host or a DN/],
    ['a DN localId with an unknown attribute', (c) => (c.vpnConnections[0].ike = { localId: 'C=CH, XYZ=gw' }),
      'vpnConnections[0].ike.localId', '"C=CH, XYZ=gw"', /a DN/],
    ['%any as our own identity', (c) => (c.vpnConnections[0].ike = { localId: '%any' }),
      'vpnConnections[0].ike.localId', '"%any"', /IP address/],
    ['a customer gateway id that is not an identity', (c) => (c.customerGateways[0].id = 'email:no-at-sign'),
      'customerGateways[0].id', '"email:no-at-sign"', /IKE identity/],
    ['a customer gateway id with spaces', (c) => (c.customerGateways[0].id = 'dc 1'),
      'customerGateways[0].id', '"dc 1"', /IKE identity/],
    ['an IPv6 route pushed to OpenVPN clients', (c) => (c.vpnServers[0].localSubnets = ['10.2.0.0/16', 'fd00::/64']),
      'vpnServers[0].localSubnets[1]', '"fd00::/64"', /IPv4/],
    ['a data cipher the server lacks', (c) => (c.vpnServers[0].dataCiphers = ['AES-256-GCM', 'AES-256-CBC']),
      'vpnServers[0].dataCiphers[1]', '"AES-256-CBC"', /AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305/],
    ['a client pool with no room for maxConnections', (c) => Object.assign(c.vpnServers[0], { clientCidr: '10.8.0.0/28', maxConnections: 20 }),
      'vpnServers[0].clientCidr', '"10.8.0.0/28"', /at least 20 client addresses/],
    ['a client pool longer than /29', (c) => (c.vpnServers[0].clientCidr = '10.8.0.0/30'),
      'vpnServers[0].clientCidr', '"10.8.0.0/30"', /\/29 or shorter/],
    ['a client pool that is IPv6', (c) => (c.vpnServers[0].clientCidr = 'fd00::/120'),
      'vpnServers[0].clientCidr', '"fd00::/120"', /IPv4/],
    ['two connections with one name', (c) => c.vpnConnections.push({ ...c.vpnConnections[0], remoteSubnets: ['10.3.0.0/16'] }),
      'vpnConnections[1].name', '"dc1-main"', /not used before/],
    ['a connection naming a missing customer gateway', (c) => (c.vpnConnections[0].customerGateway = 'dc9'),
      'vpnConnections[0].customerGateway', '"dc9"', /dc1/],
  ])('%s', (_title, edit, path, value, allowed) => {
    const e = refusal(edit);
    expect(e.path).toBe(path);
    expect(e.message).toContain(`config ${path}: ${value} is not valid`);
    expect(e.message).toMatch(allowed);
  });

  it('the runtime refuses what the loader refuses (IPv6 pushed route, unknown cipher), so the two agree', () => {
    const v = parse(base()).vpnServers[0]!;
    const mk = (over: object) => () => new SslServer({
      config: sslServerConfigFrom({ ...v, ...over }, () => 'PEM'), log: silentLogger, tunnel: {} as never, nativeData: false, timer: false,
    });
    expect(mk({ localSubnets: [{ text: 'fd00::/64' }] })).toThrow(ConfigError);
    expect(mk({ dataCiphers: ['AES-256-CBC'] })).toThrow(ConfigError);
  });

  it('every data cipher the config offers is one the SSL data channel implements', () => {
    for (const c of DATA_CIPHERS) expect(isSupportedDataCipher(c)).toBe(true);
  });
});
