import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError } from '../../../../src/common/errors.js';
import { parseConfig } from '../../../../src/gateway/config/index.js';
import { peerConfigFrom } from '../../../../src/gateway/peer-configs.js';
import { exportFacts } from '../../../../src/gateway/peer-export/facts.js';
import { bytesToIp, formatPrefix } from '../../../../src/common/ip.js';

const PSK = 'correct-horse-battery';

/** A dual-stack site-to-cloud config: IPv4 and IPv6 subnets, public addresses of both families. */
function base(): any {
  return {
    gateway: {
      name: 'gw1',
      publicAddresses: ['192.0.2.2', '2001:db8::2'],
      vpcSubnets: ['10.2.0.0/16', 'fd00:2::/48'],
    },
    customerGateways: [{ name: 'dc1', address: '2001:db8::1' }],
    vpnConnections: [
      {
        name: 'dc1-main',
        customerGateway: 'dc1',
        localSubnets: ['10.2.0.0/16', 'fd00:2::/48'],
        remoteSubnets: ['10.1.0.0/16', 'fd00:1::/48'],
        auth: { psk: PSK },
        startAction: 'start',
      },
    ],
  };
}

function parse(obj: unknown) {
  return parseConfig(stringify(obj), '/etc/vpcgw/test.yaml');
}

function configError(obj: unknown): ConfigError {
  try {
    parse(obj);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('the config loaded without a ConfigError');
}

describe('config: IPv4 and IPv6 in site-to-cloud connections', () => {
  it('accepts IPv6 and IPv4 subnets in one connection and an IPv6 customer gateway', () => {
    const cfg = parse(base());
    const c = cfg.vpnConnections[0]!;
    expect(c.localSubnets.map((p) => formatPrefix(p.prefix))).toEqual(['10.2.0.0/16', 'fd00:2::/48']);
    expect(c.remoteSubnets.map((p) => p.prefix.family)).toEqual([4, 6]);
    expect(c.peer.address!.addr.family).toBe(6);
  });

  it('an IPv6 customer gateway: we initiate from and identify as the first IPv6 public address', () => {
    const cfg = parse(base());
    const peer = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
    expect(peer.localAddrs).toEqual(['2001:db8::2']);
    expect(bytesToIp(peer.localId.data)).toBe('2001:db8::2');
    expect(peer.children[0]!.localTs.map(formatPrefix)).toEqual(['10.2.0.0/16', 'fd00:2::/48']);
    const facts = exportFacts(cfg, 'dc1-main');
    expect(facts.ourAddrs).toEqual(['2001:db8::2']);
    expect(facts.ourSubnets).toEqual(['10.2.0.0/16', 'fd00:2::/48']);
  });

  it('an IPv4 customer gateway keeps the IPv4 public address (and its ID) even when an IPv6 one comes first', () => {
    const c = base();
    c.gateway.publicAddresses = ['2001:db8::2', '192.0.2.2'];
    c.customerGateways[0].address = '192.0.2.1';
    const cfg = parse(c);
    const peer = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
    expect(peer.localAddrs).toEqual(['192.0.2.2']);
    expect(bytesToIp(peer.localId.data)).toBe('192.0.2.2');
  });

  it('a "%any" customer gateway is answered on every public address', () => {
    const c = base();
    c.customerGateways[0] = { name: 'dc1', address: '%any', ikeId: 'fqdn:dc1.example' };
    c.vpnConnections[0].startAction = 'none';
    const cfg = parse(c);
    const peer = peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]');
    expect(peer.localAddrs).toEqual(['192.0.2.2', '2001:db8::2']);
  });

  it('a wildcard "::" bind is dual-stack: it reaches an IPv4 customer gateway', () => {
    const c = base();
    c.gateway.publicAddresses = ['::'];
    c.customerGateways[0].address = '192.0.2.1';
    c.vpnConnections[0].ike = { localId: '192.0.2.2' };
    const cfg = parse(c);
    expect(peerConfigFrom(cfg, cfg.vpnConnections[0]!, 'vpnConnections[0]').localAddrs).toEqual(['::']);
  });

  it('an IPv6 customer gateway without an IPv6 public address: the error names the address', () => {
    const c = base();
    c.gateway.publicAddresses = ['192.0.2.2'];
    const e = configError(c);
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.path).toBe('customerGateways[0].address');
    expect(e.message).toMatch(/"2001:db8::1" is not valid: an address of a family gateway\.publicAddresses can reach \(192\.0\.2\.2: no IPv6 address; vpnConnections\[0\] uses this customer gateway\)/);
  });

  it('an IPv4 customer gateway with only "0.0.0.0" or an IPv6 address: refused likewise', () => {
    const c = base();
    c.gateway.publicAddresses = ['2001:db8::2'];
    c.customerGateways[0].address = '192.0.2.1';
    const e = configError(c);
    expect(e.path).toBe('customerGateways[0].address');
    expect(e.message).toMatch(/"192\.0\.2\.1" is not valid: .*no IPv4 address/);
  });

  it('a remote IPv6 subnet without a local IPv6 subnet: the error names the field, index and value', () => {
    const c = base();
    c.vpnConnections[0].localSubnets = ['10.2.0.0/16'];
    const e = configError(c);
    expect(e.path).toBe('vpnConnections[0].remoteSubnets[1]');
    expect(e.message).toMatch(/"fd00:1::\/48" is not valid: a prefix of a family localSubnets also has \(it has IPv4 only; add a IPv6 prefix there or remove this one\)/);
  });

  it('a local IPv6 subnet without a remote IPv6 subnet: the error names localSubnets', () => {
    const c = base();
    c.vpnConnections[0].remoteSubnets = ['10.1.0.0/16'];
    const e = configError(c);
    expect(e.path).toBe('vpnConnections[0].localSubnets[1]');
    expect(e.message).toMatch(/"fd00:2::\/48" is not valid: a prefix of a family remoteSubnets also has \(it has IPv4 only/);
  });

  it('IPv6-only subnets over an IPv4 outer are fine', () => {
    const c = base();
    c.gateway.publicAddresses = ['192.0.2.2'];
    c.customerGateways[0].address = '192.0.2.1';
    c.vpnConnections[0].localSubnets = ['fd00:2::/48'];
    c.vpnConnections[0].remoteSubnets = ['fd00:1::/48'];
    const cfg = parse(c);
    expect(cfg.vpnConnections[0]!.remoteSubnets[0]!.prefix.family).toBe(6);
  });

  it('an IPv6 remote subnet inside an IPv6 VPC subnet is refused with the VPC subnet named', () => {
    const c = base();
    c.vpnConnections[0].remoteSubnets = ['10.1.0.0/16', 'fd00:2:0:1::/64'];
    const e = configError(c);
    expect(e.path).toBe('vpnConnections[0].remoteSubnets[1]');
    expect(e.message).toMatch(/not inside the VPC subnet fd00:2::\/48/);
  });
});
